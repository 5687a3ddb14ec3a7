// TAP ports whose kernel I/O runs in I/O threads beside the forwarding thread (`wasmap switch
// --io-threads N`, #16 item 4). Per frame, a TAP costs a readv or a writev: on one thread that
// is most of the forwarder's time. Here each TAP port is a passthrough port (passthrough.ts)
// whose guest is an I/O thread (src/io-worker.ts) over the same shared memory: the thread
// reads the TAP into the port's tx ring and writes its rx ring to the TAP, and syncs with the
// switch through the port's CSB, kicking only a side that asked (assembly/csb.ts). The
// switch's pull and push become a look at shared words; the rings' head/tail ownership is the
// only interface between the threads — no locks on the fast path.
// Faults: a TAP that fails takes its port down (the I/O thread stops using it); an I/O thread
// that dies or stops coming round takes its ports down with the reason, counted in
// `ioThreadDeaths`; detach waits for the thread to let go of the port before its fd and rings
// are freed. The threads start and stop with the switch.
import { Worker, MessageChannel, MessagePort } from 'node:worker_threads';
import type { NativeHost } from '../host.js';
import type { Datapath } from '../datapath.js';
import type { SwitchPort, PortStats } from '../switch.js';
import { WasmapError } from '../errors.js';
import { findBuildFile } from '../paths.js';
import { threadCpuMs } from '../threads.js';
import { PtPort } from './passthrough.js';
import type { AttachContext, Backend, Fields, SleepPass, Verdict } from './backend.js';
import { attachKernel } from './kernel.js';
import { TAP_DEFAULT_HDR, openTap } from './tap.js';

/** An I/O thread's control words (Int32, shared) and its last words (UTF-8) after them. */
export const IO_CTL = { STATE: 0, BEAT: 1, ACK: 2, TID: 3, ADD_ERR: 4, WORDS: 16, MSG_AT: 64, MSG_LEN: 1024 } as const;
export const IoState = { STARTING: 0, RUNNING: 1, EXITED: 2, DIED: 3 } as const;
/** A port's shared counters (Float64, written by its I/O thread) and status words (Int32:
 *  0 or -errno of the failed operation, then the operation: 1 read, 2 write, 3 take). */
export const IO_PORT = { RX: 0, TX: 1, REFUSED: 2, TOO_LONG: 3, KICKS: 4, F64: 8, I32_AT: 64, I32: 4, BYTES: 80 } as const;

export interface IoAdd { op: 'add'; seq: number; id: number; name: string; fd: number; kickGuest: number; info: unknown; stats: SharedArrayBuffer }
export type IoCommand = IoAdd | { op: 'remove'; seq: number; id: number } | { op: 'exit'; seq: number };

const STALL_MS = 10000; // a thread sleeps ≤ 1 s in poll(2): 10 s without a beat is a hung thread
const ERRNO: Record<number, string> = { 5: 'EIO', 19: 'ENODEV', 77: 'EBADFD', 100: 'ENETDOWN', 6: 'ENXIO', 9: 'EBADF', 22: 'EINVAL' };

/** One I/O thread, seen from the forwarding thread (which never runs an event loop: all
 *  talk is shared words, a MessagePort read by the I/O thread, and an eventfd to wake it). */
export class IoThread {
  readonly words: Int32Array;
  private readonly ctl = new SharedArrayBuffer(IO_CTL.MSG_AT + IO_CTL.MSG_LEN);
  private readonly worker: Worker;
  private readonly chan: MessagePort;
  readonly wakeFd: number;
  private seq = 0;
  readonly ports = new Set<TapIoPort>();
  private beat = -1; private beatAt = performance.now();
  /** Why it is gone (died, hung, terminated), null while it runs. */
  gone: string | null = null;

  constructor(private readonly host: NativeHost, readonly index: number, poll: string) {
    const script = findBuildFile('io-worker.mjs');
    if (!script) throw new WasmapError('NO_MODULE', 'build/io-worker.mjs not found: run `npm run build`');
    this.words = new Int32Array(this.ctl, 0, IO_CTL.WORDS);
    this.wakeFd = host.eventfdCreate();
    const { port1, port2 } = new MessageChannel();
    this.chan = port1;
    try {
      this.worker = new Worker(script, { workerData: { port: port2, ctl: this.ctl, wakeFd: this.wakeFd, poll }, transferList: [port2] });
    } catch (e) { host.closeFd(this.wakeFd); throw e; }
    this.worker.unref();
  }

  get tid(): number { return Atomics.load(this.words, IO_CTL.TID); }
  get state(): number { return Atomics.load(this.words, IO_CTL.STATE); }

  /** The thread's last words (an exception's stack). */
  private lastWords(): string {
    const b = new Uint8Array(this.ctl, IO_CTL.MSG_AT, IO_CTL.MSG_LEN).slice();
    const end = b.indexOf(0);
    return new TextDecoder().decode(b.subarray(0, end < 0 ? b.length : end));
  }

  /** Why the thread cannot serve its ports, or null. `slow`: also look at its heartbeat. */
  health(slow = false): string | null {
    if (this.gone) return this.gone;
    const st = this.state;
    if (st === IoState.DIED) return this.lose(`I/O thread ${this.index} died: ${this.lastWords().split('\n')[0]}`);
    if (st === IoState.EXITED) return this.lose(`I/O thread ${this.index} exited`);
    if (slow && st === IoState.RUNNING) {
      const b = Atomics.load(this.words, IO_CTL.BEAT), now = performance.now();
      if (b !== this.beat) { this.beat = b; this.beatAt = now; } else if (now - this.beatAt > STALL_MS) {
        this.terminate();
        return this.lose(`I/O thread ${this.index} stopped coming round for ${Math.round((now - this.beatAt) / 1000)} s; terminated`);
      }
    }
    return null;
  }
  private lose(reason: string): string {
    if (!this.gone) { this.gone = reason; IoThread.deaths++; try { console.error(`wasmap: ${reason}`); } catch { /* no stderr */ } }
    return reason;
  }
  /** I/O threads lost (died, hung) since the process started. */
  static deaths = 0;

  /** Send a command; with `waitMs`, wait for its acknowledgement. Returns whether it was acked. */
  send(cmd: Omit<IoAdd, 'seq'> | { op: 'remove'; id: number } | { op: 'exit' }, waitMs = 0): boolean {
    const seq = ++this.seq;
    this.chan.postMessage({ ...cmd, seq });
    this.host.eventfdSignal(this.wakeFd);
    if (!waitMs) return true;
    // a thread still starting (loading the module) gets longer
    const deadline = performance.now() + (this.state === IoState.STARTING ? Math.max(waitMs, 15000) : waitMs);
    for (;;) {
      const ack = Atomics.load(this.words, IO_CTL.ACK);
      if (ack >= seq) return true;
      if (this.health()) return false;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.wait(this.words, IO_CTL.ACK, ack, Math.min(left, 50));
    }
  }

  private terminate(): void {
    void this.worker.terminate();
    // a native call in flight (a readv into a ring) ends within microseconds: let it, before
    // the rings it may touch are freed
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }

  /** Stop the thread: ask it to exit, wait, terminate it if it does not. */
  stop(): void {
    if (!this.gone && !this.send({ op: 'exit' }, 2000)) this.terminate();
    else if (!this.gone) Atomics.wait(this.words, IO_CTL.STATE, IoState.RUNNING, 2000);
    this.gone ??= 'stopped';
    this.chan.close();
    try { this.host.closeFd(this.wakeFd); } catch { /* closed */ }
  }

  /** A port leaves the thread: it no longer touches the port's fd or rings after this. A
   *  thread that does not answer in 2 s is terminated (its other ports go down). */
  remove(p: TapIoPort): void {
    this.ports.delete(p);
    if (this.gone) return;
    if (!this.send({ op: 'remove', id: p.id }, 2000)) {
      this.terminate();
      this.lose(`I/O thread ${this.index} did not let go of ${p.ifname} within 2 s; terminated`);
    }
  }

  cpuMs(): number { const t = this.tid; return t ? threadCpuMs(t) : 0; }
}

/** The switch's I/O threads: all started with the switch (an idle one sleeps in poll(2)),
 *  stopped with it; a thread that died is replaced when a new port needs it. */
export class IoPool {
  private readonly threads: (IoThread | null)[];
  private nextId = 1;
  constructor(readonly host: NativeHost, readonly n: number, readonly poll: string) {
    this.threads = new Array<IoThread | null>(n).fill(null);
    // started now, so they are ready (module loaded, wasm compiled) before the first attach
    for (let i = 0; i < n; i++) this.threads[i] = new IoThread(host, i, poll);
  }

  /** A thread for a new port: `want` (an index) or the one with the fewest ports. A dead
   *  thread's place gets a new thread (the dead one's ports stay down). */
  pick(want?: number): IoThread {
    if (want !== undefined && (!Number.isInteger(want) || want < 0 || want >= this.n)) {
      throw new WasmapError('EINVAL', `io thread ${want} does not exist: this switch runs ${this.n} (wasmap switch --io-threads N); give 0..${this.n - 1} or 'none'`);
    }
    let at = want ?? 0;
    if (want === undefined) {
      for (let i = 0; i < this.n; i++) if ((this.threads[i]?.ports.size ?? 0) < (this.threads[at]?.ports.size ?? 0)) at = i;
    }
    let t = this.threads[at];
    if (t && t.health()) { t.stop(); t = null; } // its ports stay down; the new thread takes new ones
    if (!t) t = this.threads[at] = new IoThread(this.host, at, this.poll);
    return t;
  }

  newId(): number { return this.nextId++; }


  info(): { index: number; tid: number; ports: number; cpuMs: number; passes: number; down: string | null }[] {
    return this.threads.flatMap((t, index) => t ? [{ index, tid: t.tid, ports: t.ports.size, cpuMs: t.cpuMs(), passes: Atomics.load(t.words, IO_CTL.BEAT), down: t.health(true) }] : []);
  }
  get deaths(): number { return IoThread.deaths; }

  close(): void {
    for (const t of this.threads) if (t) t.stop();
    this.threads.fill(null);
  }
}

export class TapIoPort implements Backend {
  readonly kind = 'tap' as const;
  down: string | null = null;
  readonly port: SwitchPort;
  readonly id: number;
  private readonly shared = new SharedArrayBuffer(IO_PORT.BYTES);
  private readonly f64 = new Float64Array(this.shared, 0, IO_PORT.F64);
  private readonly i32 = new Int32Array(this.shared, IO_PORT.I32_AT, IO_PORT.I32);
  private released = false;
  private last: { kernelRx: number; kernelTx: number; kernelDrops: number } | null = null;

  constructor(private readonly host: NativeHost, private readonly dp: Datapath, readonly ifname: string,
              private readonly pt: PtPort, public fd: number, private readonly pool: IoPool, private readonly io: IoThread) {
    this.port = pt.port;
    this.id = pool.newId();
    io.ports.add(this);
    // wait until the thread has the port (a thread still starting gets 15 s): when attach
    // answers, the port forwards
    if (!io.send({ op: 'add', id: this.id, name: `tap:${ifname}`, fd, kickGuest: pt.kickGuest, info: pt.workerInfo(), stats: this.shared }, 2000)) {
      this.down = io.health() ?? `I/O thread ${io.index} did not take the port within 2 s`;
    }
  }

  /** Frames come through the CSB (the round takes them): only a look at the shared words. */
  pull(): number {
    if (!this.down) this.check(false);
    return 0;
  }
  /** Kick the I/O thread when a round gave it frames and it sleeps (it asked). */
  push(): number { return this.down ? 0 : this.pt.push(); }

  private check(slow: boolean): void {
    const rc = Atomics.load(this.i32, 0);
    if (rc !== 0) {
      const op = ['', 'read', 'write', 'take'][Atomics.load(this.i32, 1)] ?? 'I/O';
      this.down = `${op} on tap:${this.ifname} failed: ${ERRNO[-rc] ?? `errno ${-rc}`} (interface gone or down)`;
      return;
    }
    const why = this.io.health(slow);
    if (why) this.down = why;
  }

  sleepFds(fds: number[], pass: SleepPass): Verdict {
    if (!this.down) this.check(true);
    return this.pt.sleepFds(fds, pass);
  }
  woke(fds: number[], revents: number[], pass: SleepPass): void { this.pt.woke(fds, revents, pass); }

  answersTo(spec: string): boolean {
    const i = spec.indexOf(':');
    return ['tap', 'af_packet'].includes(spec.slice(0, i)) && spec.slice(i + 1) === this.ifname;
  }
  info(): Fields { return { ifname: this.ifname, ioThread: this.io.index }; }
  stats(): Fields {
    if (!this.down) this.check(true);
    const f = this.f64;
    return { ...(this.last ?? { kernelRx: f[IO_PORT.RX], kernelTx: f[IO_PORT.TX], kernelDrops: f[IO_PORT.REFUSED] + f[IO_PORT.TOO_LONG] }), ioThread: this.io.index, kicksToIo: this.pt.kicksOut, kicksFromIo: this.pt.kicksIn, ioKicks: f[IO_PORT.KICKS] };
  }

  /** The I/O thread lets go of the port (acknowledged), then its fd closes. */
  private release(): void {
    if (this.released) return;
    this.released = true;
    this.io.remove(this);
    const f = this.f64;
    this.last = { kernelRx: f[IO_PORT.RX], kernelTx: f[IO_PORT.TX], kernelDrops: f[IO_PORT.REFUSED] + f[IO_PORT.TOO_LONG] };
    try { this.host.closeFd(this.fd); } catch { /* gone */ }
    this.fd = -1;
  }

  close(reason: string, detach?: () => PortStats): { stats?: PortStats } & Fields {
    if (!detach) {
      // a fault: the port stays, listed down, as an ordinary port (its rings' user fields back
      // in the ring), so the runner can take what the switch still delivers to it off its ring
      this.down = reason;
      this.release();
      if (!this.ptDetached) { this.dp.fn.pt_detach(this.port.sw.sw, this.port.index); this.ptDetached = true; }
      return {};
    }
    this.release();
    const r = this.pt.close(reason, detach);
    return { stats: r.stats };
  }
  private ptDetached = false;
}

/** `tap:IF` with its kernel I/O in an I/O thread (c.io), or in the forwarding loop when the
 *  switch has no I/O threads or the attach asks for none (`ioThread: 'none'`). */
export function openTapAny(c: AttachContext): Backend {
  const want = c.args.ioThread;
  if (!c.io || c.io.n === 0 || want === 'none' || want === -1) {
    if (want !== undefined && want !== 'none' && want !== -1) throw new WasmapError('EINVAL', `this switch runs no I/O threads (wasmap switch --io-threads N); attach without --io-thread or with --io-thread none`);
    return openTap(c);
  }
  const idx = want === undefined || want === 'auto' ? undefined : Number(want);
  if (idx !== undefined && !Number.isInteger(idx)) throw new WasmapError('EINVAL', `--io-thread must be a thread number, 'auto' or 'none', not '${String(want)}'`);
  const pool = c.io;
  return attachKernel(c, (ifname, hdr, attach) => {
    void attach; // the port is the passthrough port made here (its own region and CSB)
    const io = pool.pick(idx);
    let fd: number;
    try { fd = c.host.tapOpen(ifname, hdr).fd; } catch (e) {
      const err = e as Error & { code?: string };
      throw new WasmapError(err.code ?? 'EIO', `tap:${ifname}: ${err.message}`);
    }
    let pt: PtPort;
    try { pt = new PtPort(c.host, c.dp, c.sw, ifname, 'worker', { kickGuest: true }); } catch (e) {
      c.host.closeFd(fd);
      throw e;
    }
    return new TapIoPort(c.host, c.dp, ifname, pt, fd, pool, io);
  }, TAP_DEFAULT_HDR);
}
