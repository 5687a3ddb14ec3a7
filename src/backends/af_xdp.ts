// AF_XDP ports (`af_xdp:IF[@QUEUE]`): XDP sockets on an existing interface, one per rx queue
// (all of them when no queue is named), joined to the switch port named IF. Each socket's UMEM
// is a page-aligned span of the wasm memory and its four rings are mmapped MAP_FIXED into
// spans of it (host-native/src/xdp.c); the datapath (assembly/xsk.ts) moves descriptors and
// copies frames itself, so there is no system call per frame and at most one native call per
// batch each way (a tx kick, only while the kernel asks for one: XDP_USE_NEED_WAKEUP).
// Our XDP program (redirect by rx queue to the sockets, else pass) is attached through a
// bpf_link held by an fd: closing it (detach, or this process dying) removes it.
//
// Copies: one from UMEM to the port's netmap buffer on rx, one back on tx (why: assembly/xsk.ts).
// What veth needs: frames redirected by XDP never get their checksums completed or GSO
// segments cut, so the peer (the namespace end) must send whole, checksummed frames:
// `ethtool -K PEER tx off tso off gso off` (native mode turns the peer's GSO off by itself
// while the program is attached; checksum offload it does not).
import { readdirSync } from 'node:fs';
import type { NativeHost } from '../host.js';
import type { Datapath } from '../datapath.js';
import type { SwitchPort, PortStats } from '../switch.js';
import { WasmapError } from '../errors.js';
import type { AttachContext, Fields, Verdict } from './backend.js';
import { KernelPort, attachKernel } from './kernel.js';

// Every ring's size. rx and tx frames: NDESC / 2 each. The kernel publishes how far it read the
// fill ring only when it runs out of what it saw, so an address of a frame it has taken may
// still count as "in the fill ring" after the frame came back on the rx ring and went in again:
// with at most NDESC / 2 rx frames the fill ring can never look full (each frame counted at most twice).
const NDESC = 4096;
const RX_FRAMES = NDESC / 2, TX_FRAMES = NDESC / 2;
const FRAME = 2048;        // UMEM chunk: room for 1792-byte frames after the kernel's 256-byte headroom
const PAGE = 4096;
const KICK_BATCH = 32; // frames one copy-mode sendto() sends before 6.17 (TX_BATCH_SIZE)
const KICK_US = 20;

export type XdpMode = 'native' | 'skb' | 'auto';
export type ZeroCopy = 'auto' | 'on' | 'off';

/** Bytes the four rings of one socket take (fill, comp: 8-byte entries; rx, tx: 16), as xdp.c lays them. */
export function xskRingBytes(n: number): number {
  const up = (v: number) => Math.ceil(v / PAGE) * PAGE;
  return 2 * up(PAGE + n * 8) + 2 * up(PAGE + n * 16);
}

interface RingWords { producer: number; consumer: number; flags: number; desc: number }
interface Queue {
  q: number; fd: number; zeroCopy: boolean;
  st: number; free: number; umem: number; umemBytes: number; rings: number; ringBytes: number; tx: RingWords;
}
interface KernelXskStats { rxDropped: number; rxInvalid: number; txInvalid: number; rxRingFull: number; fillRingEmpty: number; txRingEmpty: number; error: number }

const DROPS = ['XSK_RX_BAD_DESC', 'XSK_RX_TOO_BIG', 'XSK_TX_TOO_BIG'] as const;
const DROP_NAMES: Record<(typeof DROPS)[number], string> = {
  XSK_RX_BAD_DESC: 'rxBadDesc', XSK_RX_TOO_BIG: 'rxTooBig', XSK_TX_TOO_BIG: 'txTooBig',
};

/** The rx queues of a Linux interface (sysfs), at least 1. */
function rxQueues(ifname: string): number {
  try { return Math.max(1, readdirSync(`/sys/class/net/${ifname}/queues`).filter((f) => f.startsWith('rx-')).length); } catch { return 1; }
}

export class AfXdpPort extends KernelPort {
  readonly kind = 'af_xdp' as const;
  private queues: Queue[] = [];
  private xdp: { link: number; prog: number; map: number } | null;
  /** Counters frozen when the sockets went (a port listed down still shows them). */
  private last: Record<string, number> | null = null;
  private kernelLast = new Map<number, KernelXskStats>();
  private readonly ctr = new Map<string, number>(); // moved frames of queues already closed

  private constructor(host: NativeHost, dp: Datapath, ifname: string, port: SwitchPort, queues: Queue[],
                      xdp: { link: number; prog: number; map: number }, readonly mode: string, readonly queueSpec: number | null) {
    super(host, dp, ifname, port, queues[0].fd);
    this.queues = queues; this.xdp = xdp;
  }

  static open(host: NativeHost, dp: Datapath, ifname: string, queue: number | null, mode: XdpMode, zc: ZeroCopy, attach: () => SwitchPort): AfXdpPort {
    const qs = queue === null ? [...Array(rxQueues(ifname)).keys()] : [queue];
    const made: Queue[] = [];
    let xdp: { link: number; prog: number; map: number; mode: string } | null = null;
    const undo = () => {
      if (xdp) for (const fd of [xdp.link, xdp.prog, xdp.map]) host.closeFd(fd);
      for (const q of made) AfXdpPort.freeQueue(host, dp, q);
    };
    try {
      // the program first: it names what is wrong with the interface (missing, another program) before any memory is taken
      xdp = host.xdpAttach(ifname, mode === 'native' ? 1 : mode === 'skb' ? 2 : 0, Math.max(...qs) + 1);
      for (const q of qs) {
        const a = dp.abi;
        const umemBytes = (RX_FRAMES + TX_FRAMES) * FRAME, ringBytes = xskRingBytes(NDESC);
        const umem = dp.alloc(umemBytes, 65536);
        const rings = dp.alloc(ringBytes, 65536, false);
        const st = dp.alloc(a.XSK_SIZE), free = dp.alloc(TX_FRAMES * 4);
        const rec: Queue = { q, fd: -1, zeroCopy: false, st, free, umem, umemBytes, rings, ringBytes: 0, tx: { producer: 0, consumer: 0, flags: 0, desc: 0 } };
        made.push(rec);
        const r = host.xskOpen(ifname, q, dp.u8, umem, umemBytes, FRAME, rings, NDESC, zc === 'on' ? 1 : zc === 'off' ? 2 : 0);
        rec.fd = r.fd; rec.zeroCopy = r.zeroCopy; rec.ringBytes = ringBytes; rec.tx = r.tx;
        const put = (at: number, w: RingWords) => { dp.setU32(st + at, w.producer); dp.setU32(st + at + 4, w.consumer); dp.setU32(st + at + 8, w.flags); dp.setU32(st + at + 12, w.desc); };
        put(a.XSK_FILL, r.fill); put(a.XSK_COMP, r.comp); put(a.XSK_RX, r.rx); put(a.XSK_TX, r.tx);
        dp.setU32(st + a.XSK_NDESC, NDESC); dp.setU32(st + a.XSK_UMEM, umem);
        dp.setU32(st + a.XSK_FSIZE, FRAME); dp.setU32(st + a.XSK_RX_FRAMES, RX_FRAMES); dp.setU32(st + a.XSK_TX_FRAMES, TX_FRAMES);
        dp.setU32(st + a.XSK_FREE, free);
        dp.fn.xsk_init(st);
        host.xskMapSet(xdp.map, q, r.fd); // from here the kernel redirects this queue's frames to us
      }
    } catch (e) {
      undo();
      const err = e as Error & { code?: string };
      throw new WasmapError(err.code ?? 'EIO', `af_xdp:${ifname}${queue === null ? '' : `@${queue}`}: ${err.message}`);
    }
    try {
      return new AfXdpPort(host, dp, ifname, attach(), made, xdp, xdp.mode, queue);
    } catch (e) { undo(); throw e; }
  }

  /** The socket closed first (the kernel stops writing the UMEM), then its rings unmapped and
   *  the spans given back. */
  private static freeQueue(host: NativeHost, dp: Datapath, q: Queue): void {
    if (q.fd >= 0) { try { host.closeFd(q.fd); } catch { /* gone */ } q.fd = -1; }
    try { host.unmap(dp.u8, q.rings, xskRingBytes(NDESC)); } catch { /* memory gone */ }
    dp.release(q.rings, xskRingBytes(NDESC));
    dp.release(q.umem, q.umemBytes);
    dp.release(q.st, dp.abi.XSK_SIZE);
    dp.release(q.free, TX_FRAMES * 4);
  }

  private sum(name: string): number {
    const at = this.dp.abi[name];
    let n = this.ctr.get(name) ?? 0;
    for (const q of this.queues) n += Number(this.dp.u64(q.st + at));
    return n;
  }

  /** The kernel's own counters (XDP_STATISTICS) of each socket; an interface that went away
   *  shows as a pending ENETDOWN. */
  private kernelStats(): KernelXskStats {
    const t: KernelXskStats = { rxDropped: 0, rxInvalid: 0, txInvalid: 0, rxRingFull: 0, fillRingEmpty: 0, txRingEmpty: 0, error: 0 };
    for (const q of this.queues) {
      const s = q.fd >= 0 ? this.host.xskStats(q.fd) : null;
      if (s) this.kernelLast.set(q.q, s);
      if (s?.error) t.error = s.error;
    }
    for (const s of this.kernelLast.values()) for (const k of ['rxDropped', 'rxInvalid', 'txInvalid', 'rxRingFull', 'fillRingEmpty', 'txRingEmpty'] as const) t[k] += s[k];
    return t;
  }

  /** Frames dropped on the way: ours by reason, and the kernel's (fill ring empty is a cause of
   *  rxDropped, not a drop of its own, so it is not added twice). */
  get kernelDrops(): number {
    const d = this.dropCounts();
    return Object.values(d).reduce((a, b) => a + b, 0);
  }
  private dropCounts(): Record<string, number> {
    if (this.last) return Object.fromEntries(Object.entries(this.last).filter(([k]) => k.startsWith('drop')));
    const k = this.kernelStats();
    const out: Record<string, number> = {};
    for (const d of DROPS) out[`drop_${DROP_NAMES[d]}`] = this.sum(d);
    out.drop_kernelRxDropped = k.rxDropped; out.drop_kernelRxRingFull = k.rxRingFull;
    out.drop_kernelRxInvalid = k.rxInvalid; out.drop_kernelTxInvalid = k.txInvalid;
    return out;
  }

  pull(max = 256): number {
    if (this.down) return 0;
    const k = this.port.tx.kring;
    let moved = 0;
    for (const q of this.queues) {
      if (moved >= max) break;
      const r = this.dp.fn.xsk_pull(q.st, k, max - moved);
      moved += r & 0x7fffffff;
      if (r < 0) { // the fill ring asks for a wake-up (zero-copy drivers)
        const rc = this.host.xskWakeRx(q.fd);
        if (rc < 0) { this.gone('recvfrom', rc); return moved; }
      }
    }
    this.rxFrames += moved;
    return moved;
  }

  /** rx ring → the first socket's tx ring (any socket of the interface may send). In copy
   *  mode every sendto() is where the kernel sends, and under load the loop comes round with a
   *  frame or two per pass: the kick waits until KICK_BATCH frames are owed, the pass that
   *  posts nothing new (the burst ended), or KICK_US after the first owed frame, whichever
   *  comes first — a lone frame (a ping) goes out one pass later, a stream in batches. */
  push(): number {
    if (this.down) return 0;
    const q = this.queues[0];
    const r = this.dp.fn.xsk_push(q.st, this.port.rx.kring);
    const n = r & 0x7fffffff;
    this.txFrames += n;
    if (r >= 0) { this.owed = 0; return n; } // the kernel asks for no kick (zero-copy drivers busy-polling)
    if (n > 0) {
      if (this.owed === 0) this.owedSince = performance.now();
      this.owed += n;
      if (this.owed < KICK_BATCH && (performance.now() - this.owedSince) * 1000 < KICK_US) return n;
    } else if (this.owed === 0) return 0;
    this.owed = 0;
    this.kick(q);
    return n;
  }
  private owed = 0; // frames posted since the last kick
  private owedSince = 0;

  private kick(q: Queue): void {
    const rc = this.host.xskKick(q.fd, this.dp.u8, q.tx.producer, q.tx.consumer);
    if (rc < 0) this.gone('sendto', rc);
  }

  sleepFds(fds: number[]): Verdict {
    if (this.down) return 'sleep';
    const k = this.kernelStats();
    if (k.error) { this.gone('socket', -k.error); return 'sleep'; }
    let v: Verdict = 'sleep';
    for (const q of this.queues) {
      fds.push(q.fd);
      if (this.dp.fn.xsk_rx_pending(q.st) > 0) v = 'work';
    }
    // frames the kernel has not sent yet (a budget-limited sendto): kick and look again soon
    const q0 = this.queues[0];
    if (v !== 'work' && (this.owed > 0 || this.dp.fn.xsk_tx_pending(q0.st) > 0)) { this.owed = 0; this.kick(q0); v = 'nap'; }
    return v;
  }

  woke(_fds: number[], revents: number[]): void {
    if (!this.down && revents.some((r) => r & (8 | 16 | 32))) this.gone('poll', -100); // POLLERR/HUP/NVAL: as ENETDOWN
  }

  answersTo(spec: string): boolean {
    return spec === `af_xdp:${this.ifname}` || (spec.startsWith(`af_xdp:${this.ifname}@`)) || super.answersTo(spec);
  }

  info(): Fields {
    return { ifname: this.ifname, xdpMode: this.mode, queues: this.queues.map((q) => q.q), zeroCopy: this.queues.some((q) => q.zeroCopy) };
  }

  stats(): Fields {
    const d = this.dropCounts();
    const k = this.last ? { fillRingEmpty: this.last.fillRingEmpty, txRingEmpty: this.last.txRingEmpty } : this.kernelStats();
    return {
      kernelRx: this.rxFrames, kernelTx: this.txFrames, kernelDrops: Object.values(d).reduce((a, b) => a + b, 0), ...d,
      fillRingEmpty: k.fillRingEmpty, txBackpressure: this.last ? this.last.txBackpressure : this.sum('XSK_TX_FULL'),
      // frames (not packets) the kernel misaccounted: lost to the fill ring or returned wrongly, and broken ring indices
      umemFault: this.last ? this.last.umemFault : this.sum('XSK_FILL_LOST') + this.sum('XSK_COMP_BAD') + this.sum('XSK_RING_BAD'),
      xdpMode: this.mode,
    };
  }

  /** The interface went away or the socket broke: down with the reason, and everything let go
   *  at once (the port stays, listed down, until detached). */
  private gone(op: string, errno: number): void {
    this.fail(op, errno);
    this.teardown();
  }

  /** Idempotent: program off (closing its link), sockets closed, rings unmapped, UMEM freed. */
  private teardown(): void {
    if (!this.last) {
      const s = this.stats() as Record<string, number>;
      this.last = { ...Object.fromEntries(Object.entries(s).filter(([k]) => k.startsWith('drop'))), fillRingEmpty: s.fillRingEmpty, txBackpressure: s.txBackpressure, umemFault: s.umemFault };
    }
    if (this.xdp) {
      for (const fd of [this.xdp.link, this.xdp.prog, this.xdp.map]) { try { this.host.closeFd(fd); } catch { /* gone */ } }
      this.xdp = null;
    }
    for (const q of this.queues) AfXdpPort.freeQueue(this.host, this.dp, q);
    this.queues = [];
    this.fd = -1;
  }

  protected release(): void { this.teardown(); }

  close(reason: string, detach?: () => PortStats): { stats?: PortStats } {
    if (!detach) this.down ??= reason;
    const stats = detach?.();
    this.teardown();
    return { stats };
  }
}

/** 'af_xdp:IF' or 'af_xdp:IF@QUEUE' → [IF, QUEUE | null]. */
export function parseAfXdp(spec: string): [string, number | null] {
  const body = spec.slice('af_xdp:'.length), at = body.lastIndexOf('@');
  if (at < 0) return [body, null];
  const q = body.slice(at + 1);
  if (!/^\d{1,4}$/.test(q)) throw new WasmapError('EINVAL', `${spec}: the queue after '@' must be a number (af_xdp:IF@QUEUE)`);
  return [body.slice(0, at), Number(q)];
}

export const openAfXdp = (c: AttachContext): AfXdpPort => {
  const [, queue] = parseAfXdp(c.spec);
  const mode = (c.args.xdpMode ?? 'auto') as string, zc = (c.args.zeroCopy ?? 'auto') as string;
  if (!['native', 'skb', 'auto'].includes(mode)) throw new WasmapError('EINVAL', `--xdp-mode must be native, skb or auto, not ${mode}`);
  if (!['auto', 'on', 'off'].includes(zc)) throw new WasmapError('EINVAL', `--zero-copy must be auto, on or off, not ${zc}`);
  return attachKernel(c, (ifname, hdr, attach) => {
    if (hdr) throw new WasmapError('EINVAL', `af_xdp:${ifname}: AF_XDP ports carry no virtio-net header (XDP sees whole frames); attach without --vnet-hdr`);
    return AfXdpPort.open(c.host, c.dp, ifname, queue, mode as XdpMode, zc as ZeroCopy, attach);
  });
};
