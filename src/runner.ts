// The forwarding loop and the control operations it serialises with. It owns the Datapath
// (one shared memory), the VALE registry and the backends (every port kind but plain virtual
// ports: src/backends/backend.ts); it runs in a worker thread of the switch daemon, or
// in-process for tests. Busy while there is work, then it sleeps in poll(2) on what the
// backends give it to poll, so an idle switch costs ~0 % CPU.
import { readdirSync, readlinkSync } from 'node:fs';
import { threadId, threadCpuMs } from './threads.js';
import { Datapath } from './datapath.js';
import { WasmapError } from './errors.js';
import { loadHost, requireHost, NativeHost } from './host.js';
import { Vale } from './vale.js';
import { PortStats } from './switch.js';
import { PcapWriter } from './backends/capture.js';
import { Backend, BackendFactory, AttachContext, SleepPass, StageFault } from './backends/backend.js';
import { vnetHdr } from './backends/kernel.js';
import { openTapAny, IoPool } from './backends/tap-io.js';
import { openAfPacket } from './backends/af_packet.js';
import { openAfXdp } from './backends/af_xdp.js';
import { openVhostUser } from './backends/vhost-user.js';
import { PtPort, PtMode, openPassthrough } from './backends/passthrough.js';
import { TunnelPort, openTunnel } from './backends/tunnel.js';
import type { Fallback } from './fn/host.js';

export interface Request { id?: number | string; verb: string; args?: Record<string, unknown> }

/** How the forwarding thread waits for work (`wasmap switch --poll`):
 *  busy     never sleeps: one core spins, lowest latency;
 *  adaptive spins for spinUs after the last frame moved, then sleeps in poll(2) until a kick
 *           (~0 % CPU idle, low latency while traffic is recent);
 *  sleep    sleeps as soon as a pass moves nothing (least CPU, a wake-up on every frame). */
export type PollMode = 'busy' | 'adaptive' | 'sleep';
export const POLL_MODES: readonly PollMode[] = ['busy', 'adaptive', 'sleep'];
/** A poll mode by name, or a clear error. */
export function pollMode(v: unknown): PollMode {
  if (typeof v === 'string' && (POLL_MODES as readonly string[]).includes(v)) return v as PollMode;
  throw new WasmapError('EINVAL', `--poll must be one of ${POLL_MODES.join(', ')}, not '${String(v)}' (busy: lowest latency, one core spins; adaptive: spin while traffic is recent, then sleep; sleep: least CPU)`);
}
export type Reply = { id?: number | string; ok: true; result: unknown } | { id?: number | string; ok: false; error: { code: string; message: string } };

const num = (b: bigint) => Number(b);



/** The port kinds `attach` knows, by the prefix of the port's name ('tap:IF' …). A new kind is
 *  its file under src/backends/ and one line here. (Passthrough ports come by pt-open.) */
const kinds: Record<string, BackendFactory> = {
  'tap': openTapAny, // in the loop, or in an I/O thread when the switch runs some (tap-io.ts)
  'af_packet': openAfPacket,
  'af_xdp': openAfXdp,
  'vhost-user': openVhostUser,
  'vxlan': openTunnel, // VXLAN / Geneve tunnel ports (tunnel.ts)
  'geneve': openTunnel,
};
/** The kind a port name begins with ('tap' for 'tap:eth0'), if `kinds` has it. */
const kindOf = (port: string): string | undefined => {
  const i = port.indexOf(':');
  return i > 0 && Object.hasOwn(kinds, port.slice(0, i)) ? port.slice(0, i) : undefined;
};

export class Runner {
  private static readonly nap = new Int32Array(new SharedArrayBuffer(4)); // a word nobody changes: a plain sleep
  readonly dp = new Datapath();
  readonly vale = new Vale(this.dp);
  /** Every port with a peer, 'vale0:port' -> its backend (virtual ports have none). */
  private readonly backends = new VersionedMap<string, Backend>();
  private readonly captures = new Map<string, PcapWriter>(); // 'vale0:port' -> its pcap
  /** Removed ports whose backend lives and dies with its peer (reclaim: passthrough guests). */
  private readonly gone: ({ name: string; at: number } & Record<string, unknown>)[] = [];
  // Ports whose work threw (a bug, or a peer that got a backend into a state it cannot handle):
  // the port is down with this reason until detached, its kernel/guest resources released; the
  // frames the switch still delivers to it are taken off its rx ring and counted in faultDrops.
  private readonly faults = new VersionedMap<string, { reason: string; at: number; drops: number }>();
  // the pass's list of live backends, rebuilt only when a backend comes, goes or faults: a pass
  // then costs no iterator, closure or lookup per port (at ~1 µs a pass, those were ~20 %)
  private hot: [string, Backend][] = [];
  /** Passes that went on to arm kicks and maybe sleep (the worker looks for requests after each). */
  arms = 0;
  private hotB = -1; private hotF = -1;
  private readonly captureStops = new Map<string, string>(); // 'vale0:port' -> why its capture stopped
  private lastWork = 0;
  private lastService = 0;
  private lastArm = 0; // busy mode: when the backends last ran their arm/disarm (drop counters, kick drains)
  /** How this runner's loop waits (set by its owner: runner-worker.ts); shown by `stats`. */
  poll: { mode: PollMode; spinUs: number } = { mode: 'adaptive', spinUs: 50000 };
  private tid = 0; // the forwarding thread's Linux thread id (the thread that called stepOrSleep)
  /** I/O threads for TAP ports (`wasmap switch --io-threads N`); null: all I/O in the loop. */
  io: IoPool | null = null;

  /** Run TAP ports' kernel I/O in `n` I/O threads from now on (0: in the forwarding loop).
   *  In busy mode they spin too; otherwise they sleep in poll(2) whenever a pass moves nothing. */
  setIoThreads(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > 64) throw new WasmapError('EINVAL', `io threads must be 0..64, not ${n}`);
    if (this.io) this.io.close();
    this.io = n > 0 ? new IoPool(this.host(), n, this.poll.mode) : null;
  }
  readonly started = Date.now();
  stopping = false;

  constructor(readonly switchNames: string[] = []) {
    for (const n of switchNames) this.vale.switch(n, true);
  }

  private host(): NativeHost { return requireHost(); }

  /** One pass: every backend pulls (peer → rings), forward on every switch, every backend
   *  pushes (rings → peer). Returns frames moved. */
  step(nowSec = Math.floor(Date.now() / 1000)): number {
    let moved = 0;
    if (this.hotB !== this.backends.version || this.hotF !== this.faults.version) {
      this.hot = [...this.backends].filter(([full]) => !this.faults.has(full));
      this.hotB = this.backends.version; this.hotF = this.faults.version;
    }
    moved += this.hotPass(false);
    const marks = this.captures.size ? this.captureBefore() : null;
    moved += this.vale.rounds(nowSec);
    if (marks) this.captureAfter(marks);
    moved += this.hotPass(true);
    if (this.faults.size) this.drainFaulted();
    return moved;
  }

  /** Every live backend's pull (or push), in the order of the pass's list. Each port's own work
   *  is fenced: a throw takes that port down (portFault), not the pass; after one, the ports it
   *  removed or faulted are skipped (the list is as it was at the start of the pass). */
  private hotPass(push: boolean): number {
    const hot = this.hot, bv = this.hotB, fv = this.hotF;
    let moved = 0;
    for (let i = 0; i < hot.length; i++) {
      const full = hot[i][0], b = hot[i][1];
      if ((bv !== this.backends.version || fv !== this.faults.version) && (this.faults.has(full) || !this.backends.has(full))) continue;
      try { moved += (push ? b.push() : b.pull()) || 0; } catch (e) { this.portFault(full, e instanceof StageFault ? e.what : push ? 'push' : 'pull', e); }
    }
    return moved;
  }

  /** Run one piece of port `full`'s work; a throw takes the port down. Returns frames moved. */
  private portWork(full: string, what: string, work: () => number | void): number {
    if (this.faults.has(full) || !this.backends.has(full)) return 0;
    try { return work() || 0; } catch (e) { this.portFault(full, e instanceof StageFault ? e.what : what, e); return 0; }
  }

  /** Port `full`'s work threw: mark it down with the reason and release what it holds outside
   *  the switch (kernel endpoint, guest memory and socket, capture). A backend that lives and
   *  dies with its peer (reclaim: a passthrough guest) is removed at once (its reason in
   *  guestsGone); any other port stays (listed down) until detached. Never throws. */
  private portFault(full: string, what: string, e: unknown): void {
    const msg = e instanceof Error ? e.message : String(e);
    const reason = `fault in ${what}: ${msg.length > 300 ? `${msg.slice(0, 300)}…` : msg}; port taken down (detach it to remove it)`;
    try { console.error(`wasmap: ${full}: ${reason}`); } catch { /* no stderr */ }
    const pcap = this.captures.get(full);
    if (pcap) { pcap.close(); this.captures.delete(full); this.captureStops.set(full, `port fault: ${msg}`); }
    const b = this.backends.get(full);
    if (!b) return;
    if (b.reclaim) {
      try { this.remove(full, b, reason); } catch { this.backends.delete(full); }
      return;
    }
    this.faults.set(full, { reason, at: Date.now(), drops: 0 });
    try { b.close(reason); } catch { /* keep the first error */ }
  }

  // frames the switch delivered to a faulted port since: off its rx ring, counted
  private drainFaulted(): void {
    for (const [full, f] of this.faults) {
      const p = this.portOf(full);
      if (!p) continue;
      try { f.drops += p.recv().length; } catch { /* the ring is ours: nothing to fix here */ }
    }
  }

  private portOf(full: string) {
    const i = full.indexOf(':');
    return this.vale.has(full.slice(0, i)) ? this.vale.switch(full.slice(0, i)).port(full.slice(i + 1)) : undefined;
  }

  // What a round took from a port's tx ring is [hwcur before, hwcur after) and what it
  // delivered to its rx ring [hwtail before, hwtail after): both ends from the krings, which
  // only the switch writes (a passthrough guest's ring head/tail and header are never read).
  private captureBefore(): Map<string, [number, number]> {
    const marks = new Map<string, [number, number]>(), a = this.dp.abi;
    for (const full of this.captures.keys()) {
      const p = this.portOf(full);
      if (p) marks.set(full, [this.dp.u32(p.tx.kring + a.KR_HWCUR), this.dp.u32(p.rx.kring + a.KR_HWTAIL)]);
    }
    return marks;
  }
  private captureAfter(marks: Map<string, [number, number]>): void {
    const a = this.dp.abi;
    for (const [full, pcap] of this.captures) {
      const p = this.portOf(full), m = marks.get(full);
      try {
        if (p && m) {
          pcap.frames(this.dp, p.tx.kring, m[0], this.dp.u32(p.tx.kring + a.KR_HWCUR));
          pcap.frames(this.dp, p.rx.kring, m[1], this.dp.u32(p.rx.kring + a.KR_HWTAIL));
        }
      } catch (e) { // the pcap file failed (disk full...): the capture stops, the port goes on
        this.captureStops.set(full, `capture stopped after ${pcap.count} frames: ${(e as Error).message}`);
        pcap.close(); this.captures.delete(full);
        continue;
      }
      if (pcap.done) { pcap.close(); this.captures.delete(full); }
    }
  }

  /** Step; when nothing moved for `spinUs`, sleep up to `maxSleepMs` waiting for input. The
   *  short spin after traffic catches the answer to what was just forwarded (a ping reply, a
   *  TCP ack) without a sleep/wake-up on each side; an idle switch sleeps in poll(2).
   *  mode 'busy' never sleeps; 'sleep' sleeps after any pass that moved nothing (spinUs 0). */
  stepOrSleep(maxSleepMs = 10, spinUs = 300, wakeFd = -1, mode: PollMode = 'adaptive'): number {
    if (!this.tid) this.tid = threadId();
    // one clock read a pass (it was two: ~7 % of a pass that moves nothing): taken before the
    // pass, it serves the switch's aging (seconds) and the spin and service timers
    const now = performance.now();
    const moved = this.step(Math.floor((performance.timeOrigin + now) / 1000));
    // control work (vhost-user messages) is served between passes, at least every 2 ms while
    // busy (QEMU waits for some replies), at once after a sleep
    if (now - this.lastService >= 2) this.service(now);
    if (moved > 0) { this.lastWork = now; return moved; }
    if (mode === 'busy') {
      // never sleep; but every 100 ms arm and disarm with a zero timeout, so what backends do
      // around a sleep still happens (AF_PACKET reads its kernel drop count, kicks are drained)
      if (now - this.lastArm < 100) return 0;
      this.lastArm = now;
      maxSleepMs = 0;
    } else if (mode === 'adaptive' && (now - this.lastWork) * 1000 < spinUs) return 0;
    this.arms++;
    const fds: number[] = [];
    if (wakeFd >= 0) fds.push(wakeFd); // another thread signals it when a request waits
    // every backend arms (asks its peer for a kick, then looks once more); one that finds work
    // meanwhile ends the arming, and all that armed are disarmed without sleeping
    const done = new Map<string, unknown>();
    const pass: SleepPass = { once: <T>(key: string, f: () => T): T => { if (!done.has(key)) done.set(key, f()); return done.get(key) as T; } };
    const armed: [string, Backend, number, number][] = []; // backend, its fds [from, to)
    let work = false;
    for (const [full, b] of [...this.backends]) {
      if (!b.sleepFds || this.faults.has(full)) continue;
      let v = 'sleep';
      const from = fds.length;
      this.portWork(full, 'sleep', () => { v = b.sleepFds!(fds, pass); });
      if (!this.backends.has(full) || this.faults.has(full)) { fds.length = from; continue; } // it faulted
      armed.push([full, b, from, fds.length]);
      if (v === 'work') { work = true; break; }
      if (v === 'nap') maxSleepMs = Math.min(maxSleepMs, 1);
    }
    let rev = new Array<number>(fds.length).fill(0), polled = false;
    const host = loadHost();
    if (work) { /* no sleep */ } else if (fds.length && host) {
      rev = host.pollFds(fds, maxSleepMs); polled = true;
      if (wakeFd >= 0) host.eventfdDrain(wakeFd);
    } else if (maxSleepMs > 0) Atomics.wait(Runner.nap, 0, 0, maxSleepMs);
    for (const [full, b, from, to] of armed) {
      if (b.woke) this.portWork(full, 'wake-up', () => b.woke!(fds.slice(from, to), rev.slice(from, to), pass));
    }
    if (polled) this.service(performance.now());
    return 0;
  }

  /** Control work of every backend that has some (vhost-user: accept QEMU, answer its
   *  messages). Never blocks. */
  service(now = performance.now()): void {
    this.lastService = now;
    for (const [full, b] of [...this.backends]) if (b.service) this.portWork(full, `${b.kind} service`, () => b.service!());
  }
  /** service() by its old name (the vhost-user tests and harness call it so). */
  vhostService(now = performance.now()): void { this.service(now); }

  /** Add a backend made by `make` for switch `sw`'s port `spec`; returns it. */
  private add<B extends Backend>(sw: string, spec: string, args: Record<string, unknown>, make: (c: AttachContext) => B): B {
    const b = make({ host: this.host(), dp: this.dp, sw: this.vale.switch(sw), spec, args, attached: this.backends, io: this.io ?? undefined });
    this.backends.set(`${sw}:${b.port.name}`, b);
    return b;
  }

  /** Take backend `b` of port `full` away with its port: its peer released, the port detached.
   *  Returns the detach reply; a reclaimed backend's is kept in guestsGone too. */
  private remove(full: string, b: Backend, reason: string): Record<string, unknown> {
    const pcap = this.captures.get(full);
    if (pcap) { pcap.close(); this.captures.delete(full); }
    this.backends.delete(full);
    const fault = this.faults.get(full);
    this.faults.delete(full); this.captureStops.delete(full);
    const r = b.close(reason, () => b.port.sw.detach(b.port.name));
    const out = { name: full, ...r, stats: r.stats && this.plain(r.stats), ...(fault ? { fault: fault.reason, faultDrops: fault.drops } : {}) };
    if (b.reclaim) {
      this.gone.push({ ...out, at: Date.now() });
      if (this.gone.length > 256) this.gone.shift();
    }
    return out;
  }

  /** Open `port` of switch `sw` for a passthrough guest (a new port; its name must be free). */
  ptOpen(sw: string, port: string, mode: PtMode, o: { slots?: number; bufSize?: number } = {}): PtPort {
    return this.add(sw, port, {}, (c) => openPassthrough(c, mode, o));
  }

  /** The guest of `port` is gone: reclaim its port (its counters kept in guestsGone). */
  ptClose(sw: string, port: string, reason: string): unknown {
    const full = this.full(sw, port);
    const pt = this.backends.get(full);
    if (!(pt instanceof PtPort)) throw new WasmapError('ENOENT', `no passthrough port ${full}`);
    return this.remove(full, pt, reason);
  }

  /** Leak checks: bytes of linear memory handed out, the memfds/eventfds this process holds,
   *  its sockets, and peer memory (guest RAM) the backends mapped. */
  memory(): { allocated: number; fds: number; sockets: number; guestMapped: number } {
    let fds = 0, sockets = 0;
    for (const f of readdirSync('/proc/self/fd')) {
      try {
        const l = readlinkSync(`/proc/self/fd/${f}`);
        if (/^(\/memfd:|anon_inode:\[eventfd\])/.test(l)) fds++;
        else if (l.startsWith('socket:')) sockets++;
      } catch { /* closed meanwhile */ }
    }
    let guestMapped = 0;
    for (const b of this.backends.values()) guestMapped += b.mappedBytes ?? 0;
    return { allocated: this.dp.allocated, fds, sockets, guestMapped };
  }

  handle(req: Request): Reply {
    try {
      return { id: req.id, ok: true, result: this.dispatch(req.verb, req.args ?? {}) };
    } catch (e) {
      const err = e as Error & { code?: string };
      return { id: req.id, ok: false, error: { code: err instanceof WasmapError ? err.code : (err.code ?? 'EINTERNAL'), message: err.message } };
    }
  }

  private str(args: Record<string, unknown>, key: string, what: string): string {
    const v = args[key];
    if (typeof v !== 'string' || !v) throw new WasmapError('EINVAL', `missing ${what} ('${key}')`);
    return v;
  }

  private swName(args: Record<string, unknown>): string {
    const name = this.str(args, 'switch', 'switch name');
    if (!this.vale.has(name)) throw new WasmapError('ENOENT', `no switch ${name} in this daemon; it runs: ${this.vale.switchNames().join(', ') || 'none'}`);
    return name;
  }

  private dispatch(verb: string, args: Record<string, unknown>): unknown {
    switch (verb) {
      case 'memory': return this.memory();
      case 'ping': return { pong: true, pid: process.pid, uptimeMs: Date.now() - this.started };
      case 'attach': return this.attach(this.swName(args), this.str(args, 'port', `port (${Object.keys(kinds).map((k) => `${k}:…`).join(', ')} or a virtual port name)`), args);
      case 'detach': return this.detach(this.swName(args), this.str(args, 'port', 'port'));
      case 'list': return this.list(typeof args.switch === 'string' ? this.swName(args) : undefined);
      case 'stats': return this.stats(typeof args.switch === 'string' ? this.swName(args) : undefined);
      case 'newif': { const r = this.vale.newif(this.str(args, 'name', 'port name')); return { name: this.str(args, 'name', ''), slots: r.slots }; }
      case 'delif': this.vale.delif(this.str(args, 'name', 'port name')); return { deleted: args.name };
      case 'pt-open': {
        const sw = this.swName(args);
        const pt = this.ptOpen(sw, this.str(args, 'port', 'port name'), 'process', { slots: args.slots as number | undefined, bufSize: args.bufSize as number | undefined });
        return pt.processInfo();
      }
      case 'pt-close': return this.ptClose(this.swName(args), this.str(args, 'port', 'port'), typeof args.reason === 'string' ? args.reason : 'closed');
      case 'capture': return this.capture(this.swName(args), this.str(args, 'port', 'port'), this.str(args, 'file', 'pcap file path'), Number(args.count ?? 0));
      case 'capture-status': return this.captureStatus(this.swName(args), this.str(args, 'port', 'port'));
      case 'set-lookup': return this.setLookup(this.swName(args), args);
      case 'fdb': return this.fdb(this.swName(args), this.str(args, 'port', 'tunnel port'), this.str(args, 'op', 'fdb operation (add, del, list)'), args);
      case 'capture-stop': return this.captureStop(this.swName(args), this.str(args, 'port', 'port'));
      default: throw new WasmapError('EINVAL', `unknown verb '${verb}'; verbs: attach, detach, list, stats, fdb, set-lookup, newif, delif, capture, pt-open, pt-close, ping`);
    }
  }

  attach(sw: string, port: string, args: Record<string, unknown> = {}): unknown {
    const kind = kindOf(port);
    if (kind) {
      const b = this.add(sw, port, args, kinds[kind]);
      return { name: `${sw}:${b.port.name}`, kind: b.kind, ...b.info(), index: b.port.index, vnetHdr: this.hdrLen(sw, b.port.name) };
    }
    const hdr = vnetHdr(args);
    const name = port.includes(':') ? port : `${sw}:${port}`;
    if (!name.startsWith(`${sw}:`)) throw new WasmapError('EINVAL', `port ${port} names another switch than ${sw}`);
    const p = this.vale.attach(name);
    if (hdr) this.vale.switch(sw).setHeaderLength(p.name, hdr);
    return { name, kind: 'virtual', index: p.index, vnetHdr: hdr };
  }

  /** Install a forwarding function (module bytes in base64) or go back to learning ('default').
   *  Runs between two forwarding passes of this thread: the swap loses and reorders nothing. */
  setLookup(sw: string, args: Record<string, unknown>): unknown {
    const mod = args.module;
    if (typeof mod !== 'string' || !mod) throw new WasmapError('EINVAL', "missing the module ('module': base64 bytes of a .wasm file, or 'default')");
    const fallback = args.fallback === undefined ? undefined : String(args.fallback) as Fallback;
    const s = this.vale.switch(sw);
    if (mod === 'default') return s.setLookup('default');
    const bytes = Buffer.from(mod, 'base64');
    if (!bytes.length) throw new WasmapError('EBADFN', 'the module is empty');
    return s.setLookup(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), {
      config: args.config, fallback, name: typeof args.name === 'string' ? args.name : undefined,
    });
  }

  /** 'valeX:NAME' for a port named NAME, valeX:NAME, or as it was attached (tap:IF, vhost-user:PATH…). */
  private full(sw: string, port: string): string {
    if (kindOf(port)) {
      for (const [k, b] of this.backends) if (k.startsWith(`${sw}:`) && b.answersTo?.(port)) return k;
      return `${sw}:${port.slice(port.indexOf(':') + 1)}`;
    }
    return `${sw}:${port.replace(new RegExp(`^${sw}:`), '')}`;
  }

  private hdrLen(sw: string, port: string): number { return this.vale.switch(sw).stats().ports.find((x) => x.name === port)?.hdrLen ?? 0; }

  capture(sw: string, port: string, file: string, count: number): unknown {
    const full = this.full(sw, port);
    const p = this.portOf(full);
    if (!p) throw new WasmapError('ENOENT', `no port ${full}`);
    if (this.captures.has(full)) throw new WasmapError('EBUSY', `${full} is already being captured`);
    if (this.faults.has(full)) throw new WasmapError('ENETDOWN', `${full} is down: ${this.faults.get(full)!.reason}`);
    if (!Number.isInteger(count) || count < 0) throw new WasmapError('EINVAL', `count must be a whole number ≥ 0, not ${count}`);
    try { this.captures.set(full, new PcapWriter(file, count, this.hdrLen(sw, p.name))); } catch (e) { throw new WasmapError('EIO', `cannot write ${file}: ${(e as Error).message}`); }
    return { port: full, file, count };
  }
  captureStatus(sw: string, port: string): unknown {
    const full = this.full(sw, port), pcap = this.captures.get(full);
    return pcap ? { active: true, frames: pcap.count, badSlots: pcap.badSlots } : { active: false, stopped: this.captureStops.get(full) ?? null };
  }
  captureStop(sw: string, port: string): unknown {
    const full = this.full(sw, port), pcap = this.captures.get(full);
    if (!pcap) throw new WasmapError('ENOENT', `no capture on ${full}`);
    pcap.close(); this.captures.delete(full);
    return { port: full, frames: pcap.count };
  }

  /** A tunnel port's forwarding database: list, add a static entry MAC -> remote, del. */
  fdb(sw: string, port: string, op: string, args: Record<string, unknown>): unknown {
    const full = this.full(sw, port), b = this.backends.get(full);
    if (!(b instanceof TunnelPort)) throw new WasmapError('ENOENT', `${full} is not a tunnel port (vxlan:… or geneve:…)`);
    switch (op) {
      case 'list': return b.fdbList();
      case 'add': return b.fdbAdd(this.str(args, 'mac', 'MAC address'), this.str(args, 'remote', 'remote VTEP address'));
      case 'del': return b.fdbDel(this.str(args, 'mac', 'MAC address'));
      default: throw new WasmapError('EINVAL', `fdb operations: add, del, list (not '${op}')`);
    }
  }

  detach(sw: string, port: string): unknown {
    const full = this.full(sw, port);
    const b = this.backends.get(full);
    if (b) return this.remove(full, b, 'detached by request');
    if (kindOf(port)) throw new WasmapError('ENOENT', `no port of ${sw} answers to ${port}`);
    const pcap = this.captures.get(full);
    if (pcap) { pcap.close(); this.captures.delete(full); }
    const stats = this.vale.detach(full); // a virtual port, attached as valeX:NAME
    this.captureStops.delete(full);
    return { name: full, stats: this.plain(stats) };
  }

  private plain(p: PortStats): Record<string, number | string> {
    const out: Record<string, number | string> = {};
    for (const [k, v] of Object.entries(p)) out[k] = typeof v === 'bigint' ? num(v) : v;
    return out;
  }

  list(only?: string): unknown {
    return this.vale.list().filter((e) => !only || e.switchName === only).map((e) => {
      const b = this.backends.get(e.name);
      if (!b) return { ...e, kind: 'virtual', down: null };
      return { ...e, kind: b.kind, ...b.info(), down: this.faults.get(e.name)?.reason ?? b.down };
    });
  }

  stats(only?: string): unknown {
    return this.vale.switchNames().filter((n) => !only || n === only).map((n) => {
      const s = this.vale.switch(n).stats();
      return {
        name: n, poll: this.poll.mode, ...(this.poll.mode === 'adaptive' ? { spinUs: this.poll.spinUs } : {}), forwarder: this.threadCpu(),
        ...(this.io ? { ioThreads: this.io.info(), ioThreadDeaths: this.io.deaths } : {}),
        lookup: this.vale.switch(n).lookupStatus(), guestsGone: this.gone.filter((g) => g.name.startsWith(`${n}:`)), rounds: num(s.rounds), frames: num(s.frames), floodExtra: num(s.floodExtra), segExtra: num(s.segExtra), learned: num(s.learned),
        ports: s.ports.map((p) => {
          const b = this.backends.get(`${n}:${p.name}`), fault = this.faults.get(`${n}:${p.name}`);
          if (!b) return { ...this.plain(p), kind: 'virtual', down: null, kernelRx: 0, kernelTx: 0, kernelDrops: 0 };
          return { ...this.plain(p), ...(fault ? { faultDrops: fault.drops } : {}), kind: b.kind, down: fault?.reason ?? b.down, ...b.stats() };
        }),
      };
    });
  }

  /** The forwarding thread's id and CPU time so far (ms, from /proc; null before it ran). */
  threadCpu(): { tid: number; cpuMs: number } | null {
    return this.tid ? { tid: this.tid, cpuMs: threadCpuMs(this.tid) } : null;
  }

  close(): void {
    for (const pcap of this.captures.values()) pcap.close();
    this.captures.clear();
    // reclaimed ones (passthrough guests) go first, as before: their ports go with them
    const all = [...this.backends].sort(([, a], [, b]) => Number(!!b.reclaim) - Number(!!a.reclaim));
    for (const [full, b] of all) {
      if (b.reclaim) this.remove(full, b, 'switch stopping');
      else { b.close('switch stopping', () => b.port.sw.detach(b.port.name)); this.backends.delete(full); }
    }
    this.io?.close();
    this.vale.close();
  }
}

/** A Map that counts its changes (the runner rebuilds its per-pass list only when one happened). */
class VersionedMap<K, V> extends Map<K, V> {
  version = 0;
  override set(k: K, v: V): this { this.version++; return super.set(k, v); }
  override delete(k: K): boolean { this.version++; return super.delete(k); }
  override clear(): void { this.version++; super.clear(); }
}
