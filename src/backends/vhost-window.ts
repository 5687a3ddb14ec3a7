// The guest-memory window of a vhost-user port (docs/guest-memory.md): a guest whose RAM is
// larger than MAX_DIRECT_RAM is not mapped whole into the linear memory but seen through a
// window of slots, each mapping a 2 MiB chunk of guest RAM (and the next one, so rings and
// indirect tables are contiguous), mapped as the datapath reaches them (vring.ts stops at a
// chunk not mapped: MT_MISS), least recently used evicted. The rings of every running queue
// are pinned (never evicted). The port (vhost-user.ts) owns the session and the memory table;
// this module owns the window's slots and the regions' chunk tables while the port uses them.
import type { Datapath } from '../datapath.js';
import { WasmapError } from '../errors.js';
import type { NativeHost } from '../host.js';

const PAGE = 4096;
/** Guest RAM a port maps whole into the linear memory (all regions together); a larger guest
 *  is seen through a window of chunks mapped on demand (docs/guest-memory.md). */
export const MAX_DIRECT_RAM = 256 * 1024 * 1024;
/** Window slots per port by default (each 4 MiB of the linear memory: a 2 MiB chunk and the
 *  next one, so rings and indirect tables are contiguous): 64 chunks of guest RAM in use at
 *  once, 256 MiB of the memory. `--window N` on attach sets it (8..256). */
export const WINDOW_SLOTS = 64;
/** VQ_BROKEN code set by the port (not by vring.ts): a chain that cannot be served through
 *  the window (it needs more chunks at once than the window holds, or its rings cannot be
 *  pinned). */
export const VQE_WINDOW = 12;

/** A guest RAM region mapped at [span, span+len), inside the allocation [at, at+bytes) (larger
 *  when the region's pages need more alignment than the memory gives: hugetlbfs). */
export interface Mapped { gpa: bigint; size: bigint; uva: bigint; span: number; len: number; sealed: boolean; at: number; bytes: number;
  /** Windowed: the fd (kept to map chunks from), its offset and page size, the chunk table. */
  fd: number; off: number; pageSize: number; tab: number; tabBytes: number; chunks: number }
/** A window slot: which chunk of which region it maps (region -1: free), the bytes mapped,
 *  and the queues whose rings are in it (pinned: never evicted while they run; bit q). */
export interface Slot { region: number; chunk: number; len: number; pins: number }
/** The port's window: slots of 2 × chunk bytes from `base` (chunk-aligned), inside [at, at+bytes). */
export interface Window { at: number; bytes: number; base: number; chunk: number; slots: Slot[] }
/** Attach options of the window: slots (`--window`); directMax and chunkShift are for tests
 *  (directMax 0: every guest through the window; chunkShift 16..21: 64 KiB..2 MiB chunks, so
 *  a small guest has many and evictions happen). */
export interface WindowOptions { slots?: number; directMax?: number; chunkShift?: number }
/** Window counters (stats: `window`). */
export interface WindowStats { slots: number; mapped: number; misses: number; maps: number; evictions: number; waits: number }
/** A region as SET_MEM_TABLE gives it. */
export interface RegionWant { gpa: bigint; size: bigint; uva: bigint; off: bigint }

/** What the window needs of its port. */
export interface WindowPort {
  readonly dp: Datapath;
  readonly host: NativeHost;
  /** The port's memory table (mt_* in guestmem.ts). */
  readonly mt: number;
  /** The port's regions now (the array is replaced when the table goes). */
  regions(): Mapped[];
  /** Mapping guest memory failed: the session ends with this reason (the window is closed by it). */
  fail(reason: string): void;
  log(s: string): void;
}

/** One port's window, for the port's life: options and counters stay; `open` and `close` follow
 *  memory tables. */
export class GuestWindow {
  /** Window slots this port gets when a guest is too large to map whole. */
  readonly slots: number;
  /** Guest RAM up to this is mapped whole; MAX_DIRECT_RAM unless a test asks otherwise. */
  readonly directMax: number;
  /** log2 of the window's chunk size: 21 (2 MiB) unless a test asks for smaller ones. */
  readonly chunkShift: number;
  /** Counters over all sessions. */
  readonly counts = { maps: 0, evictions: 0, waits: 0 };
  /** The window of this memory table, null while the guest (if any) is mapped whole. */
  win: Window | null = null;
  /** A miss waits for the next pull's start, where evicting is safe. */
  missWait = false;
  private stuck: number[] = []; // calls in a row that stopped at a miss with nothing moved, per queue

  constructor(private readonly p: WindowPort, o: WindowOptions = {}) {
    this.slots = o.slots ?? WINDOW_SLOTS;
    this.directMax = o.directMax ?? MAX_DIRECT_RAM;
    this.chunkShift = o.chunkShift ?? 21;
  }

  get on(): boolean { return this.win !== null; }

  /**
   * A guest larger than directMax: its regions are not mapped whole but through the window,
   * chunk by chunk as the datapath reaches them. Each fd is sealed (or fenced) and kept (added
   * to `taken`), to map chunks from; each region gets a chunk table, pushed to `regions`.
   * Throws (EPROTO) with what failed; the caller then unmaps all (close included).
   */
  open(regions: Mapped[], want: RegionWant[], fds: number[], taken: Set<number>, total: bigint): void {
    const { dp, host, mt } = this.p;
    const fn = dp.fn, a = dp.abi, chunk = 2 ** this.chunkShift, slots = this.slots;
    dp.setU32(mt + a.MT_SHIFT, this.chunkShift); // after unmapAll's mt_init (which sets 2 MiB)
    let allSealed = true;
    try {
      const bytes = slots * 2 * chunk + chunk;
      const at = dp.alloc(bytes, 65536, false);
      const base = at + host.alignGap(dp.u8, at, chunk); // 2 MiB-aligned slots: hugetlbfs chunks map there
      this.win = { at, bytes, base, chunk, slots: Array.from({ length: slots }, () => ({ region: -1, chunk: 0, len: 0, pins: 0 })) };
      host.fence(dp.u8, base, slots * 2 * chunk); // a chunk of an unsealable file shrunk under us: SIGBUS mended, the session ends
    } catch (e) {
      throw new WasmapError('EPROTO', `SET_MEM_TABLE: ${Number(total >> 20n)} MiB of guest RAM needs a window of ${slots} × ${2 * chunk >> 20} MiB: ${(e as Error).message}`);
    }
    for (let i = 0; i < want.length; i++) {
      const r = want[i], fd = fds[i];
      let tab = -1, tabBytes = 0;
      try {
        let g = host.sealFd(fd, Number(r.off) + Math.ceil(Number(r.size) / PAGE) * PAGE);
        const pg = Math.max(PAGE, g.pageSize);
        if (pg > chunk) throw new Error(`its ${pg >> 20} MiB pages are larger than the window's ${chunk >> 20} MiB chunks (use 2 MiB pages, or at most ${MAX_DIRECT_RAM >> 20} MiB of guest RAM)`);
        if (r.off % BigInt(pg)) throw new Error(`mmap offset ${r.off} is not a multiple of the file's ${pg >> 10} KiB pages`);
        if (pg > PAGE) g = host.sealFd(fd, Number(r.off) + Math.ceil(Number(r.size) / pg) * pg);
        if (!g.sealed) allSealed = false;
        const chunks = fn.mt_chunks(mt, r.size) as number;
        tabBytes = chunks * a.MT_CE_SIZE;
        tab = dp.alloc(tabBytes, 64); // zeroed: nothing mapped
        taken.add(fd); // kept until the session ends: chunks are mapped from it
        regions.push({ gpa: r.gpa, size: r.size, uva: r.uva, span: 0, len: 0, sealed: g.sealed, at: 0, bytes: 0, fd, off: Number(r.off), pageSize: pg, tab, tabBytes, chunks });
        tab = -1;
        if (!g.sealed) this.p.log(`region ${i} cannot be sealed against shrinking (${g.why}): its chunks are mapped behind the SIGBUS fence`);
        if (pg > PAGE) this.p.log(`region ${i} is on ${pg >> 10} KiB pages (hugetlbfs): its chunks are mapped at that alignment`);
        const rc = fn.mt_add_window(mt, r.gpa, r.size, r.uva, regions[i].tab) as number;
        if (rc !== 0) throw new Error('overlaps another region (or is out of range)');
      } catch (e) {
        if (tab >= 0) dp.release(tab, tabBytes);
        throw new WasmapError('EPROTO', `SET_MEM_TABLE region ${i} (guest 0x${r.gpa.toString(16)}, ${Number(r.size >> 10n)} KiB): ${(e as Error).message}`);
      }
    }
    this.p.log(`memory table: ${want.length} regions, ${Number(total >> 20n)} MiB (${want.map((r) => `0x${r.gpa.toString(16)}+${Number(r.size >> 10n)}K`).join(', ')}), seen through a window of ${slots} × ${chunk >> 20} MiB chunks, ${allSealed ? 'sealed against shrinking' : 'not all sealable: fenced'}`);
  }

  /** The window goes (after mt_init: the chunk tables went with it): every chunk unmapped at
   *  once, wasm memory again, the fence removed. The regions' tables and fds are the port's. */
  close(): void {
    const w = this.win, { dp, host } = this.p;
    if (w) {
      try { host.unmap(dp.u8, w.base, w.slots.length * 2 * w.chunk); } catch { /* released either way */ }
      dp.release(w.at, w.bytes);
      this.win = null;
    }
    this.missWait = false;
    this.stuck = [];
  }

  /** The start of a pull: the window's clock advances (LRU ages). */
  tick(): void {
    const { dp, mt } = this.p, clk = mt + dp.abi.MT_CLOCK;
    dp.setU32(clk, (dp.u32(clk) + 1) >>> 0);
  }

  /**
   * A pass over queue q (record `vq`, n frames moved) that stopped at a chunk not mapped: the
   * chunk is mapped into a free slot and the pass run again (`run`, up to `max` frames in all),
   * at most a few times; when no slot is free it waits for the next pull's start, which may
   * evict. A queue that keeps stopping with nothing moved has a chain needing more chunks at
   * once than the window holds: it breaks (VQE_WINDOW) rather than spin.
   */
  afterMiss(q: number, vq: number, n: number, max: number, run: (max: number) => number): number {
    const { dp, mt } = this.p, a = dp.abi;
    const miss = mt + a.MT_MISS;
    const before = dp.u32(vq + a.VQ_LAST_AVAIL);
    let missed = false;
    for (let k = 0; k < 4 && dp.u32(miss) && n < max; k++) {
      missed = true;
      if (!this.takeMiss(false)) { this.missWait = true; this.counts.waits++; break; }
      n += run(max - n);
    }
    if (!missed && !dp.u32(miss)) { this.stuck[q] = 0; return n; }
    if (n > 0 || dp.u32(vq + a.VQ_LAST_AVAIL) !== before) this.stuck[q] = 0;
    else if ((this.stuck[q] = (this.stuck[q] ?? 0) + 1) > 2 * this.slots + 8) {
      dp.setU32(miss, 0); this.missWait = false; this.stuck[q] = 0;
      dp.setU32(vq + a.VQ_BROKEN, VQE_WINDOW);
    }
    if (dp.u32(miss)) this.missWait = true;
    return n;
  }

  /** Map the chunk the last miss named (evicting the least recently used unpinned slot when
   *  `evict` and none is free). Returns whether it is mapped now; the miss is cleared then. */
  takeMiss(evict: boolean): boolean {
    const { dp, mt } = this.p, a = dp.abi, ri = dp.u32(mt + a.MT_MISS_REGION), c = dp.u32(mt + a.MT_MISS_CHUNK);
    const ok = this.mapChunk(ri, c, evict) >= 0;
    if (ok) dp.setU32(mt + a.MT_MISS, 0);
    return ok;
  }

  /** The slot holding chunk c of region ri, mapping it if needed; -1 when no slot can take it. */
  private mapChunk(ri: number, c: number, evict: boolean): number {
    const { dp, host, mt } = this.p, regions = this.p.regions();
    const w = this.win, r = regions[ri];
    if (!w || !r || !r.tab || c >= r.chunks) return -1;
    const ce = r.tab + c * 8;
    const have = dp.u32(ce);
    if (have) return (have - w.base) / (2 * w.chunk);
    let si = w.slots.findIndex((s) => s.region < 0);
    if (si < 0) {
      if (!evict) return -1;
      const clock = dp.u32(mt + dp.abi.MT_CLOCK);
      let age = -1;
      w.slots.forEach((s, i) => {
        if (s.pins) return;
        const e = (clock - dp.u32(regions[s.region].tab + s.chunk * 8 + 4)) >>> 0;
        if (e > age) { age = e; si = i; }
      });
      if (si < 0) return -1;
      const old = w.slots[si];
      dp.setU32(regions[old.region].tab + old.chunk * 8, 0); // no translation reaches it from now on
      this.counts.evictions++;
    }
    const s = w.slots[si], at = w.base + si * 2 * w.chunk, pg = r.pageSize;
    // this chunk and the next of the same region, never past the region's (page-rounded) end
    const len = Math.min(2 * w.chunk, Math.ceil((Number(r.size) - c * w.chunk) / pg) * pg);
    try {
      host.mapFd(dp.u8, at, len, r.fd, r.off + c * w.chunk); // MAP_FIXED over whatever the slot held
      if (s.region >= 0 && s.len > len) host.unmap(dp.u8, at + len, s.len - len); // no stale pages of the old chunk left
    } catch (e) {
      try { host.unmap(dp.u8, at, 2 * w.chunk); } catch { /* the session ends */ }
      Object.assign(s, { region: -1, chunk: 0, len: 0, pins: 0 });
      this.p.fail(`mapping guest memory (region at guest 0x${r.gpa.toString(16)}, chunk ${c}) failed: ${(e as Error).message}`);
      return -1;
    }
    Object.assign(s, { region: ri, chunk: c, len, pins: 0 });
    if (process.env.WASMAP_VHOST_DEBUG) this.p.log(`window: region ${ri} chunk ${c} → slot ${si}`);
    dp.setU32(ce + 4, dp.u32(mt + dp.abi.MT_CLOCK));
    dp.setU32(ce, at);
    this.counts.maps++;
    return si;
  }

  /** Map queue q's rings' chunks (guest addresses `uvas`: desc, avail, used) and pin them (they
   *  are used at every pass by address, so they are never evicted while the queue is set up).
   *  False if one cannot be. True at once while the guest is mapped whole. */
  pinRings(q: number, uvas: bigint[]): boolean {
    const w = this.win, { dp, mt } = this.p;
    if (!w) return true;
    for (const s of w.slots) s.pins &= ~(1 << q);
    for (const uva of uvas) {
      const rc = dp.fn.mt_uva_chunk(mt, uva) as bigint;
      if (rc < 0n) continue; // not in guest memory: vq_setup says so
      const si = this.mapChunk(Number(rc >> 32n), Number(rc & 0xffffffffn), true);
      if (si < 0) return false;
      w.slots[si].pins |= 1 << q;
    }
    return true;
  }

  /** Queue q stopped: its rings may be evicted now. */
  unpin(q: number): void {
    this.stuck[q] = 0;
    if (this.win) for (const s of this.win.slots) s.pins &= ~(1 << q);
  }

  /** Did the one fence over the window catch a fault? */
  faulted(): boolean {
    const w = this.win, { dp, host } = this.p;
    return w !== null && !!host.fenceFaults(dp.u8, w.base, w.slots.length * 2 * w.chunk);
  }

  /** Guest memory mapped in the window now, bytes. */
  get mappedBytes(): number { return this.win?.slots.reduce((s, x) => s + x.len, 0) ?? 0; }

  /** The window's state, null while the guest (if any) is mapped whole. */
  stats(): WindowStats | null {
    const w = this.win, { dp, mt } = this.p;
    if (!w) return null;
    return { slots: w.slots.length, mapped: w.slots.filter((s) => s.region >= 0).length, misses: Number(dp.u64(mt + dp.abi.MT_MISSES)), ...this.counts };
  }
}
