// The host side of a switch's forwarding function (docs/forwarding-functions.md): load a user
// module (checked and fuel-instrumented by instrument.ts), give it its configuration, and run
// it once per batch for the datapath, which calls out through the `wasmap.fn_lookup` import.
// The module lives in its own instance with its own memory; per batch the switch's records are
// copied into that memory and the answers copied back, so it never holds a reference into the
// switch. A trap, a negative return or a bad answer disables it; the datapath falls back at
// once (assembly/switch/fn.ts) and the reason stays readable here.
import { Datapath } from '../datapath.js';
import { loadHost, NativeHost } from '../host.js';
import { WasmapError } from '../errors.js';
import { prepareFnModule, fnFuelFor, FnReport } from './instrument.js';
import { createHash } from 'node:crypto';
import { Script, createContext } from 'node:vm';

/** Fuel for the configuration calls (wasmap_fn_config_buf, wasmap_fn_config): the router with
 *  10 240 prefixes takes 140 M units (55 ms where measured). */
export const FN_CONFIG_FUEL = 300_000_000n;
/** Wall-clock limit on the module's setup calls together — instantiation (its start function),
 *  version, batch and the configuration calls: a call still running at the deadline is
 *  interrupted (V8 terminates it) and the module refused. Fuel bounds instructions; this bounds
 *  a function that makes each instruction slow (a load that misses every cache and the TLB
 *  costs ~100 instructions' time). */
export const FN_SETUP_MS = 1000;
/** FN_SLOW_STRIKES lookup calls in a row that each take longer than FN_SLOW_MS (wall clock)
 *  disable the function, as a trap would: fuel (fnFuelFor) stops computing within ~7 ms, but a
 *  function built to miss the caches and the TLB on every load can make a full batch's fuel last
 *  a few hundred ms; it does so at most this many times. In a row, so that one call that was
 *  merely descheduled (a busy host) does not disable a good function. */
export const FN_SLOW_MS = 100;
export const FN_SLOW_STRIKES = 3;

// Runs f() with a wall-clock limit: node:vm's timeout interrupts running WebAssembly too (the
// watchdog terminates execution; V8 checks for it at loop headers and calls). A setup call only:
// arming the watchdog costs ~0.4 ms, far too much per batch.
const timerCtx = createContext({ f: null as unknown });
const timerScript = new Script('f()');
function withTimeout<T>(ms: number, f: () => T): T {
  timerCtx.f = f;
  try { return timerScript.runInContext(timerCtx, { timeout: ms }) as T; } finally { timerCtx.f = null; }
}
const timedOut = (e: unknown): boolean => (e as { code?: string })?.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT';

export type Fallback = 'drop' | 'learning';
export interface FnOptions {
  /** Configuration given to wasmap_fn_config (a JSON value, or JSON text). */
  config?: unknown;
  /** What the switch does when the function fails (default 'drop'). */
  fallback?: Fallback;
  /** A name for stats (default: 'function'). */
  name?: string;
  /** Fuel for each configuration call (default FN_CONFIG_FUEL). */
  configFuel?: bigint;
  /** Wall-clock limits (ms): each setup call (default FN_SETUP_MS) and a lookup call (FN_SLOW_MS). */
  setupMs?: number;
  slowMs?: number;
}

interface FnExports {
  memory: WebAssembly.Memory;
  wasmap_fuel: WebAssembly.Global;
  wasmap_fn_version(): number;
  wasmap_fn_batch(): number;
  wasmap_fn_lookup(n: number, nports: number, now: number): number;
  wasmap_fn_config_buf?(len: number): number;
  wasmap_fn_config?(ptr: number, len: number): number;
  wasmap_fn_counters?(): number;
}

const RECORDS = 1024 * 128;
const FAULTS: Record<number, string> = { 1: 'trap', 2: 'returned < 0', 3: 'bad decision', 4: 'bad rewrite', 5: 'bad flags' };

/** A module checked, instrumented and compiled: cheap to instantiate, safe to post to a worker. */
export interface PreparedFn { module: WebAssembly.Module; report: FnReport; sha256: string; bytes: number }

/** Validate, instrument and compile a forwarding-function module. Throws EBADFN with the reason. */
export function compileFn(bytes: Uint8Array): PreparedFn {
  const prepared = prepareFnModule(bytes);
  let module: WebAssembly.Module;
  try { module = new WebAssembly.Module(prepared.bytes); } catch (e) {
    throw new WasmapError('EBADFN', `the module does not compile: ${(e as Error).message}`);
  }
  return { module, report: prepared.report, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Why a call failed, in words: out of fuel is told apart from other traps by the counter. */
function trapReason(e: unknown, fuel: WebAssembly.Global): string {
  const msg = e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e);
  return (fuel.value as bigint) < 0n ? `ran out of fuel (an endless loop?) — ${msg}` : msg;
}

export interface FnStatus {
  kind: 'function'; name: string; sha256: string; state: 'active' | 'disabled'; fallback: Fallback;
  loadedAt: string; zeroCopy: boolean; calls: number; frames: number; faultDrops: number; reason: string | null; disabledAt: string | null;
  counters: Record<string, number>;
}

/** A forwarding function installed on one switch (at most one per switch). */
export class FnInstance {
  private readonly ex: FnExports;
  private readonly batch: number;
  private view: Uint8Array;
  private readonly rec: number;
  private shared: NativeHost | null = null; // set while the record area is one memfd seen from both sides
  reason: string | null = null;
  disabledAt: Date | null = null;
  readonly loadedAt = new Date();
  private counterCache: Record<string, number> = {};
  private deadline = 0; // of the setup calls (performance.now())
  private strikes = 0; // lookup calls in a row over the slow limit

  /** Instantiate `fn` for the switch at `sw` (its state address); nothing is switched yet. */
  constructor(private readonly dp: Datapath, private readonly sw: number, private readonly fn: PreparedFn, readonly opts: FnOptions = {}) {
    let inst: WebAssembly.Instance;
    const abort = () => { throw new WasmapError('EFNABORT', 'the function called abort (a failed assertion)'); };
    const setupMs = opts.setupMs ?? FN_SETUP_MS;
    this.deadline = performance.now() + setupMs;

    try { inst = withTimeout(setupMs, () => new WebAssembly.Instance(fn.module, { env: { abort } })); } catch (e) {
      throw new WasmapError('EBADFN', `the module failed to start: ${timedOut(e) ? `its start function ran over the ${setupMs} ms setup limit (wall clock) and was stopped` : (e as Error).message}`);
    }
    this.ex = inst.exports as unknown as FnExports;
    const v = this.guard('wasmap_fn_version', () => this.ex.wasmap_fn_version());
    if (v !== 1) throw new WasmapError('EBADFN', `wasmap_fn_version() returned ${v}: this switch speaks ABI version 1`);
    this.batch = this.guard('wasmap_fn_batch', () => this.ex.wasmap_fn_batch()) >>> 0;
    this.view = new Uint8Array(this.ex.memory.buffer);
    if (this.batch + RECORDS > this.view.byteLength) {
      throw new WasmapError('EBADFN', `wasmap_fn_batch() = ${this.batch}: the 1024 records (128 KiB) from there do not fit in the module's ${this.view.byteLength}-byte memory`);
    }
    this.prefault();
    if (opts.config !== undefined) { this.configure(opts.config); this.prefault(); }
    this.rec = dp.alloc(RECORDS, 65536);
  }

  /** Touch every page of the module's memory now, at setup: the first touch of a page costs a
   *  page fault (~16 µs where measured, ~70 ms for 16 MiB), which fuel cannot see; done here,
   *  no lookup pays it (pages grown later are charged by memory.grow's fuel). */
  private prefault(): void {
    const u = new Uint8Array(this.ex.memory.buffer);
    for (let i = 0; i < u.length; i += 4096) u[i] = u[i]; // eslint-disable-line no-self-assign
    this.view = u;
  }

  /** Run a call of the module outside the datapath (setup): traps become EBADFN. */
  private guard(what: string, f: () => number, fuel: bigint = fnFuelFor(1024)): number {
    this.ex.wasmap_fuel.value = fuel;
    const left = Math.max(1, Math.ceil(this.deadline - performance.now()));
    try { return withTimeout(left, f); } catch (e) {
      throw new WasmapError('EBADFN', `${what} failed: ${timedOut(e) ? `ran over the ${this.opts.setupMs ?? FN_SETUP_MS} ms setup limit (wall clock) and was stopped` : trapReason(e, this.ex.wasmap_fuel)}`);
    }
  }

  private configure(config: unknown): void {
    const { wasmap_fn_config_buf: buf, wasmap_fn_config: apply } = this.ex;
    if (!buf || !apply) throw new WasmapError('EINVAL', 'this function takes no configuration (it exports no wasmap_fn_config_buf/wasmap_fn_config)');
    const text = typeof config === 'string' ? config : JSON.stringify(config);
    if (typeof config === 'string') {
      try { JSON.parse(text); } catch (e) { throw new WasmapError('EINVAL', `the configuration is not JSON: ${(e as Error).message}`); }
    }
    const bytes = new TextEncoder().encode(text);
    const fuel = this.opts.configFuel ?? FN_CONFIG_FUEL;
    const at = this.guard('wasmap_fn_config_buf', () => buf(bytes.length), fuel);
    const mem = new Uint8Array(this.ex.memory.buffer);
    if (at < 0 || at + bytes.length > mem.byteLength) throw new WasmapError('EBADFN', `wasmap_fn_config_buf(${bytes.length}) returned ${at}, not room inside the module's memory`);
    mem.set(bytes, at);
    const rc = this.guard('wasmap_fn_config', () => apply(at, bytes.length), fuel);
    if (rc < 0) throw new WasmapError('EINVAL', `the function refused its configuration (wasmap_fn_config returned ${rc}); see the function's documentation for the format`);
  }

  /** Zero copy: when the module's record area is page-aligned (the examples align it to 64 KiB)
   *  and the native host is here, one memfd is mapped under both the switch's record area and
   *  the module's, so a batch needs no copying. The module still sees only those 128 KiB of
   *  records. Any doubt (no host, unaligned, a map that fails or does not show the same bytes)
   *  means copying, which is always correct. */
  private share(): void {
    const host = loadHost();
    if (!host) return;
    const page = host.pageSize();
    if (this.batch % page !== 0 || this.rec % page !== 0) return;
    let fd = -1, mapped = 0;
    try {
      fd = host.memfdCreate('wasmap-fn-records', RECORDS);
      host.mapFd(this.dp.u8, this.rec, RECORDS, fd); mapped = 1;
      host.mapFd(this.view, this.batch, RECORDS, fd); mapped = 2;
      this.shared = host;
      if (!this.sameBytes()) this.unshare();
    } catch {
      if (mapped >= 1) host.unmap(this.dp.u8, this.rec, RECORDS);
      if (mapped >= 2) host.unmap(this.view, this.batch, RECORDS);
      this.shared = null;
    } finally {
      if (fd >= 0) host.closeFd(fd); // the two mappings keep the pages
    }
  }

  // Both sides see one set of pages: a byte written on one side shows on the other.
  private sameBytes(): boolean {
    const sw = this.dp.u8, keep = sw[this.rec];
    let same = true;
    for (const v of [0x5a, 0xa5]) { sw[this.rec] = v; if (this.view[this.batch] !== v) same = false; }
    sw[this.rec] = keep;
    return same;
  }

  private unshare(): void {
    const host = this.shared;
    if (!host) return;
    this.shared = null;
    host.unmap(this.dp.u8, this.rec, RECORDS);
    if (this.view.buffer === this.ex.memory.buffer) host.unmap(this.view, this.batch, RECORDS);
  }

  /** Whether batches reach the module without copying (see share()). */
  get zeroCopy(): boolean { return this.shared !== null; }

  /** Switch the datapath over to this function (between two rounds: the caller's thread runs them). */
  activate(): void {
    const a = this.dp.abi;
    this.share();
    this.dp.fnHooks.set(this.sw, (n, nports, now) => this.lookup(n, nports, now));
    this.dp.setU32(this.sw + a.SW_FN_REC, this.rec);
    this.dp.setU32(this.sw + a.SW_FN_FALLBACK, this.opts.fallback === 'learning' ? a.LK_LEARN : a.LK_DROP);
    this.dp.setU32(this.sw + a.SW_FN_FAULT, 0);
    for (const off of [a.SW_FN_CALLS, a.SW_FN_FRAMES, a.SW_FN_FAULT_DROPS]) this.dp.dv.setBigUint64(this.sw + off, 0n, true);
    this.dp.setU32(this.sw + a.SW_LOOKUP, a.LK_FN);
  }

  /** Take it out (the switch goes to `to`); its record area is freed. status() still answers
   *  afterwards (the switch's SW_FN_* words stay until the next function is activated). */
  deactivate(to: 'learning' | 'drop'): void {
    const a = this.dp.abi;
    this.dp.setU32(this.sw + a.SW_LOOKUP, to === 'learning' ? a.LK_LEARN : a.LK_DROP);
    this.dp.setU32(this.sw + a.SW_FN_REC, 0);
    this.dp.fnHooks.delete(this.sw);
    this.unshare();
    this.dp.release(this.rec, RECORDS);
  }

  // The datapath's call, once per batch: records in, run with fuel, answers out.
  private lookup(n: number, nports: number, now: number): number {
    const len = n * 128;
    if (!this.shared) {
      if (this.view.buffer !== this.ex.memory.buffer) this.view = new Uint8Array(this.ex.memory.buffer); // it grew
      this.view.set(this.dp.u8.subarray(this.rec, this.rec + len), this.batch);
    }
    const fuel = this.ex.wasmap_fuel;
    fuel.value = fnFuelFor(n);
    let rc: number;
    const t0 = performance.now();
    try { rc = this.ex.wasmap_fn_lookup(n, nports, now); } catch (e) {
      return this.fail(this.dp.abi.FNE_TRAP, trapReason(e, fuel));
    }
    const took = performance.now() - t0, slow = this.opts.slowMs ?? FN_SLOW_MS;
    this.strikes = took > slow ? this.strikes + 1 : 0;
    if (this.strikes >= FN_SLOW_STRIKES) {
      return this.fail(this.dp.abi.FNE_TRAP, `too slow: ${this.strikes} calls in a row took over ${slow} ms (wall clock), the last ${took.toFixed(1)} ms for a batch of ${n}`);
    }
    if (rc < 0) return this.fail(this.dp.abi.FNE_RC, `wasmap_fn_lookup returned ${rc} for a batch of ${n}`);
    if (this.view.buffer !== this.ex.memory.buffer) {
      // its memory grew during the call: V8 grows in place, but if the pages were ever moved
      // the answers are in the moved copy — take them from there and copy from now on
      this.view = new Uint8Array(this.ex.memory.buffer);
      if (this.shared && !this.sameBytes()) { this.shared.unmap(this.dp.u8, this.rec, RECORDS); this.shared = null; }
    }
    if (!this.shared) this.dp.u8.set(this.view.subarray(this.batch, this.batch + len), this.rec);
    return 0;
  }

  private fail(code: number, reason: string): number {
    const a = this.dp.abi;
    this.reason = `${FAULTS[code]}: ${reason}`;
    this.disabledAt = new Date();
    this.dp.setU32(this.sw + a.SW_FN_FAULT, code);
    this.dp.setU32(this.sw + a.SW_LOOKUP, this.dp.u32(this.sw + a.SW_FN_FALLBACK));
    return -1;
  }

  /** The function's state; a fault the datapath found (a bad answer) is put into words here. */
  status(): FnStatus {
    const a = this.dp.abi;
    const code = this.dp.dv.getInt32(this.sw + a.SW_FN_FAULT, true);
    if (code !== 0 && !this.reason) {
      const at = this.dp.u32(this.sw + a.SW_FN_FAULT_AT), k = at & 0xffff, v = at >>> 16;
      this.reason = code === a.FNE_DECISION ? `bad decision: record ${k} said port ${v}, but only ports below the nports it was given exist (0..253 ports, 254 flood, 255 drop)`
        : code === a.FNE_REWRITE ? `bad rewrite: record ${k} asked for a new header of ${v} bytes — at most 96, and the frame must stay 14..65535 bytes long`
        : code === a.FNE_FLAGS ? `bad flags: record ${k} set flags 0x${v.toString(16)} — only REWRITE (0x1) exists`
        : `${FAULTS[code] ?? `fault ${code}`}`;
      this.disabledAt = new Date();
    }
    if (!this.reason) this.counterCache = this.readCounters();
    const c = (off: number) => Number(this.dp.u64(this.sw + off));
    return {
      kind: 'function', name: this.opts.name ?? 'function', sha256: this.fn.sha256, state: this.reason ? 'disabled' : 'active',
      fallback: this.opts.fallback ?? 'drop', loadedAt: this.loadedAt.toISOString(), zeroCopy: this.zeroCopy, calls: c(a.SW_FN_CALLS), frames: c(a.SW_FN_FRAMES),
      faultDrops: c(a.SW_FN_FAULT_DROPS), reason: this.reason, disabledAt: this.disabledAt?.toISOString() ?? null, counters: this.counterCache,
    };
  }

  // The module's own counters: u32 count, u32 0, then count × (24-byte name, u64 value).
  // Read defensively: a broken table gives an empty set, never an exception.
  private readCounters(): Record<string, number> {
    const f = this.ex.wasmap_fn_counters;
    if (!f) return {};
    let at: number;
    try { this.ex.wasmap_fuel.value = fnFuelFor(0); at = f() >>> 0; } catch { return {}; }
    const dv = new DataView(this.ex.memory.buffer);
    if (at + 8 > dv.byteLength) return {};
    const count = dv.getUint32(at, true), out: Record<string, number> = {};
    if (count > 256 || at + 8 + count * 32 > dv.byteLength) return {};
    for (let i = 0; i < count; i++) {
      const e = at + 8 + i * 32;
      let name = '';
      for (let j = 0; j < 24; j++) { const ch = dv.getUint8(e + j); if (!ch) break; name += ch >= 32 && ch < 127 ? String.fromCharCode(ch) : '?'; }
      out[name || `counter${i}`] = Number(dv.getBigUint64(e + 24, true));
    }
    return out;
  }
}
