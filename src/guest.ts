// The guest's half of a passthrough port (a ptnetmap guest): another process — or a worker
// thread — that owns one switch port's rings. A process guest asks the switch daemon for the
// port over its control socket and receives, by SCM_RIGHTS, the port's region memfd, its CSB
// page and two eventfds; it maps the two memfds into its own wasm memory and uses netmap's ring
// API on them. A sync publishes head/cur through the CSB; a kick is sent only when the switch
// asked for one, and the guest sleeps only after asking for a kick and re-checking.
import { fstatSync } from 'node:fs';
import { Datapath } from './datapath.js';
import { WasmapError } from './errors.js';
import { requireHost, NativeHost } from './host.js';
import { RingView } from './port.js';
import type { Generator } from './gen.js';
import type { PtProcessInfo, PtWorkerInfo } from './backends/passthrough.js';

type Dir = 'tx' | 'rx';

export interface GuestOpenOptions { slots?: number; bufSize?: number; timeoutMs?: number }

export class PtGuest {
  readonly dp: Datapath; readonly tx: RingView; readonly rx: RingView;
  readonly name: string; readonly slots: number; readonly bufSize: number;
  /** Kicks this guest sent the switch / got from it, and times it went to sleep. */
  kicksSent = 0; kicksReceived = 0; sleeps = 0; sleptMs = 0; timeouts = 0;
  private readonly host: NativeHost;
  /** Where this guest sees its CSB page and its region (in its own memory). */
  readonly csb: number; readonly regionBase: number;
  private readonly seq: Int32Array | null; // worker guests sleep on the CSB's kick word
  private readonly seqIdx: number = 0;
  private sock: number;
  private readonly kickSwitch: number; private readonly kickGuest: number;
  private readonly spans: [number, number][] = [];

  /** Open port `port` (valeX:NAME, a new port) of the switch daemon listening on `socket`. */
  static connect(socket: string, port: string, o: GuestOpenOptions = {}): PtGuest {
    const m = /^(vale[A-Za-z0-9_]*):([A-Za-z0-9_.-]+)$/.exec(port);
    if (!m) throw new WasmapError('EINVAL', `bad port '${port}': a passthrough guest opens a switch port, valeX:NAME (e.g. vale0:vm1)`);
    const host = requireHost();
    let fd: number;
    try { fd = host.unixConnect(socket); } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ENOENT' || code === 'ECONNREFUSED') throw new WasmapError('ENOSWITCH', `no switch daemon at ${socket}: start one with \`wasmap switch ${m[1]}\` (or pass --socket PATH)`);
      throw e;
    }
    const fds: number[] = [];
    try {
      const req = { id: 1, verb: 'pt-open', args: { switch: m[1], port: m[2], slots: o.slots, bufSize: o.bufSize, pid: process.pid } };
      host.sendFds(fd, new TextEncoder().encode(JSON.stringify(req) + '\n'), []);
      let text = '';
      const deadline = Date.now() + (o.timeoutMs ?? 10000);
      while (!text.includes('\n')) {
        const left = deadline - Date.now();
        const got = left > 0 ? host.recvFds(fd, 65536, left) : null;
        if (!got) throw new WasmapError('ETIMEDOUT', `no answer from the switch daemon at ${socket}`);
        if (got.data.length === 0) throw new WasmapError('ECONNRESET', `the switch daemon at ${socket} closed the connection`);
        fds.push(...got.fds);
        text += new TextDecoder().decode(got.data);
      }
      const reply = JSON.parse(text.slice(0, text.indexOf('\n'))) as { ok: boolean; result?: PtProcessInfo; error?: { code: string; message: string } };
      if (!reply.ok) throw new WasmapError(reply.error?.code ?? 'EIO', reply.error?.message ?? 'refused');
      if (fds.length !== 4) throw new WasmapError('EPROTO', `the switch sent ${fds.length} file descriptors, expected 4 (region, CSB, two eventfds)`);
      return new PtGuest(host, { kind: 'process', info: reply.result!, sock: fd, fds });
    } catch (e) {
      for (const f of fds) host.closeFd(f);
      host.closeFd(fd);
      throw e;
    }
  }

  /** A guest process whose port was opened for it by another process (a launcher that did the
   *  pt-open and passed the four fds on, in PtProcessInfo.fds order: region, CSB, kickSwitch,
   *  kickGuest). The fds become this guest's; it has no control connection of its own. */
  static fromFds(info: PtProcessInfo, fds: number[]): PtGuest {
    if (fds.length !== 4) throw new WasmapError('EINVAL', `a passthrough guest needs 4 fds (region, CSB, two eventfds), not ${fds.length}`);
    return new PtGuest(requireHost(), { kind: 'process', info, sock: -1, fds });
  }

  /** A worker-thread guest over the switch's own memory (PtPort.workerInfo(), posted to it). */
  static fromWorker(info: PtWorkerInfo): PtGuest {
    return new PtGuest(requireHost(), { kind: 'worker', info });
  }

  private constructor(host: NativeHost, src: { kind: 'process'; info: PtProcessInfo; sock: number; fds: number[] } | { kind: 'worker'; info: PtWorkerInfo }) {
    this.host = host;
    const info = src.info;
    this.name = info.name; this.slots = info.slots; this.bufSize = info.bufSize;
    let base: number;
    if (src.kind === 'process') {
      const [regionFd, csbFd, kickSwitch, kickGuest] = src.fds;
      this.sock = src.sock; this.kickSwitch = kickSwitch; this.kickGuest = kickGuest;
      this.dp = new Datapath({ maxPages: Math.ceil((src.info.span + 4 * 65536) / 65536) + 64 });
      const page = src.info.csbPage;
      // what arrived must be what was promised, or mapping it could fault later
      if (fstatSync(regionFd).size !== src.info.span || fstatSync(csbFd).size !== page) {
        throw new WasmapError('EPROTO', `the switch sent memfds of ${fstatSync(regionFd).size} and ${fstatSync(csbFd).size} bytes, expected ${src.info.span} and ${page}`);
      }
      base = this.dp.alloc(src.info.span, 65536);
      host.mapFd(this.dp.u8, base, src.info.span, regionFd);
      this.spans.push([base, src.info.span]);
      this.csb = this.dp.alloc(page, page);
      host.mapFd(this.dp.u8, this.csb, page, csbFd);
      this.spans.push([this.csb, page]);
      host.closeFd(regionFd); host.closeFd(csbFd); // the mappings keep the memory
      this.seq = null;
    } else {
      this.sock = -1; this.kickSwitch = src.info.kickSwitch; this.kickGuest = -1;
      this.dp = new Datapath({ memory: src.info.memory, arena: src.info.arena });
      base = src.info.base; this.csb = src.info.csb;
      this.seq = new Int32Array(this.dp.memory.buffer);
      this.seqIdx = (this.csb + this.dp.abi.CSB_KTOA_TX + this.dp.abi.CSB_KTOA_KICK_SEQ) >> 2;
    }
    this.regionBase = base;
    this.tx = new RingView(this.dp, this.kring(base, info.span, info.nbufs, 'tx'));
    this.rx = new RingView(this.dp, this.kring(base, info.span, info.nbufs, 'rx'));
  }

  // The guest's own record of a ring (the kring shape, so RingView and the generator work on
  // it), checked against the span so that nothing it computes points outside the region.
  private kring(base: number, span: number, nbufs: number, dir: Dir): number {
    const dp = this.dp, a = dp.abi;
    const i = dir === 'tx' ? 0 : dp.u32(base + a.IF_TX_RINGS);
    const ring = base + Number(dp.dv.getBigInt64(base + a.IF_RING_OFS + 8 * i, true));
    const slots = dp.u32(ring + a.RING_NUM_SLOTS), bsize = dp.u32(ring + a.RING_BUF_SIZE);
    const bufBase = ring + Number(dp.dv.getBigInt64(ring + a.RING_BUF_OFS, true));
    const end = base + span;
    if (ring < base || ring + a.RING_SLOTS + a.SLOT_SIZE * slots > end || slots !== this.slots || bsize !== this.bufSize ||
        bufBase < base || bufBase + nbufs * bsize > end) {
      throw new WasmapError('EPROTO', `the ${dir} ring of ${this.name} does not lie inside its region (a corrupted region or a different wasmap version)`);
    }
    const k = dp.alloc(a.KRING_SIZE, 64);
    dp.setU32(k + a.KR_RING, ring); dp.setU32(k + a.KR_USER, ring); dp.setU32(k + a.KR_NSLOTS, slots);
    dp.setU32(k + a.KR_DIR, dir === 'tx' ? a.DIR_TX : a.DIR_RX); dp.setU32(k + a.KR_BUF_BASE, bufBase);
    dp.setU32(k + a.KR_BUF_SIZE, bsize); dp.setU32(k + a.KR_NBUFS, nbufs);
    return k;
  }

  private entries(dir: Dir): [number, number, number] {
    const a = this.dp.abi;
    return dir === 'tx' ? [this.tx.ring, this.csb + a.CSB_ATOK_TX, this.csb + a.CSB_KTOA_TX] : [this.rx.ring, this.csb + a.CSB_ATOK_RX, this.csb + a.CSB_KTOA_RX];
  }

  /** netmap's NIOCTXSYNC / NIOCRXSYNC: publish head and cur, learn the new tail. */
  sync(dir: Dir): void {
    const [ring, atok, ktoa] = this.entries(dir);
    if (this.dp.fn.pt_app_sync(ring, atok, ktoa)) { this.host.eventfdSignal(this.kickSwitch); this.kicksSent++; }
  }
  txsync(): void { this.sync('tx'); }
  rxsync(): void { this.sync('rx'); }

  /** Slots the guest can use now: free tx slots, or rx slots holding frames. */
  available(dir: Dir): number { return dir === 'tx' ? this.tx.space : this.rx.space; }

  /** Sleep until the ring has at least `need` usable slots (tx: free, rx: full) or timeoutMs
   *  passes. Asks the switch for a kick, then checks once more before sleeping, so a kick is
   *  never missed; the switch kicks only because we asked. Returns whether the need is met. */
  wait(dir: Dir, timeoutMs: number, need = 1): boolean {
    const [ring, atok, ktoa] = this.entries(dir);
    const t0 = performance.now();
    for (;;) {
      this.sync(dir);
      if (this.available(dir) >= need) return true;
      const left = timeoutMs - (performance.now() - t0);
      if (left <= 0) return false;
      const seq = this.seq ? Atomics.load(this.seq, this.seqIdx) : 0;
      if (this.dp.fn.pt_app_want_kick(ring, atok, ktoa)) continue; // news came meanwhile
      this.sleeps++;
      const s0 = performance.now();
      if (this.seq) {
        if (Atomics.wait(this.seq, this.seqIdx, seq, left) !== 'timed-out') this.kicksReceived++; else this.timeouts++;
      } else {
        const k = this.host.pollFds([this.kickGuest], Math.ceil(left))[0] ? this.host.eventfdDrain(this.kickGuest) : 0;
        if (k) this.kicksReceived += k; else this.timeouts++;
      }
      this.sleptMs += performance.now() - s0;
      this.dp.fn.pt_app_awake(atok);
    }
  }

  /** Errors the switch found in what this guest wrote (0 = healthy): its port is broken. */
  get errors(): { tx: number; rx: number } {
    const a = this.dp.abi, dv = this.dp.dv;
    return { tx: dv.getInt32(this.csb + a.CSB_KTOA_TX + a.CSB_KTOA_ERROR, true), rx: dv.getInt32(this.csb + a.CSB_KTOA_RX + a.CSB_KTOA_ERROR, true) };
  }

  /** Queue frames and sync; returns how many fit. */
  send(frames: Uint8Array[]): number { const n = this.tx.send(frames); this.txsync(); return n; }
  /** Sync, read every frame waiting, release their slots. */
  recv(): Uint8Array[] { this.rxsync(); const f = this.rx.recv(); this.rxsync(); return f; }

  /** pkt-gen's tx loop: fill and sync until `stop()`; spin `spinUs` before sleeping. */
  pumpTx(gen: Generator, stop: () => boolean, spinUs = 50, minBatch = Math.min(256, this.slots >> 2)): void {
    const k = this.tx.kring;
    let idle = 0;
    while (!stop()) {
      // fill only a worthwhile batch: refilling each slot the switch frees, one at a time,
      // makes both sides bounce the ring's cache lines for every frame
      const n = this.tx.space >= minBatch || gen.budget < minBatch ? gen.fill(k) : 0;
      this.txsync();
      if (n > 0) { idle = 0; continue; }
      if (gen.budget === 0) return;
      const now = performance.now();
      if (idle === 0) idle = now;
      else if ((now - idle) * 1000 > spinUs) { this.wait('tx', 100, minBatch); idle = 0; }
    }
  }

  /** pkt-gen's rx loop: sync and drain until `stop()`; spin `spinUs` before sleeping. */
  pumpRx(gen: Generator, stop: () => boolean, spinUs = 50): void {
    const k = this.rx.kring;
    let idle = 0;
    while (!stop()) {
      this.rxsync();
      if (gen.drain(k) > 0) { idle = 0; continue; }
      const now = performance.now();
      if (idle === 0) idle = now;
      else if ((now - idle) * 1000 > spinUs) { this.wait('rx', 100); idle = 0; }
    }
    this.rxsync();
  }

  /** Leave: the switch reclaims the port when the socket closes (also if this process dies). */
  close(): void {
    if (this.sock >= 0) { this.host.closeFd(this.sock); this.sock = -1; }
    if (this.spans.length) {
      this.host.closeFd(this.kickSwitch); this.host.closeFd(this.kickGuest);
      for (const [at, len] of this.spans.splice(0)) this.host.unmap(this.dp.u8, at, len);
    }
  }
}
