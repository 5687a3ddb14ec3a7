// An I/O thread of the switch (`wasmap switch --io-threads N`): it does the kernel I/O of the
// TAP ports given to it — readv/writev per frame, the forwarder's main cost — beside the
// forwarding thread, the way a NIC driver fills netmap rings while VALE forwards. Each of its
// ports is a passthrough port (src/backends/passthrough.ts): this thread is the rings' user, a
// ptnetmap guest over the switch's own shared memory, and syncs with the switch through the
// port's CSB (assembly/csb.ts) with notification suppression: a side kicks the other (an
// eventfd) only when that side asked before sleeping. No locks: head/tail ownership of the two
// rings is the whole interface. Counters and failures go to shared words the switch reads.
// Commands (add/remove a port, exit) arrive on a MessagePort read between passes, with an
// eventfd to end a sleep; each is acknowledged through the shared control words.
import { workerData, receiveMessageOnPort, MessagePort } from 'node:worker_threads';
import { requireHost } from './host.js';
import { PtGuest } from './guest.js';
import type { PtWorkerInfo } from './backends/passthrough.js';
import { threadId } from './threads.js';
import { IO_CTL, IO_PORT, IoAdd, IoCommand, IoState } from './backends/tap-io.js';

const { port, ctl, wakeFd, poll } = workerData as { port: MessagePort; ctl: SharedArrayBuffer; wakeFd: number; poll: 'busy' | 'adaptive' | 'sleep' };
const host = requireHost();
const words = new Int32Array(ctl, 0, IO_CTL.WORDS);
const message = new Uint8Array(ctl, IO_CTL.MSG_AT, IO_CTL.MSG_LEN);
// Tests only: 'throw-after:N' makes this thread throw once it has read N frames.
const faultAfter = /^throw-after:(\d+)$/.exec(process.env.WASMAP_TEST_IO_FAULT ?? '')?.[1];

interface Port {
  id: number; fd: number; g: PtGuest; u8: Uint8Array; u32: Uint32Array;
  f64: Float64Array; i32: Int32Array; refused: Float64Array; tooLong: Float64Array;
  atokTx: number; ktoaTx: number; atokRx: number; ktoaRx: number; kickGuest: number;
  failed: boolean; need: number; // slots one read may need (a 64 KiB TSO frame in chained slots)
}
const ports = new Map<number, Port>();
let frames = 0;

function add(c: IoAdd): void {
  const g = PtGuest.fromWorker(c.info as PtWorkerInfo);
  const a = g.dp.abi;
  const f64 = new Float64Array(c.stats, 0, IO_PORT.F64);
  const bs = g.bufSize > 65535 ? 65535 : g.bufSize;
  ports.set(c.id, {
    // one view, made now: the port's rings exist already and the memory never shrinks or
    // moves (a shared memory's .buffer getter makes a new frozen object on every call)
    id: c.id, fd: c.fd, g, u8: g.dp.u8, u32: new Uint32Array(g.dp.u8.buffer), f64, i32: new Int32Array(c.stats, IO_PORT.I32_AT, IO_PORT.I32),
    refused: new Float64Array(c.stats, 8 * IO_PORT.REFUSED, 1), tooLong: new Float64Array(c.stats, 8 * IO_PORT.TOO_LONG, 1),
    atokTx: g.csb + a.CSB_ATOK_TX, ktoaTx: g.csb + a.CSB_KTOA_TX, atokRx: g.csb + a.CSB_ATOK_RX, ktoaRx: g.csb + a.CSB_KTOA_RX,
    kickGuest: c.kickGuest, failed: false, need: Math.min(64, Math.ceil((65536 + 12) / bs)),
  });
}

/** Slots in [head, tail) of a ring (its user's fields: RING_HEAD @20, RING_TAIL @28), read
 *  through this thread's cached view. */
function space(p: Port, ring: number, n: number): number {
  const h = p.u32[(ring + 20) >> 2], t = p.u32[(ring + 28) >> 2];
  return t >= h ? t - h : t + n - h;
}

function fail(p: Port, op: number, rc: number): void {
  p.failed = true;
  Atomics.store(p.i32, 1, op);
  Atomics.store(p.i32, 0, rc < 0 ? rc : -5);
}

/** One pass over port p: kernel → its tx ring, its rx ring → kernel. Frames moved. */
function work(p: Port): number {
  if (p.failed) return 0;
  const { g, f64 } = p;
  let moved = 0;
  if (space(p, g.tx.ring, p.g.slots) < p.need) g.txsync(); // room taken back by the switch shows in the tail only after a sync
  const n = host.fdToRing(p.u8, g.tx.ring, p.fd, false, 256, p.tooLong);
  if (n < 0) { fail(p, 1, n); return 0; }
  if (n > 0) {
    f64[IO_PORT.RX] += n; moved += n; frames += n;
    g.txsync(); // publishes head; kicks the switch only if it asked (it sleeps)
    if (faultAfter && frames >= Number(faultAfter)) throw new Error(`injected I/O thread fault after ${frames} frames (WASMAP_TEST_IO_FAULT)`);
  }
  g.rxsync(); // learn how far the switch filled the rx ring
  if (space(p, g.rx.ring, p.g.slots) > 0) {
    const before = p.refused[0];
    const m = host.ringToFd(p.u8, g.rx.ring, p.fd, false, p.refused);
    if (m < 0) { fail(p, 2, m); return moved; }
    if (m > 0) { f64[IO_PORT.TX] += m - (p.refused[0] - before); moved += m; g.rxsync(); }
  }
  return moved;
}

/** Ask the switch for kicks and look once more; false when work arrived meanwhile. */
function arm(p: Port): boolean {
  if (p.failed) return true;
  const fn = p.g.dp.fn;
  if (fn.pt_app_want_kick(p.g.rx.ring, p.atokRx, p.ktoaRx)) return false; // frames to write came
  // a full tx ring: wait for the switch to take frames (it kicks when hwtail moves)
  if (space(p, p.g.tx.ring, p.g.slots) < p.need && fn.pt_app_want_kick(p.g.tx.ring, p.atokTx, p.ktoaTx)) return false;
  return true;
}
function disarm(p: Port): void {
  const fn = p.g.dp.fn;
  fn.pt_app_awake(p.atokRx); fn.pt_app_awake(p.atokTx);
  if (p.kickGuest >= 0) p.f64[IO_PORT.KICKS] += host.eventfdDrain(p.kickGuest);
}

function command(c: IoCommand): void {
  if (c.op === 'add') {
    try { add(c); } catch (e) { // the port goes down ('take … failed'); this thread's others go on
      const i32 = new Int32Array(c.stats, IO_PORT.I32_AT, IO_PORT.I32);
      Atomics.store(i32, 1, 3); Atomics.store(i32, 0, -22);
      setMessage(`cannot take ${c.name}: ${(e as Error).message}`);
    }
  }
  else if (c.op === 'remove') ports.delete(c.id); // the switch closes the fd and frees the rings after the ack
  Atomics.store(words, IO_CTL.ACK, c.seq);
  Atomics.notify(words, IO_CTL.ACK);
  if (c.op === 'exit') {
    Atomics.store(words, IO_CTL.STATE, IoState.EXITED);
    Atomics.notify(words, IO_CTL.STATE);
    port.close();
    process.exit(0);
  }
}

function setMessage(s: string): void {
  const b = new TextEncoder().encode(s).subarray(0, IO_CTL.MSG_LEN - 1);
  message.fill(0); message.set(b);
}

words[IO_CTL.TID] = threadId();
Atomics.store(words, IO_CTL.STATE, IoState.RUNNING);
try {
  for (;;) {
    let msg;
    while ((msg = receiveMessageOnPort(port))) command(msg.message as IoCommand);
    Atomics.add(words, IO_CTL.BEAT, 1);
    let moved = 0;
    for (const p of ports.values()) moved += work(p);
    if (moved > 0 || poll === 'busy') continue;
    // adaptive and sleep: no spin here. The TAP's readiness wakes this thread at once, and the
    // switch kicks it only when it sleeps; measured on 2 shared cores, a spinning I/O thread
    // took the CPU the TCP endpoints need (TCP 0.8 Gbit/s with a 50 ms spin, 4.4-5 without)
    // sleep: every port armed (a kick asked for), then poll its TAP and its kick eventfd
    const fds: number[] = [wakeFd];
    let ready = true;
    for (const p of ports.values()) {
      if (!arm(p)) { ready = false; break; }
      if (p.failed) continue;
      fds.push(p.kickGuest);
      if (space(p, p.g.tx.ring, p.g.slots) >= p.need) fds.push(p.fd); // with no room to read into, the kick says when there is
    }
    if (ready) {
      host.pollFds(fds, 1000);
      host.eventfdDrain(wakeFd);
    }
    for (const p of ports.values()) disarm(p);
  }
} catch (e) {
  // the switch sees the state word: this thread's ports go down with this reason
  setMessage((e as Error).stack ?? String(e));
  Atomics.store(words, IO_CTL.STATE, IoState.DIED);
  Atomics.notify(words, IO_CTL.STATE);
  process.exit(70);
}
