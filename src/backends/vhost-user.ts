// vhost-user ports: a QEMU guest's virtio-net device served directly by the switch. QEMU
// connects to our unix socket, hands over the guest's RAM (as fds) and its virtqueues'
// addresses; from then on the forwarding thread reads the guest's TX queue and fills its RX
// queue in place (assembly/virtio/vring.ts) — no hypervisor in the datapath, as with ptnetmap.
//
// The protocol (this file) is a small synchronous message loop run by the forwarding thread
// between rounds, so a memory-table change can never race a round. The switch port stays
// attached across QEMU sessions: when QEMU goes away (guest powered off, QEMU killed) the port
// goes down, the guest's memory is unmapped and every fd closed; the next connection starts
// a new session on the same port.
import { statSync, unlinkSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { Datapath } from '../datapath.js';
import { WasmapError } from '../errors.js';
import type { NativeHost } from '../host.js';
import type { SwitchPort, PortStats } from '../switch.js';
import { parsePortName } from '../portname.js';
import type { AttachContext, Backend, Fields } from './backend.js';
import { GuestWindow, MAX_DIRECT_RAM, VQE_WINDOW, type Mapped, type RegionWant, type WindowOptions } from './vhost-window.js';

// Requests (vhost-user spec, "Front-end message types") that this back-end understands.
export const REQ = {
  GET_FEATURES: 1, SET_FEATURES: 2, SET_OWNER: 3, RESET_OWNER: 4, SET_MEM_TABLE: 5, SET_LOG_BASE: 6, SET_LOG_FD: 7,
  SET_VRING_NUM: 8, SET_VRING_ADDR: 9, SET_VRING_BASE: 10, GET_VRING_BASE: 11, SET_VRING_KICK: 12, SET_VRING_CALL: 13,
  SET_VRING_ERR: 14, GET_PROTOCOL_FEATURES: 15, SET_PROTOCOL_FEATURES: 16, GET_QUEUE_NUM: 17, SET_VRING_ENABLE: 18,
  SEND_RARP: 19, NET_SET_MTU: 20,
} as const;
const REQ_NAME = Object.fromEntries(Object.entries(REQ).map(([k, v]) => [v, k])) as Record<number, string>;

const HDR = 12; // u32 request, u32 flags, u32 size
const F_VERSION = 0x1, F_REPLY = 0x4, F_NEED_REPLY = 0x8;
const MAX_PAYLOAD = 4096; // the largest message we take is SET_MEM_TABLE: 8 + 8 × 32 bytes
/** fds a front-end may have us hold for messages not yet complete (one SET_MEM_TABLE's worth):
 *  more, and the session ends (issue #15: one byte + 8 fds per send grew our fd table). */
export const MAX_PENDING_FDS = 8;
/** Bytes of one message not yet complete that we buffer: a header and the largest payload. */
export const MAX_PENDING_BYTES = HDR + MAX_PAYLOAD;
/** Messages handled per service() call (the forwarding thread's time between passes): a flood
 *  of requests waits in the socket and costs its sender, not every other port, a stall. */
export const MAX_MSGS_PER_SERVICE = 256;
/** Connections taken from the listening socket per service() call (the backlog is 4). */
export const MAX_ACCEPTS_PER_SERVICE = 8;
const RECV_BYTES = 8192; // per recvmsg: what waits unparsed is at most this + one partial message

/** Virtio feature bits offered to QEMU (GET_FEATURES). */
export const FEAT = {
  CSUM: 1n << 0n, GUEST_CSUM: 1n << 1n, GUEST_TSO4: 1n << 7n, GUEST_TSO6: 1n << 8n, HOST_TSO4: 1n << 11n, HOST_TSO6: 1n << 12n,
  MRG_RXBUF: 1n << 15n, MQ: 1n << 22n, INDIRECT_DESC: 1n << 28n, EVENT_IDX: 1n << 29n, PROTOCOL_FEATURES: 1n << 30n, VERSION_1: 1n << 32n,
} as const;
export const OFFERED = Object.values(FEAT).reduce((a, b) => a | b, 0n);
/** vhost-user protocol features offered: MQ (bit 0: queue pairs beyond the first, GET_QUEUE_NUM)
 *  and REPLY_ACK (bit 3). */
export const PROTO_MQ = 1n << 0n;
export const PROTO_REPLY_ACK = 1n << 3n;
export const PROTO_OFFERED = PROTO_MQ | PROTO_REPLY_ACK;
/** Queue pairs served (GET_QUEUE_NUM answers it). Pair p is RX queue 2p (to the guest) and TX
 *  queue 2p+1 (from the guest). A front-end that sets up more (DPDK's virtio-user does not ask
 *  GET_QUEUE_NUM) has the pairs beyond left unserved, with the reason in `ctl list`. */
export const MAX_PAIRS = 8;
const QUEUES = 2 * MAX_PAIRS;
const MAX_VRINGS = 256; // queue indexes a front-end may name (as VHOST_MAX_VRING); beyond: a protocol error
const RX = 0, TX = 1; // pair 0
const isTx = (q: number): boolean => (q & 1) === 1;
const ZC_NONE = 0xffffffff; // VQ_ZC_FROM: no zero-copy frames pending
/** A queue's name in reasons: pair 0 keeps the one-queue wording ("TX queue"). */
const qname = (q: number): string => `${isTx(q) ? 'TX' : 'RX'} queue${q > 1 ? ` ${q}` : ''}`;
const PAGE = 4096;
/** Guest RAM a port takes at all (its chunk tables: 8 bytes per 2 MiB, 4 MiB at this size). */
export const MAX_GUEST_RAM = 2 ** 40;

const VQE_TEXT: Record<number, string> = {
  1: 'avail->idx ran more than the queue size ahead of the used index (or went back)',
  2: 'a descriptor index beyond the queue (or its indirect table)',
  3: 'a buffer or indirect table outside the guest memory QEMU gave us',
  4: 'a device-writable descriptor in a TX chain',
  5: 'a device-readable descriptor in an RX chain',
  6: 'an indirect descriptor though INDIRECT_DESC was not negotiated',
  7: 'an indirect descriptor inside an indirect table',
  8: 'an indirect table of bad length (0, not 16×k, too long, or with NEXT set)',
  9: 'a descriptor chain longer than the queue: it loops',
  10: 'queue size 0, not a power of 2, or over 32768',
  11: 'a ring not inside guest memory, or misaligned',
  12: 'a descriptor chain spans more guest memory chunks than the window holds (attach with a larger --window)',
};

interface Queue { setup: boolean; num: number; base: number; desc: bigint; avail: bigint; used: bigint; addrSet: boolean; kick: number; call: number; err: number; started: boolean; enabled: boolean; kicks: number }
/** What a front-end tried to make us hold, refused (each refusal ends its session). */
export interface Refusals { fds: number; bytes: number; memoryFaults: number }

const freshQueue = (): Queue => ({ setup: false, num: 0, base: 0, desc: 0n, avail: 0n, used: 0n, addrSet: false, kick: -1, call: -1, err: -1, started: false, enabled: false, kicks: 0 });

/** direct (RX): of frames, those the switch wrote straight into the guest's buffers (one copy guest to guest). */
export interface QueueStats { frames: number; direct?: number; bytes: number; chains: number; dropBig: number; dropBad: number; stalls: number; calls: number; kicks: number; broken: string | null }

export class VhostUserPort implements Backend {
  readonly kind = 'vhost-user';
  readonly path: string;
  listenFd: number;
  conn = -1;
  /** Why the port does not move frames (no QEMU, a broken queue), null while it does. */
  down: string | null = 'waiting for QEMU to connect';
  sessions = 0;
  /** Queues the front-end set up this session (highest index + 1), counting those beyond MAX_PAIRS. */
  queuesAsked = 0;
  /** Queues beyond MAX_PAIRS pairs the guest enabled this session (their frames are not served). */
  private unservedEnabled = 0;
  /** Queues that run now (started, enabled, set up, healthy): pull drains txReady, push spreads over rxReady. */
  private txReady: number[] = [];
  private rxReady: number[] = [];
  private txNext = 0; // round-robin start among txReady
  private rxStarted = false; // an RX queue is started (frames wait for it rather than being discarded)
  private zcq = -1; // the TX queue whose zero-copy frames wait for vq_complete (settle), -1: none
  refusedConnections = 0;
  /** fds beyond what a message may carry or beyond MAX_PENDING_FDS, partial messages beyond
   *  MAX_PENDING_BYTES, guest RAM that shrank under the switch (SIGBUS fenced). */
  readonly refused: Refusals = { fds: 0, bytes: 0, memoryFaults: 0 };
  /** Control messages handled, all sessions. */
  messages = 0;
  private budget = 0; // messages this service() call may still handle
  /** Frames the switch sent the port while no guest could take them (discarded, counted). */
  downDrops = 0;
  features = 0n;
  protocolFeatures = 0n;
  /** The last protocol events, newest last (connects, memory tables, breaks, disconnects). */
  readonly events: string[] = [];
  private readonly mt: number; private readonly vqs: number[];
  private readonly mtBytes: number; // the memory table, QUEUES vq records, the steering list
  private readonly steer: number; // u32 × MAX_PAIRS: the records of rxReady, for vq_push_steer
  private readonly vqCall: number; private readonly vqBroken: number; private readonly vqZcFrom: number; // offsets in a vq record
  private readonly ptrs: number; private readonly ptrsBytes: number; // the tx kring's KR_PTRS array (0: zero-copy off)
  private readonly rxPtrs: number; private readonly rxPtrsBytes: number; // the rx kring's (direct receive; 0: off)
  private queues: Queue[] = Array.from({ length: QUEUES }, freshQueue);
  private regions: Mapped[] = [];
  /** The guest-memory window (vhost-window.ts): used while a guest is too large to map whole. */
  readonly window: GuestWindow;
  private inbuf = Buffer.alloc(0);
  private pendingFds: { at: number; fd: number }[] = []; // fds and the stream offset of their message
  private consumed = 0; // stream bytes parsed so far (offsets of pendingFds are in this count)
  private brokenSaid: number[] = new Array<number>(QUEUES).fill(0);
  private closed = false;
  /** The fences' fault count (a view, read without a call) and the value this port last looked at. */
  private readonly faultGen: Uint32Array;
  private faultSeen: number;

  constructor(private readonly host: NativeHost, private readonly dp: Datapath, readonly port: SwitchPort, path: string,
              private readonly setAccept: (offloads: string[]) => void, o: WindowOptions = {}) {
    this.faultGen = host.fenceGeneration();
    this.faultSeen = this.faultGen[0];
    const a = dp.abi;
    this.path = path;
    this.mtBytes = a.MT_SIZE + QUEUES * a.VQ_SIZE + 4 * MAX_PAIRS;
    this.mt = dp.alloc(this.mtBytes, 64);
    this.vqs = Array.from({ length: QUEUES }, (_, i) => this.mt + a.MT_SIZE + i * a.VQ_SIZE);
    this.steer = this.mt + a.MT_SIZE + QUEUES * a.VQ_SIZE;
    this.vqCall = a.VQ_CALL; this.vqBroken = a.VQ_BROKEN; this.vqZcFrom = a.VQ_ZC_FROM;
    dp.fn.mt_init(this.mt);
    for (const vq of this.vqs) dp.fn.vq_init(vq);
    this.window = new GuestWindow({ dp, host, mt: this.mt, regions: () => this.regions, fail: (why) => this.endSession(why), log: (s) => this.log(s) }, o);
    // zero-copy TX (vring.ts, VQ_ZC_PREFIX): the tx kring's private array of guest addresses,
    // one entry a slot (WASMAP_VHOST_ZEROCOPY=0 turns it off: every frame copied, as before)
    this.ptrsBytes = process.env.WASMAP_VHOST_ZEROCOPY === '0' ? 0 : a.VQ_PTR_SIZE * dp.u32(port.tx.kring + a.KR_NSLOTS);
    this.ptrs = this.ptrsBytes ? dp.alloc(this.ptrsBytes, 64) : 0;
    // direct receive (vring.ts): the switch writes frames straight into the guest's RX buffers
    // while the RX queue runs (rxDirect), their addresses in the rx kring's own private array
    this.rxPtrsBytes = this.ptrsBytes ? a.VQ_PTR_SIZE * dp.u32(port.rx.kring + a.KR_NSLOTS) : 0;
    this.rxPtrs = this.rxPtrsBytes ? dp.alloc(this.rxPtrsBytes, 64) : 0;
    try {
      claimPath(host, path);
      this.listenFd = host.unixListen(path, 4);
    } catch (e) {
      dp.release(this.mt, this.mtBytes);
      if (this.ptrs) dp.release(this.ptrs, this.ptrsBytes);
      if (this.rxPtrs) dp.release(this.rxPtrs, this.rxPtrsBytes);
      throw e;
    }
    if (this.ptrs) dp.setU32(port.tx.kring + a.KR_PTRS, this.ptrs);
    if (this.rxPtrs) dp.setU32(port.rx.kring + a.KR_PTRS, this.rxPtrs);
    this.log(`listening on ${path}`);
  }

  private log(s: string): void {
    this.events.push(`${new Date().toISOString()} ${s}`);
    if (this.events.length > 64) this.events.shift();
  }

  get connected(): boolean { return this.conn >= 0; }

  // ---- datapath (called by the forwarding loop every pass) ---------------------------------

  /**
   * Guest TX queues → the port's tx ring. Returns frames moved. Every running TX queue is
   * drained in turn, the first one round-robin from pass to pass; each takes at most its share
   * of what is left of `max` (what an idle queue leaves goes to the next), so a busy queue
   * cannot starve the others. Zero-copy (vq_pull's NS_INDIRECT slots) is given to one queue a
   * pass: vq_complete completes every zero-copy entry from that queue's first slot to the ring's
   * head onto that queue's used ring, so once one queue left zero-copy frames the queues after
   * it are pulled with KR_PTRS off (every frame copied, its chain used at once: no entry of
   * theirs in the ring).
   */
  pull(max = 256): number {
    if (this.conn < 0) return 0;
    const dp = this.dp, fn = dp.fn, k = this.port.tx.kring, w = this.window;
    // last pass's zero-copy frames not completed (no push ran): done now, before any queue
    // pulls, so each queue's vq_complete sees only its own entries
    if (this.zcPending()) this.settle();
    if (w.on) {
      // the start of a pull is the one place chunks are evicted: no descriptor of this port has
      // been read in this pass, and zero-copy frames of the last one (tx slots referring into
      // guest memory) are completed (settle above: their rest copied if no round took them),
      // so nothing in any port ring refers into its guest memory
      w.tick();
      if (w.missWait) {
        w.missWait = false;
        if (this.conn >= 0) w.takeMiss(true);
      }
    }
    const txs = this.txReady, m = txs.length;
    let n = 0, ptrsOff = false;
    const s0 = m > 1 ? this.txNext++ % m : 0;
    for (let j = 0; j < m && n < max && this.conn >= 0; j++) {
      const q = txs[(s0 + j) % m], vq = this.vqs[q];
      const share = Math.ceil((max - n) / (m - j));
      let got = fn.vq_pull(vq, this.mt, k, share) as number;
      if (w.on) got = w.afterMiss(q, vq, got, share, (mm) => fn.vq_pull(vq, this.mt, k, mm) as number);
      n += got;
      if (this.ptrs && !ptrsOff && dp.u32(vq + this.vqZcFrom) !== ZC_NONE) {
        this.zcq = q;
        if (j + 1 < m) { dp.setU32(k + dp.abi.KR_PTRS, 0); ptrsOff = true; }
      }
    }
    if (ptrsOff && !this.closed) dp.setU32(k + dp.abi.KR_PTRS, this.ptrs);
    if (this.checkFaults()) return n;
    for (const q of txs) this.after(this.vqs[q], q); // also after good chains: the break may come later in the call
    return n;
  }

  /**
   * The port's rx ring → the guest's RX queues (or discarded and counted while no guest is
   * there). One running queue: vq_push as ever. Several: vq_push_steer (steer.ts) gives each
   * frame to the queue of its flow hash, so one flow stays on one queue (in order, on one guest
   * CPU); a guest that enabled only pair 0 gets everything there.
   */
  push(): number {
    // the switch has taken this pass's zero-copy frames: their chains go back to the guest now
    if (this.conn >= 0 && this.zcPending()) this.settle();
    if (this.conn < 0 || !this.rxStarted) {
      const rx = this.port.rx;
      if (rx.head !== rx.tail) this.downDrops += this.port.recv().length;
      return 0;
    }
    const rxs = this.rxReady, fn = this.dp.fn, k = this.port.rx.kring;
    if (!rxs.length) return 0; // started, not (yet) enabled: frames wait, as in a full ring
    let n: number;
    if (rxs.length === 1) {
      const vq = this.vqs[rxs[0]];
      n = fn.vq_push(vq, this.mt, k) as number;
      if (this.window.on) n = this.window.afterMiss(rxs[0], vq, n, Infinity, () => fn.vq_push(vq, this.mt, k) as number);
    } else {
      const run = () => fn.vq_push_steer(this.steer, rxs.length, this.mt, k) as number;
      n = run();
      if (this.window.on) {
        const at = fn.steer_stopped_at() as number, q = rxs[at >= 0 ? at : 0];
        n = this.window.afterMiss(q, this.vqs[q], n, Infinity, run);
      }
    }
    if (this.checkFaults()) return n;
    for (const q of rxs) this.after(this.vqs[q], q);
    return n;
  }

  /** Zero-copy TX frames wait for vq_complete (pull noted the queue holding them). */
  private zcPending(): boolean { return this.zcq >= 0; }

  /** Complete the zero-copy TX chains (vq_complete): after the round, and before anything can
   *  stop a queue or unmap guest memory, so no slot refers to guest memory then. At most one
   *  TX queue holds them (pull), so its vq_complete sees only its own entries. */
  private settle(): void {
    if (!this.ptrs || this.closed) return;
    const k = this.port.tx.kring;
    this.dp.setU32(k + this.dp.abi.KR_PTRS, this.ptrs); // a pull cut short (the session ended in it) left it off
    this.zcq = -1;
    for (let q = 1; q < QUEUES; q += 2) { // every TX queue, not only zcq: nothing may stay behind
      if (this.dp.u32(this.vqs[q] + this.vqZcFrom) === ZC_NONE) continue;
      this.dp.fn.vq_complete(this.vqs[q], k);
      if (this.conn >= 0) this.after(this.vqs[q], q);
    }
  }

  // After a pass over queue q: interrupt the guest if vq_pull/vq_push asked (vq_take_call), note
  // a break (vq_error). Both words read here rather than through two more wasm calls a pass.
  private after(vq: number, q: number): void {
    if (this.dp.u32(vq + this.vqCall)) { this.dp.setU32(vq + this.vqCall, 0); this.call(q); }
    if (this.dp.u32(vq + this.vqBroken)) this.noteBroken(q);
  }

  /**
   * Did the guest's RAM shrink under the switch? (The front-end truncated a file we could not
   * seal; the native SIGBUS fence put zero pages over the region and the access read zeros.)
   * Then the session ends: the port goes down with the reason. Returns the reason, or null.
   * pull() and push() call it after every pass over guest memory.
   */
  checkFaults(): string | null {
    if (this.faultGen[0] === this.faultSeen) return null; // no fence caught anything since we looked
    this.faultSeen = this.faultGen[0];
    if (this.conn < 0 || !this.regions.length) return null;
    let faulted = -1;
    for (let i = 0; i < this.regions.length && faulted < 0; i++) {
      const r = this.regions[i];
      if (!r.tab && this.host.fenceFaults(this.dp.u8, r.span, r.len)) faulted = i;
    }
    if (faulted < 0 && this.window.faulted()) faulted = 0; // one fence over the window
    if (faulted < 0) return null;
    const r = this.regions[faulted];
    this.refused.memoryFaults++;
    const why = `guest memory shrank under the switch (region at guest 0x${r.gpa.toString(16)}, ${Number(r.size >> 10n)} KiB, was truncated by the front-end; it read as zeros)`;
    this.endSession(why);
    return why;
  }

  private call(q: number): void {
    const fd = this.queues[q].call;
    if (fd >= 0) { try { this.host.eventfdSignal(fd); } catch { /* QEMU closed it: the session ends soon */ } }
  }

  private noteBroken(q: number): void {
    const code = this.dp.fn.vq_error(this.vqs[q]) as number;
    if (this.brokenSaid[q] === code) return;
    this.brokenSaid[q] = code;
    const why = `${qname(q)} broken by the guest: ${VQE_TEXT[code] ?? `error ${code}`}`;
    this.down = why;
    this.log(why);
    this.refreshReady();
  }

  /**
   * Before the loop sleeps: fds to wait on, and whether it may sleep at all. Asks the guest to
   * kick on new TX buffers (and on new RX buffers when frames wait for them), then looks once
   * more: 'work' when something arrived meanwhile; 'nap' for a short sleep (a queue without a
   * kick fd, or frames waiting for RX buffers the guest has only partly posted).
   */
  sleepFds(fds: number[]): 'sleep' | 'nap' | 'work' {
    fds.push(this.listenFd);
    if (this.conn < 0) return 'sleep';
    if (this.wholeMessage) return 'work'; // messages left for lack of budget: no sleeping on them
    fds.push(this.conn);
    let verdict: 'sleep' | 'nap' | 'work' = 'sleep';
    const waiting = this.port.rx.head !== this.port.rx.tail;
    // every started queue of every pair: a kick on any of them wakes the loop
    for (let i = 0; i < QUEUES; i++) {
      const q = this.queues[i];
      if (!q.started) continue;
      if (isTx(i)) {
        if (this.dp.fn.vq_want_kick(this.vqs[i])) return 'work';
        if (q.kick >= 0) fds.push(q.kick); else verdict = 'nap';
      } else {
        if (waiting) {
          if (this.dp.fn.vq_want_kick(this.vqs[i])) verdict = 'nap';
          if (q.kick < 0) verdict = 'nap';
        }
        if (q.kick >= 0) fds.push(q.kick);
      }
    }
    return verdict;
  }

  /** After the sleep: revents for the fds sleepFds gave, in the same order (0 where not polled). */
  woke(fds: number[], revents: number[]): void {
    for (let i = 0; i < fds.length; i++) {
      if (!revents[i]) continue;
      for (const q of this.queues) if (q.kick === fds[i]) { try { q.kicks += this.host.eventfdDrain(q.kick); } catch { /* closed */ } }
    }
  }

  // ---- control (called by the forwarding loop between passes) -------------------------------

  /** Accept a waiting QEMU and handle every message that has arrived. Never blocks. */
  service(): void {
    if (this.closed) return;
    // one session per port; the connections beyond it are refused (closed, counted), at most
    // MAX_ACCEPTS_PER_SERVICE per call so a connect flood cannot hold the forwarding thread
    for (let k = 0; k < MAX_ACCEPTS_PER_SERVICE; k++) {
      const c = this.host.unixAccept(this.listenFd);
      if (c < 0) break;
      if (this.conn >= 0) { this.refusedConnections++; this.host.closeFd(c); this.log('refused a second connection: one QEMU per port'); continue; }
      this.conn = c;
      this.sessions++;
      this.queuesAsked = 0; this.unservedEnabled = 0;
      this.down = 'QEMU connected; waiting for the guest driver to start the queues';
      this.log(`QEMU connected (session ${this.sessions})`);
    }
    if (this.conn < 0) return;
    this.budget = MAX_MSGS_PER_SERVICE;
    this.parse(); // what the last call left for lack of budget
    for (let i = 0; i < 64 && this.conn >= 0 && this.budget > 0; i++) {
      let r: { data: Uint8Array; fds: number[] } | null;
      try {
        r = this.host.recvFds(this.conn, RECV_BYTES, 0);
      } catch (e) {
        this.endSession(`socket error: ${(e as Error).message}`);
        return;
      }
      if (!r) break;
      // A recvmsg stops right after the message that carried fds (the kernel never reads past
      // an SCM_RIGHTS skb), so the fds belong to the message holding the chunk's last byte.
      const at = this.consumed + this.inbuf.length + r.data.length - 1;
      for (const fd of r.fds) this.pendingFds.push({ at, fd });
      if (r.data.length === 0) { this.endSession('QEMU disconnected'); return; }
      if (this.pendingFds.length > MAX_PENDING_FDS) {
        this.refused.fds += this.pendingFds.length;
        this.endSession(`protocol error: ${this.pendingFds.length} fds waiting for messages not yet complete (at most ${MAX_PENDING_FDS}); all closed`);
        return;
      }
      this.inbuf = this.inbuf.length ? Buffer.concat([this.inbuf, r.data]) : Buffer.from(r.data);
      this.parse();
      // what is left is one message not yet complete (parse takes every whole one while the
      // budget lasts): bounded by MAX_PAYLOAD already; said again here so a change in parse
      // cannot lift the bound
      if (this.conn >= 0 && this.budget > 0 && this.inbuf.length > MAX_PENDING_BYTES) {
        this.refused.bytes += this.inbuf.length;
        this.endSession(`protocol error: ${this.inbuf.length} bytes of a message not yet complete (at most ${MAX_PENDING_BYTES})`);
        return;
      }
    }
  }

  /** A whole message waits in our buffer (the last service() ran out of budget). */
  private get wholeMessage(): boolean {
    if (this.inbuf.length < HDR) return false;
    const size = this.inbuf.readUInt32LE(8);
    return size > MAX_PAYLOAD || this.inbuf.length >= HDR + size; // a whole one, or one parse refuses at once
  }

  private parse(): void {
    while (this.conn >= 0 && this.inbuf.length >= HDR && this.budget > 0) {
      const req = this.inbuf.readUInt32LE(0), flags = this.inbuf.readUInt32LE(4), size = this.inbuf.readUInt32LE(8);
      if ((flags & 3) !== F_VERSION) return this.endSession(`protocol error: message version ${flags & 3}, expected 1`);
      if (size > MAX_PAYLOAD) return this.endSession(`protocol error: ${REQ_NAME[req] ?? `request ${req}`} with a ${size}-byte payload (at most ${MAX_PAYLOAD})`);
      if (this.inbuf.length < HDR + size) return;
      this.budget--;
      this.messages++;
      const start = this.consumed, end = start + HDR + size;
      const payload = this.inbuf.subarray(HDR, HDR + size);
      const fds = this.pendingFds.filter((p) => p.at >= start && p.at < end).map((p) => p.fd);
      this.pendingFds = this.pendingFds.filter((p) => p.at >= end);
      this.inbuf = this.inbuf.subarray(HDR + size);
      this.consumed = end;
      const taken = new Set<number>();
      const allowed = fdsAllowed(req, payload);
      if (fds.length > allowed) {
        for (const fd of fds) { try { this.host.closeFd(fd); } catch { /* gone */ } }
        this.refused.fds += fds.length;
        return this.endSession(`protocol error: ${REQ_NAME[req] ?? `request ${req}`} came with ${fds.length} fds, at most ${allowed} (all closed)`);
      }
      if (process.env.WASMAP_VHOST_DEBUG) this.log(`<- ${REQ_NAME[req] ?? req} flags 0x${flags.toString(16)} size ${size} fds ${fds.length} ${payload.subarray(0, 40).toString('hex')}`);
      try {
        this.handle(req, flags, payload, fds, taken);
      } catch (e) {
        const err = e as Error;
        // a refused request: QEMU hears "failed" when it asked for an ack; a protocol error ends the session
        if (err instanceof WasmapError && err.code === 'EPROTO') return this.endSession(`protocol error: ${err.message}`); // its fds: closed once, in finally
        this.log(`${REQ_NAME[req] ?? `request ${req}`} refused: ${err.message}`);
        if (flags & F_NEED_REPLY) this.reply(req, u64(1n));
      } finally {
        for (const fd of fds) if (!taken.has(fd)) { try { this.host.closeFd(fd); } catch { /* gone */ } }
      }
    }
  }

  private reply(req: number, payload: Buffer): void {
    const b = Buffer.alloc(HDR + payload.length);
    b.writeUInt32LE(req, 0); b.writeUInt32LE(F_VERSION | F_REPLY, 4); b.writeUInt32LE(payload.length, 8);
    payload.copy(b, HDR);
    // never blocks: a front-end that asks and does not read its replies (its socket full) would
    // otherwise hold the forwarding thread, every port's traffic, in sendmsg
    try { this.host.sendFds(this.conn, b, [], true); } catch (e) { this.endSession(`reply to ${REQ_NAME[req] ?? `request ${req}`} failed: ${(e as Error).message}`); }
  }

  private handle(req: number, flags: number, p: Buffer, fds: number[], taken: Set<number>): void {
    const need = (n: number) => { if (p.length < n) throw new WasmapError('EPROTO', `${REQ_NAME[req]} payload of ${p.length} bytes, expected ${n}`); };
    let replied = false;
    const answer = (b: Buffer) => { this.reply(req, b); replied = true; };
    if (this.otherQueue(req, p, answer)) { /* a queue beyond the pair we serve: noted, not used */ } else switch (req) {
      case REQ.GET_FEATURES: answer(u64(OFFERED)); break;
      case REQ.SET_FEATURES: {
        need(8);
        const f = p.readBigUInt64LE(0);
        if (f & ~OFFERED) throw new WasmapError('EPROTO', `SET_FEATURES asks for bits we did not offer: 0x${(f & ~OFFERED).toString(16)}`);
        if (!(f & (FEAT.VERSION_1 | FEAT.MRG_RXBUF))) throw new WasmapError('EPROTO', 'the guest negotiated neither VERSION_1 nor MRG_RXBUF (a legacy 10-byte virtio-net header), which this back-end does not carry; use a modern virtio-net device (disable-legacy=on)');
        this.features = f;
        const acc: string[] = [];
        if (f & FEAT.GUEST_CSUM) acc.push('csum');
        if (f & FEAT.GUEST_TSO4) acc.push('tso4');
        if (f & FEAT.GUEST_TSO6) acc.push('tso6');
        this.setAccept(acc);
        this.log(`features 0x${f.toString(16)} (guest accepts: ${acc.join(', ') || 'no offloads'})`);
        for (let q = 0; q < QUEUES; q++) {
          if (!this.queues[q].addrSet && !this.queues[q].num) continue; // never set up
          // a running ring keeps its place: set it up again from where it is, not from the
          // SET_VRING_BASE value it started with
          if (this.dp.u32(this.vqs[q] + this.dp.abi.VQ_NUM)) this.queues[q].base = this.dp.fn.vq_base(this.vqs[q]) as number;
          this.queues[q].setup = false; this.apply(q);
        }
        break;
      }
      case REQ.GET_PROTOCOL_FEATURES: answer(u64(PROTO_OFFERED)); break;
      case REQ.SET_PROTOCOL_FEATURES: need(8); this.protocolFeatures = p.readBigUInt64LE(0) & PROTO_OFFERED; break;
      case REQ.SET_OWNER: break;
      case REQ.RESET_OWNER: for (let q = 0; q < QUEUES; q++) this.stopQueue(q, true); break;
      case REQ.SET_MEM_TABLE: this.setMemTable(p, fds, taken); break;
      case REQ.SET_LOG_BASE: case REQ.SET_LOG_FD: throw new WasmapError('ENOTSUP', 'dirty logging (live migration) is not offered');
      case REQ.SET_VRING_NUM: case REQ.SET_VRING_BASE: {
        need(8);
        const q = this.queue(p.readUInt32LE(0)), v = p.readUInt32LE(4);
        if (req === REQ.SET_VRING_NUM) q.num = v; else q.base = v & 0xffff;
        q.setup = false;
        break;
      }
      case REQ.SET_VRING_ADDR: {
        need(40);
        const i = p.readUInt32LE(0), q = this.queue(i);
        q.desc = p.readBigUInt64LE(8); q.used = p.readBigUInt64LE(16); q.avail = p.readBigUInt64LE(24);
        q.addrSet = true; q.setup = false;
        this.apply(i);
        break;
      }
      case REQ.GET_VRING_BASE: {
        need(8);
        const i = p.readUInt32LE(0);
        this.queue(i);
        const base = this.stopQueue(i, false);
        const b = Buffer.alloc(8); b.writeUInt32LE(i, 0); b.writeUInt32LE(base, 4);
        answer(b);
        break;
      }
      case REQ.SET_VRING_KICK: case REQ.SET_VRING_CALL: case REQ.SET_VRING_ERR: {
        need(8);
        const v = p.readBigUInt64LE(0), i = Number(v & 0xffn), nofd = (v & 0x100n) !== 0n;
        const q = this.queue(i);
        let fd = -1;
        if (!nofd) {
          if (fds.length !== 1) throw new WasmapError('EPROTO', `${REQ_NAME[req]} for queue ${i} came with ${fds.length} fds, expected 1`);
          fd = fds[0]; taken.add(fd);
        }
        const key = req === REQ.SET_VRING_KICK ? 'kick' : req === REQ.SET_VRING_CALL ? 'call' : 'err';
        if (q[key] >= 0) this.host.closeFd(q[key]);
        q[key] = fd;
        if (req === REQ.SET_VRING_KICK) {
          q.started = true;
          if (!(this.protocolFeatures !== 0n || (this.features & FEAT.PROTOCOL_FEATURES))) q.enabled = true;
          this.apply(i);
        }
        break;
      }
      case REQ.GET_QUEUE_NUM: answer(u64(BigInt(MAX_PAIRS))); break; // queue pairs, as QEMU compares it with queues=N (and DPDK's back-end answers)
      case REQ.SET_VRING_ENABLE: {
        need(8);
        const i = p.readUInt32LE(0);
        this.queue(i).enabled = p.readUInt32LE(4) !== 0;
        this.apply(i);
        break;
      }
      case REQ.SEND_RARP: case REQ.NET_SET_MTU: break; // nothing to do: no migration, the MTU is the guest's business
      default: throw new WasmapError('ENOTSUP', `request ${req} is not supported`);
    }
    if (!replied && (flags & F_NEED_REPLY) && (this.protocolFeatures & PROTO_REPLY_ACK)) this.reply(req, u64(0n));
  }

  private queue(i: number): Queue {
    if (i >= QUEUES) throw new WasmapError('EPROTO', `queue ${i}: beyond any queue index a front-end may name (${MAX_VRINGS})`);
    if (i + 1 > this.queuesAsked) this.queuesAsked = i + 1;
    return this.queues[i];
  }

  /** Front-ends set up every queue they were configured with, whatever GET_QUEUE_NUM says or
   *  without asking it (DPDK's virtio-user with queues=N sends SET_VRING_CALL for queue 2N-1
   *  first), as a hardware device would ignore writes to queues it does not have. A message
   *  for a queue beyond the MAX_PAIRS pairs served (and below MAX_VRINGS) is noted and answered
   *  (GET_VRING_BASE: 0), its fd closed; nothing is kept, the queue is never served (`ctl list`
   *  says so). Returns whether `req` was such a message. */
  private otherQueue(req: number, p: Buffer, answer: (b: Buffer) => void): boolean {
    let i: number;
    switch (req) {
      case REQ.SET_VRING_NUM: case REQ.SET_VRING_BASE: case REQ.SET_VRING_ADDR: case REQ.GET_VRING_BASE: case REQ.SET_VRING_ENABLE:
        if (p.length < 8) return false; // the handler refuses it
        i = p.readUInt32LE(0); break;
      case REQ.SET_VRING_KICK: case REQ.SET_VRING_CALL: case REQ.SET_VRING_ERR:
        if (p.length < 8) return false;
        i = Number(p.readBigUInt64LE(0) & 0xffn); break;
      default: return false;
    }
    if (i < QUEUES || i >= MAX_VRINGS) return false; // ours, or out of any range: the handler decides
    if (i + 1 > this.queuesAsked) {
      if (this.queuesAsked <= QUEUES) this.log(`the front-end sets up queue ${i}: at most ${MAX_PAIRS} queue pairs are served (queues 0..${QUEUES - 1}); the queues beyond are not`);
      this.queuesAsked = i + 1;
    }
    if (req === REQ.SET_VRING_ENABLE && p.readUInt32LE(4) !== 0) {
      this.unservedEnabled++;
      this.log(`the guest enabled queue ${i}, beyond the ${MAX_PAIRS} queue pairs served: frames it sends there are not taken, none are put there`);
    }
    if (req === REQ.GET_VRING_BASE) { const b = Buffer.alloc(8); b.writeUInt32LE(i, 0); answer(b); }
    return true;
  }

  // Set the queue's wasm record up from what QEMU said so far (once per configuration: a set-up
  // record carries the running ring state), and turn it on when started and enabled.
  private apply(i: number): void {
    const q = this.queues[i], vq = this.vqs[i], fn = this.dp.fn, a = this.dp.abi;
    if (!q.addrSet || !q.num || !this.regions.length) { fn.vq_enable(vq, 0); this.updateDown(); return; }
    if (!q.setup) {
      const f = this.features;
      const vf = (f & FEAT.EVENT_IDX ? a.VQF_EVENT_IDX : 0) | (f & FEAT.MRG_RXBUF ? a.VQF_MRG_RXBUF : 0) | (f & FEAT.INDIRECT_DESC ? a.VQF_INDIRECT : 0);
      const pinned = this.window.pinRings(i, [q.desc, q.avail, q.used]);
      if (this.conn < 0) return; // mapping failed: the session ended
      const err = fn.vq_setup(vq, this.mt, q.num, q.desc, q.avail, q.used, vf, q.base) as number;
      this.brokenSaid[i] = 0;
      if (!err && !pinned) this.dp.setU32(vq + a.VQ_BROKEN, VQE_WINDOW);
      if (err || !pinned) this.noteBroken(i);
      q.setup = true; // a failed set-up stays broken until QEMU configures the queue again
    }
    fn.vq_enable(vq, q.started && q.enabled ? 1 : 0);
    this.updateDown();
  }

  // GET_VRING_BASE / RESET_OWNER / session end: the queue stops; returns where the guest resumes
  private stopQueue(i: number, forget: boolean): number {
    const q = this.queues[i], vq = this.vqs[i];
    if (isTx(i)) this.settle(); // its place (vq_base) counts the chains zero-copy frames hold
    this.dp.fn.vq_enable(vq, 0);
    const base = this.dp.u32(vq + this.dp.abi.VQ_NUM) ? this.dp.fn.vq_base(vq) as number : q.base;
    q.base = base;
    q.started = false;
    if (q.kick >= 0) { this.host.closeFd(q.kick); q.kick = -1; }
    if (forget) {
      for (const k of ['call', 'err'] as const) if (q[k] >= 0) { this.host.closeFd(q[k]); q[k] = -1; }
      this.queues[i] = { ...freshQueue(), kicks: q.kicks };
      // the guest's break belongs to its session: the next one starts healthy (counters stay)
      this.dp.setU32(vq + this.dp.abi.VQ_BROKEN, 0);
      this.brokenSaid[i] = 0;
    }
    this.dp.setU32(vq + this.dp.abi.VQ_NUM, 0); // not ready until set up again
    this.queues[i].setup = false;
    this.window.unpin(i); // its rings may be evicted now
    this.updateDown();
    return base;
  }

  private updateDown(): void {
    this.refreshReady();
    if (this.conn < 0) return;
    const broken = this.vqs.map((vq) => this.dp.fn.vq_error(vq) as number);
    const b = broken.findIndex((e) => e !== 0);
    if (b >= 0) { this.down = `${qname(b)} broken by the guest: ${VQE_TEXT[broken[b]] ?? `error ${broken[b]}`}`; return; }
    // up while one RX and one TX queue run (pair 0 in practice: virtio uses pairs 0..n-1)
    this.down = this.rxReady.length && this.txReady.length ? null : 'QEMU connected; the guest driver has not started both queues';
  }

  /** The queues that run now (txReady, rxReady; the steering list in wasm memory). */
  private refreshReady(): void {
    const a = this.dp.abi, tx: number[] = [], rx: number[] = [];
    this.rxStarted = false;
    for (let i = 0; i < QUEUES; i++) {
      const q = this.queues[i], vq = this.vqs[i];
      if (!isTx(i) && q.started) this.rxStarted = true;
      if (this.conn >= 0 && q.started && q.enabled && this.dp.u32(vq + a.VQ_NUM) !== 0 && this.dp.u32(vq + a.VQ_BROKEN) === 0) (isTx(i) ? tx : rx).push(i);
    }
    this.txReady = tx; this.rxReady = rx;
    rx.forEach((q, j) => this.dp.setU32(this.steer + 4 * j, this.vqs[q]));
    this.rxDirect();
  }

  /** Direct receive on while exactly one RX queue runs, over guest memory mapped whole (not
   *  through the window: its chunks may go between passes, and deliver cannot map one; not with
   *  several RX queues: frames are steered by flow among them at the push). Called between
   *  passes whenever a queue or the memory table changes; a pass's direct frames are completed
   *  by its own push (vq_push on that same queue), so turning it off never leaves a slot
   *  referring to guest memory. */
  private rxDirect(): void {
    if (!this.rxPtrs) return;
    const a = this.dp.abi, k = this.port.rx.kring;
    const on = this.conn >= 0 && !this.window.on && this.rxReady.length === 1;
    const vq = on ? this.vqs[this.rxReady[0]] : 0;
    this.dp.setU32(k + a.KR_RXVQ, vq);
    this.dp.setU32(k + a.KR_RXMT, on ? this.mt : 0);
  }

  private setMemTable(p: Buffer, fds: number[], taken: Set<number>): void {
    if (p.length < 8) throw new WasmapError('EPROTO', `SET_MEM_TABLE payload of ${p.length} bytes`);
    const n = p.readUInt32LE(0), max = this.dp.abi.MT_MAX;
    if (n === 0 || n > max) throw new WasmapError('EPROTO', `SET_MEM_TABLE with ${n} regions (1..${max})`);
    if (p.length < 8 + 32 * n) throw new WasmapError('EPROTO', `SET_MEM_TABLE: ${n} regions need ${8 + 32 * n} bytes, got ${p.length}`);
    if (fds.length !== n) throw new WasmapError('EPROTO', `SET_MEM_TABLE: ${n} regions came with ${fds.length} fds`);
    const want: RegionWant[] = [];
    let total = 0n;
    for (let i = 0; i < n; i++) {
      const o = 8 + 32 * i;
      const r = { gpa: p.readBigUInt64LE(o), size: p.readBigUInt64LE(o + 8), uva: p.readBigUInt64LE(o + 16), off: p.readBigUInt64LE(o + 24) };
      if (r.size === 0n || r.off % BigInt(PAGE)) throw new WasmapError('EPROTO', `SET_MEM_TABLE region ${i}: size ${r.size}, mmap offset ${r.off} (must be > 0 and page-aligned)`);
      total += r.size;
      want.push(r);
    }
    if (total > BigInt(MAX_GUEST_RAM)) throw new WasmapError('EPROTO', `SET_MEM_TABLE: ${Number(total >> 30n)} GiB of guest RAM; a port takes at most ${MAX_GUEST_RAM / 2 ** 30} GiB`);
    // the old table goes first: QEMU sends a whole new one each time
    for (let i = 0; i < QUEUES; i++) this.dp.fn.vq_enable(this.vqs[i], 0);
    this.unmapAll();
    const fn = this.dp.fn;
    if (total > BigInt(this.window.directMax)) { this.setWindowed(want, fds, taken, total); return; }
    for (let i = 0; i < n; i++) {
      const r = want[i];
      let len = Math.ceil(Number(r.size) / PAGE) * PAGE, at = -1, bytes = 0, span = -1, sealed = false;
      try {
        // the front-end keeps the fd: it could ftruncate it under our mapping (SIGBUS on our
        // next touch). Sealed against shrinking first, then its size checked; what cannot be
        // sealed (a file, a memfd without MFD_ALLOW_SEALING) is mapped behind the SIGBUS fence
        let g = this.host.sealFd(fds[i], Number(r.off) + len);
        // hugetlbfs (hugepage-backed RAM): offset, address and length in whole huge pages
        const pg = Math.max(PAGE, g.pageSize);
        if (pg > PAGE) {
          if (r.off % BigInt(pg)) throw new Error(`mmap offset ${r.off} is not a multiple of the file's ${pg >> 10} KiB pages`);
          len = Math.ceil(Number(r.size) / pg) * pg;
          g = this.host.sealFd(fds[i], Number(r.off) + len);
        }
        sealed = g.sealed;
        bytes = len + (pg > 65536 ? pg : 0);
        at = this.dp.alloc(bytes, 65536, false);
        span = at + (pg > 65536 ? this.host.alignGap(this.dp.u8, at, pg) : 0);
        this.host.mapFd(this.dp.u8, span, len, fds[i], Number(r.off));
        this.host.fence(this.dp.u8, span, len); // defence in depth: sealed ones too
        if (!sealed) this.log(`region ${i} cannot be sealed against shrinking (${g.why}): mapped behind the SIGBUS fence`);
        if (pg > PAGE) this.log(`region ${i} is on ${pg >> 10} KiB pages (hugetlbfs): mapped at that alignment`);
      } catch (e) {
        if (at >= 0) {
          try { this.host.unmap(this.dp.u8, span, len); } catch { /* the span is released either way */ }
          this.dp.release(at, bytes);
        }
        this.unmapAll();
        throw new WasmapError('EPROTO', `SET_MEM_TABLE region ${i} (guest 0x${r.gpa.toString(16)}, ${Number(r.size >> 10n)} KiB): ${(e as Error).message}`);
      }
      this.regions.push({ gpa: r.gpa, size: r.size, uva: r.uva, span, len, sealed, at, bytes, fd: -1, off: 0, pageSize: PAGE, tab: 0, tabBytes: 0, chunks: 0 });
      const rc = fn.mt_add(this.mt, r.gpa, r.size, r.uva, span) as number;
      if (rc !== 0) { this.unmapAll(); throw new WasmapError('EPROTO', `SET_MEM_TABLE region ${i}: overlaps another region (or is out of range)`); }
    }
    // the mappings hold the guest's memory; the fds are not needed any more (taken: closed here)
    for (const fd of fds) { taken.add(fd); this.host.closeFd(fd); }
    this.log(`memory table: ${n} regions, ${Number(total >> 20n)} MiB (${want.map((r) => `0x${r.gpa.toString(16)}+${Number(r.size >> 10n)}K`).join(', ')}), ${this.regions.every((r) => r.sealed) ? 'sealed against shrinking' : 'not all sealable: fenced'}`);
    this.remapQueues();
  }

  // running queues keep their place in the rings: only their addresses are translated again
  private remapQueues(): void {
    for (let i = 0; i < QUEUES; i++) {
      const q = this.queues[i];
      if (q.setup && !this.dp.fn.vq_error(this.vqs[i])) {
        if (!this.window.pinRings(i, [q.desc, q.avail, q.used])) { this.dp.setU32(this.vqs[i] + this.dp.abi.VQ_BROKEN, VQE_WINDOW); this.noteBroken(i); }
        else if (this.dp.fn.vq_remap(this.vqs[i], this.mt)) this.noteBroken(i);
      }
      if (this.conn < 0) return;
      this.apply(i);
    }
  }

  /** A guest larger than the window's directMax: its regions are seen through the window
   *  (vhost-window.ts), chunk by chunk as the datapath reaches them. */
  private setWindowed(want: RegionWant[], fds: number[], taken: Set<number>, total: bigint): void {
    try { this.window.open(this.regions, want, fds, taken, total); } catch (e) { this.unmapAll(); throw e; }
    this.remapQueues();
  }

  private unmapAll(): void {
    this.settle(); // no tx slot may refer to the memory going away
    this.dp.fn.mt_init(this.mt);
    for (const r of this.regions) {
      if (r.tab) {
        this.dp.release(r.tab, r.tabBytes);
        try { this.host.closeFd(r.fd); } catch { /* gone */ }
        continue;
      }
      try { this.host.unmap(this.dp.u8, r.span, r.len); } catch { /* keep going: the span is released either way */ }
      this.dp.release(r.at, r.bytes);
    }
    this.regions = [];
    this.window.close(); // every chunk goes at once (the chunk tables went with mt_init)
  }

  /** QEMU is gone (or broke the protocol): the port goes down, the guest's memory and fds go. */
  endSession(reason: string): void {
    if (this.conn < 0) return;
    for (let i = 0; i < QUEUES; i++) this.stopQueue(i, true);
    this.unmapAll();
    for (const p of this.pendingFds) { try { this.host.closeFd(p.fd); } catch { /* gone */ } }
    this.pendingFds = [];
    this.inbuf = Buffer.alloc(0);
    this.consumed = 0;
    try { this.host.closeFd(this.conn); } catch { /* gone */ }
    this.conn = -1;
    this.features = 0n; this.protocolFeatures = 0n;
    this.brokenSaid.fill(0);
    this.refreshReady();
    this.down = `${reason}; waiting for QEMU to connect again`;
    this.log(reason);
  }

  /** Per direction, the sums over every queue (rx: to the guest, tx: from it; broken: the first
   *  broken queue's reason), and `pairs`: each queue pair the front-end used, on its own (pair p
   *  is `pairs[p]`; `enabled` says whether both its queues run now). */
  queueStats(): { rx: QueueStats; tx: QueueStats; pairs: { rx: QueueStats; tx: QueueStats; enabled: boolean }[] } {
    const a = this.dp.abi;
    const one = (i: number): QueueStats => {
      const vq = this.vqs[i], n = (off: number) => Number(this.dp.u64(vq + off));
      const e = this.dp.fn.vq_error(vq) as number;
      return { frames: n(a.VQ_FRAMES), ...(!isTx(i) ? { direct: n(a.VQ_RX_DIRECT) } : {}), bytes: n(a.VQ_BYTES), chains: n(a.VQ_CHAINS), dropBig: n(a.VQ_DROP_BIG), dropBad: n(a.VQ_DROP_BAD),
        stalls: n(a.VQ_STALLS), calls: n(a.VQ_CALLS), kicks: this.queues[i].kicks, broken: e ? VQE_TEXT[e] ?? `error ${e}` : null };
    };
    const sum = (xs: QueueStats[]): QueueStats => xs.reduce((t, x) => ({ frames: t.frames + x.frames, ...(t.direct !== undefined ? { direct: t.direct + (x.direct ?? 0) } : {}), bytes: t.bytes + x.bytes, chains: t.chains + x.chains,
      dropBig: t.dropBig + x.dropBig, dropBad: t.dropBad + x.dropBad, stalls: t.stalls + x.stalls, calls: t.calls + x.calls, kicks: t.kicks + x.kicks, broken: t.broken ?? x.broken }));
    const pairs = Array.from({ length: MAX_PAIRS }, (_, p) => ({ rx: one(2 * p), tx: one(2 * p + 1), enabled: this.rxReady.includes(2 * p) && this.txReady.includes(2 * p + 1) }));
    // pairs shown: the first, and every one the front-end set up or that ever moved anything
    let used = Math.min(MAX_PAIRS, Math.ceil(this.queuesAsked / 2));
    for (let p = used; p < MAX_PAIRS; p++) if (pairs[p].rx.chains + pairs[p].tx.chains + pairs[p].rx.kicks + pairs[p].tx.kicks > 0) used = p + 1;
    return { rx: sum(pairs.map((x) => x.rx)), tx: sum(pairs.map((x) => x.tx)), pairs: pairs.slice(0, Math.max(1, used)) };
  }

  /** Queue pairs: what the front-end set up this session, what is served, what runs now, and
   *  (when it set up more than MAX_PAIRS) why the rest is not served. */
  private pairInfo(): Fields {
    if (this.queuesAsked <= 2) return {};
    const asked = Math.ceil(this.queuesAsked / 2), served = Math.min(asked, MAX_PAIRS);
    return { queuePairsAsked: asked, queuePairsServed: served, queuePairsEnabled: Math.min(this.rxReady.length, this.txReady.length),
      ...(asked > MAX_PAIRS ? { queuePairsRefused: `the front-end set up ${asked} queue pairs; at most ${MAX_PAIRS} are served (GET_QUEUE_NUM says so): pairs ${MAX_PAIRS}..${asked - 1} are not${this.unservedEnabled ? `, and the guest enabled ${this.unservedEnabled} of their queues: frames it sends there are not taken` : ''}` } : {}) };
  }

  /** Mapped guest memory, bytes (for leak checks and stats). */
  get mappedBytes(): number { return this.regions.reduce((s, r) => s + r.len, 0) + this.window.mappedBytes; }

  /** Window counters over all sessions (maps, evictions, waits). */
  get winStats(): { maps: number; evictions: number; waits: number } { return this.window.counts; }

  answersTo(spec: string): boolean { return spec.startsWith('vhost-user:') && resolve(spec.slice('vhost-user:'.length)) === this.path; }

  info(): Fields { return { path: this.path, connected: this.connected, sessions: this.sessions, ...this.pairInfo() }; }
  stats(): Fields {
    return { path: this.path, connected: this.connected, sessions: this.sessions, refusedConnections: this.refusedConnections, features: `0x${this.features.toString(16)}`, ...this.pairInfo(),
      downDrops: this.downDrops, refused: { ...this.refused }, messages: this.messages, guestMappedBytes: this.mappedBytes, ...(this.window.on ? { window: this.window.stats() } : {}), queues: this.queueStats(), events: this.events.slice(-64) };
  }

  /** The session ends, the socket goes (its file removed), then the port when `detach` is given. */
  close(_reason = 'port detached', detach?: () => PortStats): { stats?: PortStats } {
    if (!this.closed) {
      this.endSession('port detached');
      this.closed = true;
      try { this.host.closeFd(this.listenFd); } catch { /* gone */ }
      this.listenFd = -1;
      try { unlinkSync(this.path); } catch { /* already gone */ }
      this.dp.release(this.mt, this.mtBytes);
      if (this.ptrs) { // the port may stay attached (down) a while: its ring must not point here
        this.dp.setU32(this.port.tx.kring + this.dp.abi.KR_PTRS, 0);
        this.dp.release(this.ptrs, this.ptrsBytes);
      }
      if (this.rxPtrs) {
        const k = this.port.rx.kring, a = this.dp.abi;
        for (const f of [a.KR_RXVQ, a.KR_RXMT, a.KR_PTRS]) this.dp.setU32(k + f, 0);
        this.dp.release(this.rxPtrs, this.rxPtrsBytes);
      }
    }
    return { stats: detach?.() };
  }
}

const PORT_NAME_RE = /^[A-Za-z0-9_.-]+$/; // what a switch port may be named (src/switch.ts)

/** `vhost-user:PATH`: a server socket at PATH and a switch port behind it (named `args.name`,
 *  default the socket file's name without its extension). QEMU connects whenever it likes. */
export function openVhostUser(c: AttachContext): VhostUserPort {
  const path = resolve(parsePortName(c.spec).name);
  const name = typeof c.args.name === 'string' ? c.args.name : undefined;
  const port = name ?? (basename(path).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_.-]/g, '_') || 'vhost');
  const s = c.sw, full = `${s.name}:${port}`;
  for (const [k, b] of c.attached) if (b instanceof VhostUserPort && b.path === path) throw new WasmapError('EBUSY', `${path} is already served by ${k}`);
  if (s.port(port)) throw new WasmapError('EBUSY', `${full} already exists; name the port with --name`);
  if (!PORT_NAME_RE.test(port) || port.length > 15) {
    throw new WasmapError('EINVAL', `bad port name '${port}'${name === undefined ? ` (from the socket file's name)` : ''}: 1 to 15 letters, digits, '_', '-' or '.'; name the port with --name`);
  }
  // the port name is a plain name here, not a netmap name ('-' is no ring suffix)
  const p = s.attach(port);
  try {
    s.setHeaderLength(port, 12); // virtio_net_hdr_v1 on every frame, as the guest's rings carry it
    s.setAccept(port, []);
    return new VhostUserPort(c.host, c.dp, p, path, (acc) => s.setAccept(port, acc), windowOptions(c.args));
  } catch (e) {
    s.detach(port);
    const err = e as Error & { code?: string };
    throw new WasmapError(err.code ?? 'EIO', `vhost-user:${path}: ${err.message}`);
  }
}

/** `--window N`: window slots (2 MiB chunks of guest RAM in use at once) for a guest too large
 *  to map whole; 8..256 (at least the 6 ring chunks of a queue pair and a few buffers). */
function windowOptions(args: Record<string, unknown>): WindowOptions {
  const int = (k: string, v: unknown, lo: number, hi: number, what: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = typeof v === 'string' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < lo || n > hi) throw new WasmapError('EINVAL', `${k} ${String(v)}: ${what}, an integer ${lo}..${hi}`);
    return n;
  };
  return { slots: int('--window', args.window, 8, 256, 'window slots'), directMax: int('directMax', args.directMax, 0, MAX_DIRECT_RAM, 'bytes of guest RAM mapped whole'),
    chunkShift: int('chunkShift', args.chunkShift, 16, 21, 'log2 of the chunk size') };
}

// The socket file is ours from listen to close: a stale one (nobody listening, e.g. after a
// crash) is removed; anything else at the path is refused.
function claimPath(host: NativeHost, path: string): void {
  let st;
  try { st = statSync(path); } catch { return; }
  if (!st.isSocket()) throw new WasmapError('EEXIST', `${path} exists and is not a socket; pick another path`);
  let live = false;
  try { host.closeFd(host.unixConnect(path)); live = true; } catch { /* nobody listens: a stale socket file */ }
  if (live) throw new WasmapError('EADDRINUSE', `another process listens on ${path}`);
  unlinkSync(path);
}

/** fds a message may carry: one per region for SET_MEM_TABLE, one for the vring fd messages
 *  (none when their payload says "no fd"), one for SET_LOG_FD; none for anything else. */
function fdsAllowed(req: number, p: Buffer): number {
  switch (req) {
    case REQ.SET_MEM_TABLE: return p.length >= 4 ? Math.min(p.readUInt32LE(0), 8) : 0;
    case REQ.SET_VRING_KICK: case REQ.SET_VRING_CALL: case REQ.SET_VRING_ERR:
      return p.length >= 8 && (p.readBigUInt64LE(0) & 0x100n) ? 0 : 1;
    case REQ.SET_LOG_FD: return 1;
    default: return 0;
  }
}

function u64(v: bigint): Buffer { const b = Buffer.alloc(8); b.writeBigUInt64LE(v, 0); return b; }
