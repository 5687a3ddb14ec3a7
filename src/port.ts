// A JavaScript view of netmap rings and ports, for tools and tests. It follows the netmap API
// (fill slots from head, advance head and cur, sync; read [head, tail) after a sync) but it is
// not the fast path: the datapath never calls back into this code.
import { Datapath, check } from './datapath.js';
import { WasmapError } from './errors.js';
import type { NativeHost } from './host.js';

export interface RegionOptions {
  txRings?: number; rxRings?: number; slots?: number; bufSize?: number; extraBufs?: number; name?: string;
  /** Back the span with its own sealed memfd (Region.fd), so it can be handed to another
   *  process alone: that process sees this region and nothing else of the memory. */
  shareWith?: NativeHost;
}

/** A netmap memory region (its span in linear memory plus its kernel-side descriptor). */
export class Region {
  readonly dp: Datapath;
  readonly desc: number; readonly base: number; readonly span: number;
  readonly txRings: number; readonly rxRings: number; readonly slots: number; readonly bufSize: number; readonly nbufs: number;
  private readonly privSize: number;
  private closed = false;
  /** The memfd behind the span (with shareWith), else -1. */
  readonly fd: number = -1;
  private readonly host: NativeHost | null = null;

  constructor(dp: Datapath, o: RegionOptions = {}) {
    const ntx = o.txRings ?? 1, nrx = o.rxRings ?? 1, slots = o.slots ?? 1024;
    const bufSize = o.bufSize ?? 2048, extra = o.extraBufs ?? 0;
    const span = dp.fn.region_span_size(ntx, nrx, slots, bufSize, extra);
    if (span === 0) {
      throw new WasmapError('EINVAL', `bad region geometry: ${ntx} tx / ${nrx} rx rings (0..64 each, not both 0), ${slots} slots (2..4096), buffer ${bufSize} bytes (64..65536, a multiple of 64), ${extra} extra buffers; the region must stay under 1 GiB`);
    }
    this.dp = dp;
    this.privSize = dp.fn.region_priv_size(ntx, nrx, slots, extra);
    this.base = dp.alloc(span, 65536);
    if (o.shareWith) {
      const h = o.shareWith;
      try {
        this.fd = h.memfdCreate(`wasmap:${o.name ?? 'region'}`, span, true);
        h.mapFd(dp.u8, this.base, span, this.fd);
      } catch (e) {
        if (this.fd >= 0) h.closeFd(this.fd);
        dp.release(this.base, span);
        throw e;
      }
      this.host = h;
    }
    this.desc = dp.alloc(this.privSize, 64);
    this.span = span;
    check(dp.fn.region_init(this.desc, this.base, span, ntx, nrx, slots, bufSize, extra), 'region_init');
    this.txRings = ntx; this.rxRings = nrx; this.slots = slots; this.bufSize = bufSize;
    this.nbufs = dp.fn.region_nbufs(ntx, nrx, slots, extra);
    if (o.name) this.setName(o.name);
  }

  setName(name: string): void {
    const bytes = new TextEncoder().encode(name).subarray(0, 15);
    const ifp = this.dp.u32(this.desc + this.dp.abi.RGN_IF);
    this.dp.u8.fill(0, ifp, ifp + 16);
    this.dp.u8.set(bytes, ifp);
  }

  kring(dir: 'tx' | 'rx', i = 0): number {
    const k = this.dp.fn.region_kring(this.desc, dir === 'tx' ? 0 : 1, i);
    if (!k) throw new WasmapError('EINVAL', `region has no ${dir} ring ${i}`);
    return k;
  }
  ring(dir: 'tx' | 'rx', i = 0): RingView { return new RingView(this.dp, this.kring(dir, i)); }

  /** Buffers on the free stack. */
  get freeBuffers(): number { return this.dp.fn.pool_free_count(this.desc); }

  /** Every buffer 2..nbufs-1 in exactly one slot or on the free stack? Returns the problems found. */
  audit(): string[] {
    const dp = this.dp, a = dp.abi, seen = new Uint8Array(this.nbufs), problems: string[] = [];
    const claim = (idx: number, where: string) => {
      if (idx < 2 || idx >= this.nbufs) problems.push(`${where}: buffer ${idx} out of range`);
      else if (seen[idx]++) problems.push(`${where}: buffer ${idx} held twice`);
    };
    for (let r = 0; r < this.txRings + this.rxRings; r++) {
      const v = new RingView(dp, dp.u32(this.desc + a.RGN_KRINGS) + a.KRING_SIZE * r);
      for (let s = 0; s < v.numSlots; s++) claim(v.bufIdx(s), `ring ${r} slot ${s}`);
    }
    const free = dp.u32(this.desc + a.RGN_FREE);
    for (let i = 0; i < this.freeBuffers; i++) claim(dp.u32(free + 4 * i), `free stack ${i}`);
    for (let i = 2; i < this.nbufs; i++) if (!seen[i]) problems.push(`buffer ${i} lost`);
    return problems;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.host) { // fresh anonymous pages back over the span: the memfd leaves with its fd
      this.host.unmap(this.dp.u8, this.base, this.span);
      this.host.closeFd(this.fd);
    }
    this.dp.release(this.base, this.span);
    this.dp.release(this.desc, this.privSize);
  }
}

/** One ring through its kring: the user's fields (head, cur, tail, slots) and the kernel's mirror. */
export class RingView {
  readonly dp: Datapath; readonly kring: number; readonly ring: number; readonly numSlots: number;
  constructor(dp: Datapath, kring: number) {
    this.dp = dp; this.kring = kring;
    this.ring = dp.u32(kring + dp.abi.KR_RING);
    this.numSlots = dp.u32(kring + dp.abi.KR_NSLOTS);
  }
  private f(off: string): number { return this.dp.u32(this.ring + this.dp.abi[off]); }
  get head(): number { return this.f('RING_HEAD'); }
  set head(v: number) { this.dp.setU32(this.ring + this.dp.abi.RING_HEAD, v); }
  get cur(): number { return this.f('RING_CUR'); }
  set cur(v: number) { this.dp.setU32(this.ring + this.dp.abi.RING_CUR, v); }
  get tail(): number { return this.f('RING_TAIL'); }
  set tail(v: number) { this.dp.setU32(this.ring + this.dp.abi.RING_TAIL, v); }
  /** The buffer size from the kring (private), not the ring header a ring's user can rewrite. */
  get bufSize(): number { return this.dp.u32(this.kring + this.dp.abi.KR_BUF_SIZE); }
  get hwcur(): number { return this.dp.u32(this.kring + this.dp.abi.KR_HWCUR); }
  get hwtail(): number { return this.dp.u32(this.kring + this.dp.abi.KR_HWTAIL); }
  get broken(): boolean { return (this.dp.u32(this.kring + this.dp.abi.KR_FLAGS) & this.dp.abi.KRF_BROKEN) !== 0; }
  get error(): number { return this.dp.dv.getInt32(this.kring + this.dp.abi.KR_ERR, true); }
  get packets(): bigint { return this.dp.u64(this.kring + this.dp.abi.KR_PKTS); }
  get bytes(): bigint { return this.dp.u64(this.kring + this.dp.abi.KR_BYTES); }
  /** nm_ring_space: slots in [head, tail). */
  get space(): number { return (this.tail - this.head + this.numSlots) % this.numSlots; }
  next(i: number): number { return i + 1 === this.numSlots ? 0 : i + 1; }

  slot(i: number): number { return this.ring + this.dp.abi.RING_SLOTS + this.dp.abi.SLOT_SIZE * i; }
  bufIdx(i: number): number { return this.dp.u32(this.slot(i)); }
  setBufIdx(i: number, v: number): void { this.dp.setU32(this.slot(i), v); }
  len(i: number): number { return this.dp.u16(this.slot(i) + 4); }
  setLen(i: number, v: number): void { this.dp.setU16(this.slot(i) + 4, v); }
  flags(i: number): number { return this.dp.u16(this.slot(i) + 6); }
  setFlags(i: number, v: number): void { this.dp.setU16(this.slot(i) + 6, v); }
  /** The buffer of slot i (a live view; only valid while you own the slot). The slot's index
   *  is read once and checked against the region's buffer count, both sizes from the kring:
   *  a ring rewritten by its user cannot make this a view of memory outside the region. */
  buf(i: number): Uint8Array {
    const a = this.dp.abi, idx = this.bufIdx(i), nbufs = this.dp.u32(this.kring + a.KR_NBUFS), bsize = this.bufSize;
    if (i >= this.numSlots || idx >= nbufs) throw new WasmapError('EFAULT', `slot ${i} names buffer ${idx}; the region has ${nbufs} buffers`);
    const at = this.dp.u32(this.kring + a.KR_BUF_BASE) + idx * bsize;
    return this.dp.u8.subarray(at, at + bsize);
  }

  /**
   * Write frames into [head, tail) and advance head and cur past them; frames longer than the
   * buffer size become MOREFRAG chains. Returns how many whole frames fit (no sync).
   */
  send(frames: Uint8Array[], flags = 0): number {
    const MORE = this.dp.abi.NS_MOREFRAG;
    let h = this.head, room = this.space, n = 0;
    for (const f of frames) {
      const frags = Math.max(1, Math.ceil(f.length / this.bufSize));
      if (frags > room) break;
      for (let k = 0; k < frags; k++) {
        const part = f.subarray(k * this.bufSize, (k + 1) * this.bufSize);
        this.buf(h).set(part);
        this.setLen(h, part.length);
        this.setFlags(h, flags | (k < frags - 1 ? MORE : 0));
        h = this.next(h);
      }
      room -= frags;
      n++;
    }
    this.head = h; this.cur = h;
    return n;
  }

  /** Read the whole frames in [head, tail), joining MOREFRAG chains, and release them. */
  recv(max = Infinity): Uint8Array[] {
    const MORE = this.dp.abi.NS_MOREFRAG;
    const out: Uint8Array[] = [];
    const tail = this.tail;
    if (tail >= this.numSlots) return out; // a tail we never published: nothing to believe
    let h = this.head, parts: Uint8Array[] = [];
    while (h !== tail && out.length < max) {
      parts.push(this.buf(h).slice(0, this.len(h)));
      const more = (this.flags(h) & MORE) !== 0;
      h = this.next(h);
      if (!more) {
        out.push(parts.length === 1 ? parts[0] : concat(parts));
        parts = [];
        this.head = h; this.cur = h;
      }
    }
    return out;
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
