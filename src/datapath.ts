// The Datapath owns one shared WebAssembly.Memory and the wasmap module instance over it,
// hands out page-aligned spans of that memory to regions and switches (lifecycle work, never
// per packet), and gives TypeScript typed views for tools and tests.
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { WasmapError } from './errors.js';
import { findBuildFile } from './paths.js';

type Fn<A extends unknown[] = number[], R = number> = (...args: A) => R;
/** The module's functions, as index.ts exports them. Pointers and counts are plain numbers. */
export interface WasmapFunctions {
  heap_base: Fn<[]>;
  region_nbufs: Fn; region_span_size: Fn; region_priv_size: Fn; region_init: Fn;
  region_kring: Fn; region_set_name: Fn<number[], void>; region_repair: Fn;
  pool_alloc: Fn; pool_free: Fn; pool_free_count: Fn;
  ring_space: Fn; sync_prologue: Fn; kring_reset: Fn<number[], void>;
  pipe_link: Fn; pipe_txsync: Fn; rxsync: Fn;
  sw_priv_size: Fn<[]>; sw_init: Fn<number[], void>; sw_attach: Fn; sw_detach: Fn; sw_round: Fn; sw_configure: Fn; sw_set_hdr: Fn; sw_set_accept: Fn;
  mac_hash: Fn<[bigint]>;
  gen_size: Fn<[]>; gen_init: Fn; gen_tx: Fn; gen_rx: Fn;
  tpk_pull: Fn; tpk_push: Fn; tpk_unsent: Fn; tpk_scratch_size: Fn; tpk_big: Fn; tpk_copy_bytes: Fn; tpk_copy_setup: Fn<number[], void>; tpk_want: Fn; tpk_copies: Fn<number[], void>; xsk_init: Fn<number[], void>; xsk_pull: Fn; xsk_push: Fn; xsk_tx_pending: Fn; xsk_rx_pending: Fn; vnet_convert: Fn; vnet_convert_into: Fn; vnet_out_room: Fn; csum_bytes: Fn;
  pt_attach: Fn; pt_detach: Fn; pt_sleep: Fn; pt_wake: Fn<number[], void>; pt_take_kick: Fn;
  pt_app_sync: Fn; pt_app_want_kick: Fn; pt_app_awake: Fn<number[], void>;
  mt_init: Fn<number[], void>; mt_add: Fn<[number, bigint, bigint, bigint, number]>; mt_add_window: Fn<[number, bigint, bigint, bigint, number]>;
  mt_chunks: Fn<[number, bigint]>; mt_uva_chunk: Fn<[number, bigint], bigint>;
  vq_init: Fn<number[], void>; vq_setup: Fn<[number, number, number, bigint, bigint, bigint, number, number]>; vq_remap: Fn;
  vq_enable: Fn<number[], void>; vq_base: Fn; vq_error: Fn; vq_take_call: Fn; vq_want_kick: Fn; vq_pull: Fn; vq_push: Fn; vq_complete: Fn; vq_push_steer: Fn; steer_stopped_at: Fn; flow_hash: Fn;
  plan_size: Fn<[]>; traffic_run: Fn<number[], bigint>; pipe_run: Fn<number[], bigint>;
  [name: string]: unknown;
}

export const ERRORS: Record<number, [string, string]> = {
  [-1]: ['E_HEAD', 'head is outside [old head, tail]: advance head only over slots you own'],
  [-2]: ['E_CUR', 'cur is outside [head, tail]'],
  [-3]: ['E_BUF_IDX', 'a slot names a buffer that is reserved (0, 1) or beyond the region'],
  [-4]: ['E_BUF_LEN', 'a slot length is larger than the buffer size'],
  [-5]: ['E_FRAGS', 'a MOREFRAG chain is longer than 64 fragments (or than the ring)'],
  [-6]: ['E_BROKEN', 'the ring was broken by an earlier error; reset it before using it again'],
  [-7]: ['E_NOFIT', 'the region does not fit the memory span given'],
  [-8]: ['E_INVAL', 'invalid argument'],
  [-9]: ['E_XREGION', 'pipe ends must live in one memory region'],
};

/** Turn a negative datapath return code into a WasmapError; pass results >= 0 through. */
export function check(rc: number, what: string): number {
  if (rc >= 0) return rc;
  const [code, text] = ERRORS[rc] ?? [`E${rc}`, 'unknown datapath error'];
  throw new WasmapError(code, `${what}: ${text}`);
}

export interface DatapathOptions {
  /** Upper bound of the linear memory in 64 KiB pages (default 32768 = 2 GiB, reserved, not used). */
  maxPages?: number;
  /** Path of the module (default: build/wasmap.wasm). */
  wasmPath?: string;
  /** Run over an existing shared memory (a worker-thread guest of a switch) instead of a new
   *  one; then alloc() hands out only the given arena of it, which its owner reserved. */
  memory?: WebAssembly.Memory;
  arena?: { at: number; size: number };
}

interface Span { at: number; size: number }
const PAGE = 65536;

// The datapath must run as optimized code from its first packet: V8 would otherwise start
// it in its baseline compiler (Liftoff) and tier up only later, mid-benchmark.
setFlagsFromString('--no-liftoff');
const modules = new Map<string, WebAssembly.Module>();

export class Datapath {
  readonly memory: WebAssembly.Memory;
  readonly fn: WasmapFunctions;
  /** netmap/wasmap constants exported by the module (abi.ts), by name. */
  readonly abi: Readonly<Record<string, number>>;
  /** Per switch (its state's address): the host side of its forwarding function. */
  readonly fnHooks = new Map<number, (n: number, nports: number, now: number) => number>();
  private free: Span[] = [];
  private top: number;
  private readonly limit: number;
  private views: { buf: SharedArrayBuffer; u8: Uint8Array; dv: DataView } | null = null;
  /** This Datapath made its memory, so only its alloc() grows it (and drops the views). */
  private readonly owner: boolean;

  constructor(opts: DatapathOptions = {}) {
    const path = opts.wasmPath ?? findBuildFile('wasmap.wasm');
    if (!path) throw new WasmapError('NO_MODULE', 'build/wasmap.wasm not found: run `npm run build` first');
    const maxPages = opts.maxPages ?? 32768;
    if (opts.memory && !opts.arena) throw new WasmapError('EINVAL', 'a Datapath over an existing memory needs the arena it may allocate from');
    this.owner = !opts.memory;
    this.memory = opts.memory ?? new WebAssembly.Memory({ initial: 64, maximum: maxPages, shared: true });
    let module = modules.get(path);
    if (!module) { module = new WebAssembly.Module(readFileSync(path)); modules.set(path, module); }
    // switches with a forwarding function call out once per batch (src/fn/host.ts registers them)
    const hooks = this.fnHooks;
    const fnLookup = (sw: number, n: number, nports: number, now: number): number => {
      const h = hooks.get(sw);
      return h ? h(n, nports, now) : -1;
    };
    const instance = new WebAssembly.Instance(module, { env: { memory: this.memory }, wasmap: { fn_lookup: fnLookup } });
    const abi: Record<string, number> = {};
    const fns: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(instance.exports)) {
      if (value instanceof WebAssembly.Global) abi[name] = Number(value.value);
      else fns[name] = value;
    }
    this.abi = Object.freeze(abi);
    this.fn = fns as WasmapFunctions;
    this.top = opts.arena ? opts.arena.at : Math.ceil(this.fn.heap_base() / PAGE) * PAGE + PAGE; // a guard page above static data
    this.limit = opts.arena ? opts.arena.at + opts.arena.size : Infinity;
  }

  /** A zero-filled, `align`-aligned span of at least `bytes` bytes. Grows memory when needed.
   *  zero=false skips the fill, for spans about to be mapped over (touching them would commit
   *  pages the mapping then throws away: 256 MiB for a guest's RAM). */
  alloc(bytes: number, align = 64, zero = true): number {
    const size = Math.ceil(bytes / 64) * 64;
    for (let i = 0; i < this.free.length; i++) {
      const s = this.free[i];
      const at = Math.ceil(s.at / align) * align;
      if (at + size <= s.at + s.size) {
        const rest: Span[] = [];
        if (at > s.at) rest.push({ at: s.at, size: at - s.at });
        if (at + size < s.at + s.size) rest.push({ at: at + size, size: s.at + s.size - at - size });
        this.free.splice(i, 1, ...rest);
        if (zero) this.u8.fill(0, at, at + size);
        return at;
      }
    }
    const at = Math.ceil(this.top / align) * align;
    const end = at + size;
    if (end > this.limit) throw new WasmapError('ENOMEM', `the arena of this Datapath is full (${bytes} more bytes do not fit)`);
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      try {
        this.memory.grow(pages);
        this.views = null;
      } catch {
        throw new WasmapError('ENOMEM', `linear memory is full: ${bytes} more bytes do not fit under the ${have / PAGE}-page memory's maximum; create the Datapath with a larger maxPages or free ports`);
      }
    }
    if (at > this.top) this.free.push({ at: this.top, size: at - this.top });
    this.top = end;
    if (zero) this.u8.fill(0, at, end);
    return at;
  }

  /** Give a span back (the size must be the one asked for). Neighbouring free spans merge. */
  release(at: number, bytes: number): void {
    const size = Math.ceil(bytes / 64) * 64;
    this.free.push({ at, size });
    this.free.sort((a, b) => a.at - b.at);
    const merged: Span[] = [];
    for (const s of this.free) {
      const last = merged[merged.length - 1];
      if (last && last.at + last.size === s.at) last.size += s.size;
      else merged.push({ ...s });
    }
    const last = merged[merged.length - 1];
    if (last && last.at + last.size === this.top) { this.top = last.at; merged.pop(); }
    this.free = merged;
  }

  /** Bytes handed out and not released (for leak checks). */
  get allocated(): number {
    return this.top - Math.ceil(this.fn.heap_base() / PAGE) * PAGE - PAGE - this.free.reduce((n, s) => n + s.size, 0);
  }

  private refresh() {
    // a shared memory's .buffer getter makes a new frozen object on every call (seen in perf
    // on every TAP pull and push): an owner keeps its views until it grows the memory itself
    if (this.owner && this.views) return this.views;
    const buf = this.memory.buffer as unknown as SharedArrayBuffer;
    if (!this.views || this.views.buf !== buf || this.views.u8.byteLength !== buf.byteLength) {
      this.views = { buf, u8: new Uint8Array(buf), dv: new DataView(buf) };
    }
    return this.views;
  }
  /** A byte view over the whole memory, re-made after the memory grows. */
  get u8(): Uint8Array { return this.refresh().u8; }
  get dv(): DataView { return this.refresh().dv; }
  u32(at: number): number { return this.dv.getUint32(at, true); }
  setU32(at: number, v: number): void { this.dv.setUint32(at, v, true); }
  u16(at: number): number { return this.dv.getUint16(at, true); }
  setU16(at: number, v: number): void { this.dv.setUint16(at, v, true); }
  u64(at: number): bigint { return this.dv.getBigUint64(at, true); }
}
