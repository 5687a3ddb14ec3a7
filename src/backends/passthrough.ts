// The switch's half of a passthrough port (ptnetmap's host side): a switch port whose rings a
// guest drives through a CSB. For a guest process the port's region and its CSB page each get
// their own sealed memfd, so the guest maps exactly those two and nothing else; for a guest
// worker thread everything stays in the shared memory and it is woken with Atomics.notify.
// The switch kicks a guest only when the guest asked for it, and vice versa (assembly/csb.ts).
import { Datapath, check } from '../datapath.js';
import { WasmapError } from '../errors.js';
import type { NativeHost } from '../host.js';
import { Region } from '../port.js';
import { Switch, SwitchPort, PortStats } from '../switch.js';
import { AttachContext, Backend, Fields, SleepPass, Verdict, stage } from './backend.js';

export type PtMode = 'process' | 'worker';

/** What a guest process needs (the fds travel by SCM_RIGHTS in this order). */
export interface PtProcessInfo {
  name: string; index: number; slots: number; bufSize: number; nbufs: number; span: number; csbPage: number; hdrLen: number;
  fds: { region: number; csb: number; kickSwitch: number; kickGuest: number };
}
/** What a guest worker thread needs (post it with the memory). */
export interface PtWorkerInfo {
  name: string; index: number; slots: number; bufSize: number; nbufs: number;
  memory: WebAssembly.Memory; base: number; span: number; csb: number; arena: { at: number; size: number }; kickSwitch: number;
}

const ARENA = 1 << 16; // a worker guest's own allocations (its ring records, a generator)

export class PtPort implements Backend {
  readonly kind = 'passthrough';
  readonly down = null; // a guest that breaks its rings is shown in `broken` (ringErrors)
  readonly reclaim = true; // the port's rings are the guest's: they go with it
  readonly region: Region; readonly port: SwitchPort;
  readonly csb: number; readonly csbFd: number = -1;
  readonly kickSwitch: number; readonly kickGuest: number = -1;
  private readonly shadow: number; private readonly arena: number = 0;
  /** Kicks the guest sent the switch (counted when the switch drains its eventfd). */
  kicksIn = 0;
  readonly openedAt = Date.now();
  private closed = false;

  constructor(readonly host: NativeHost, readonly dp: Datapath, readonly sw: Switch, readonly name: string,
              readonly mode: PtMode, o: { slots?: number; bufSize?: number; guestPid?: number; kickGuest?: boolean } = {}) {
    const page = dp.abi.CSB_PAGE;
    const undo: (() => void)[] = [];
    try {
      this.region = new Region(dp, { slots: o.slots ?? 1024, bufSize: o.bufSize, name: `${sw.name}:${name}`, shareWith: mode === 'process' ? host : undefined });
      undo.push(() => this.region.close());
      this.csb = dp.alloc(page, page);
      undo.push(() => dp.release(this.csb, page));
      if (mode === 'process') {
        this.csbFd = host.memfdCreate(`wasmap-csb:${sw.name}:${name}`, page, true);
        undo.push(() => host.closeFd(this.csbFd));
        host.mapFd(dp.u8, this.csb, page, this.csbFd);
        undo.push(() => host.unmap(dp.u8, this.csb, page));
        this.kickGuest = host.eventfdCreate();
        undo.push(() => host.closeFd(this.kickGuest));
      } else {
        this.arena = dp.alloc(ARENA, 65536);
        undo.push(() => dp.release(this.arena, ARENA));
        // a worker guest that sleeps in poll(2) beside other fds (a TAP I/O thread) is kicked
        // through an eventfd too, not only on the CSB's kick word
        if (o.kickGuest) { this.kickGuest = host.eventfdCreate(); undo.push(() => host.closeFd(this.kickGuest)); }
      }
      this.kickSwitch = host.eventfdCreate();
      undo.push(() => host.closeFd(this.kickSwitch));
      this.shadow = dp.alloc(128, 64);
      undo.push(() => dp.release(this.shadow, 128));
      this.port = sw.attach(name, { region: this.region });
      undo.push(() => sw.detach(name));
      check(dp.fn.pt_attach(sw.sw, this.port.index, this.csb, this.shadow), 'pt_attach');
    } catch (e) {
      for (const f of undo.reverse()) { try { f(); } catch { /* keep the first error */ } }
      throw e;
    }
  }

  processInfo(): PtProcessInfo {
    if (this.mode !== 'process') throw new WasmapError('EINVAL', `${this.sw.name}:${this.name} was opened for a worker thread`);
    return { ...this.common(), span: this.region.span, csbPage: this.dp.abi.CSB_PAGE, hdrLen: 0,
      fds: { region: this.region.fd, csb: this.csbFd, kickSwitch: this.kickSwitch, kickGuest: this.kickGuest } };
  }
  workerInfo(): PtWorkerInfo {
    if (this.mode !== 'worker') throw new WasmapError('EINVAL', `${this.sw.name}:${this.name} was opened for a process`);
    return { ...this.common(), memory: this.dp.memory, base: this.region.base, span: this.region.span, csb: this.csb,
      arena: { at: this.arena, size: ARENA }, kickSwitch: this.kickSwitch };
  }
  private common() {
    return { name: `${this.sw.name}:${this.name}`, index: this.port.index, slots: this.region.slots, bufSize: this.region.bufSize, nbufs: this.region.nbufs };
  }

  /** The guest moves its own frames through its rings: nothing to pull. */
  pull(): number { return 0; }

  /** After the rounds: kick the guest when a round marked it (it asked and got news); a worker
   *  guest was already notified from wasm, a process guest sleeps on its eventfd. */
  push(): number {
    if (this.dp.u32(this.sw.sw + this.dp.abi.SW_KICKS_DUE) !== 0 && this.dp.fn.pt_take_kick(this.sw.sw, this.port.index)) stage('kick', () => this.kick());
    return 0;
  }

  /** Ask the switch's guests for a kick (once per switch), then look once more: a guest that
   *  wrote just before the flag went up has not kicked, and its work must not wait. */
  sleepFds(fds: number[], pass: SleepPass): Verdict {
    if (pass.once(`pt_sleep ${this.sw.sw}`, () => this.dp.fn.pt_sleep(this.sw.sw))) return 'work';
    fds.push(this.kickSwitch);
    return 'sleep';
  }

  /** Running again: guests need not kick (once per switch); take this guest's kicks. */
  woke(_fds: number[], _revents: number[], pass: SleepPass): void {
    pass.once(`pt_wake ${this.sw.sw}`, () => this.dp.fn.pt_wake(this.sw.sw));
    stage('kick drain', () => this.drainKicks());
  }

  info(): Fields { return { mode: this.mode, broken: this.errors.tx || this.errors.rx ? this.errors : null }; }
  stats(): Fields { return { mode: this.mode, kicksIn: this.kicksIn, kicksOut: this.kicksOut, ringErrors: this.errors }; }

  /** Called after a round that marked this guest for a kick (a worker was notified in wasm). */
  kick(): void { if (this.kickGuest >= 0) this.host.eventfdSignal(this.kickGuest); }

  /** Consume the guest's kicks (after the switch slept). */
  drainKicks(): void { this.kicksIn += this.host.eventfdDrain(this.kickSwitch); }

  get kicksOut(): number {
    const a = this.dp.abi;
    return Number(this.dp.u64(this.dp.u32(this.sw.sw + a.SW_PORTS) + a.PORT_SIZE * this.port.index + a.P_KICKS_OUT));
  }
  /** The ring errors the guest caused (0 = healthy). */
  get errors(): { tx: number; rx: number } { return { tx: this.port.tx.error, rx: this.port.rx.error }; }

  /** The guest is gone: detach the port (through `detach`, the runner's) and free its region
   *  and CSB. A guest still holding the old memfds maps pages nobody else uses any more; a new
   *  guest gets a new port. Returns the reply's fields: the reason, last counters, kicks, the
   *  region's audit. */
  close(reason = 'closed', detach: () => PortStats = () => this.sw.detach(this.name)): { stats?: PortStats } & Fields {
    if (this.closed) return { reason };
    this.closed = true;
    const kicksOut = this.kicksOut;
    const stats = detach();
    const problems = this.region.audit();
    this.region.close();
    const page = this.dp.abi.CSB_PAGE;
    if (this.mode === 'process') { this.host.unmap(this.dp.u8, this.csb, page); this.host.closeFd(this.csbFd); this.host.closeFd(this.kickGuest); }
    else { this.dp.release(this.arena, ARENA); if (this.kickGuest >= 0) this.host.closeFd(this.kickGuest); }
    this.dp.release(this.csb, page);
    this.dp.release(this.shadow, 128);
    this.host.closeFd(this.kickSwitch);
    return { reason, stats, kicksIn: this.kicksIn, kicksOut, audit: problems };
  }
}

/** A new port of switch `c.sw` named `c.spec` for a passthrough guest (the pt-open verb). */
export function openPassthrough(c: AttachContext, mode: PtMode, o: { slots?: number; bufSize?: number } = {}): PtPort {
  const name = c.spec.replace(new RegExp(`^${c.sw.name}:`), '');
  const full = `${c.sw.name}:${name}`;
  if (c.attached.get(full) instanceof PtPort) throw new WasmapError('EBUSY', `${full} already has a passthrough guest; one guest per port`);
  if (c.sw.port(name)) throw new WasmapError('EBUSY', `${full} is already attached as an ordinary port; pick a new name for the guest's port`);
  for (const [k, v] of [['slots', o.slots], ['bufSize', o.bufSize]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v <= 0)) throw new WasmapError('EINVAL', `${k} must be a positive whole number, not ${String(v)}`);
  }
  return new PtPort(c.host, c.dp, c.sw, name, mode, o);
}
