// Load-time checks and fuel instrumentation of forwarding-function modules (docs/forwarding-
// functions.md). We decode the binary ourselves, without a dependency, because we must rewrite
// it: the ABI's imports and exports are checked, the memory's and tables' maxima are capped, and
// fuel is charged at every function entry and loop header (for the instructions up to the next
// one) and before every bulk operation (by its length), so that no call runs long. The input
// must be valid WebAssembly on its own (a module that is not could name the fuel counter we
// append). Anything we do not understand is refused with EBADFN; what we accept we rewrite only
// where needed, so a module WebAssembly accepts stays one it accepts, with unchanged function
// and global indices (the name section and element segments stay right; the fuel counter is
// the last global, which no valid code, export or initializer of the input can name).
import { WasmapError } from '../errors.js';

/** The loader's cap on a function's memory (16 MiB), the ABI's default. */
export const FN_MAX_PAGES = 256;
/** The largest module accepted (bytes of the .wasm file): it is checked, instrumented and
 *  compiled in the forwarding thread, between two rounds, so its size bounds that pause. */
export const FN_MAX_BYTES = 1 << 20;
/** The largest code section accepted: V8 compiles each function on its first call (lazily), in
 *  the forwarding thread, inside a lookup, and runs it unoptimized at first: the first round
 *  of a module costs ~0.3-1 ms per KiB of code where measured (the more on a busy host), so
 *  32 KiB (the examples have 0.1-6 KiB) keeps that one-time pause to ~10-30 ms. */
export const FN_MAX_CODE = 32 << 10;
/** At most this many tables, of at most FN_MAX_TABLE entries each (the maximum is capped). */
export const FN_MAX_TABLES = 4;
export const FN_MAX_TABLE = 65536;

/** Fuel for one batch of `nRecords` records. A unit is one instruction executed (a memory
 *  access FN_MEM_WEIGHT), bulk operations by length (see scan()). The examples spend 35-730
 *  units per record; 5 000 leaves room for a linear scan of a small table, and the 100 000 base
 *  for per-batch work such as an aging sweep. A unit of computing code costs 0.15-2 ns where
 *  measured, so a runaway function is stopped within ~7 ms even on a full batch of 1024: the
 *  switch falls back within the 10 ms the design promises. (Loads built to miss every cache
 *  cost far more per unit: host.ts bounds those by the wall clock.) */
export function fnFuelFor(nRecords: number): bigint {
  if (!Number.isSafeInteger(nRecords) || nRecords < 0) throw new WasmapError('EINVAL', `fnFuelFor: record count ${nRecords} must be a non-negative integer`);
  return 100_000n + 5_000n * BigInt(nRecords);
}

/** The initial value of `wasmap_fuel`: a start function (AssemblyScript emits one for top-level
 *  code) runs during instantiation, before the host can set any fuel; it gets one full batch. */
export const FN_START_FUEL = fnFuelFor(1024);

export interface FnReport { functions: number; loops: number; bulkOps: number; memoryPages: number; maxPages: number; exports: string[] }

const bad = (msg: string): never => { throw new WasmapError('EBADFN', msg); };

const VALTYPE: Record<number, string> = { 0x7f: 'i32', 0x7e: 'i64', 0x7d: 'f32', 0x7c: 'f64', 0x7b: 'v128', 0x70: 'funcref', 0x6f: 'externref' };
const SECTION = ['custom', 'type', 'import', 'function', 'table', 'memory', 'global', 'export', 'start', 'element', 'code', 'data', 'data count', 'tag'];
// The order the spec requires (the tag section, from exception handling, sits before globals).
const RANK: Record<number, number> = { 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13 };
const KIND = ['function', 'table', 'memory', 'global', 'tag'];

const ABORT = '(i32, i32, i32, i32) -> ()';
const REQUIRED: [string, string][] = [['wasmap_fn_version', '() -> i32'], ['wasmap_fn_batch', '() -> i32'], ['wasmap_fn_lookup', '(i32, i32, i32) -> i32']];
const OPTIONAL: [string, string][] = [['wasmap_fn_config_buf', '(i32) -> i32'], ['wasmap_fn_config', '(i32, i32) -> i32'], ['wasmap_fn_counters', '() -> i32']];
const AS_HINT = 'compile AssemblyScript with --runtime stub --use abort=, without --importMemory and without the WASI shim';
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A bounds-checked cursor: every read either advances or throws EBADFN, so no input loops. */
class Reader {
  where = 'the module header';
  constructor(readonly b: Uint8Array, public p: number, public end: number) {}
  private short(): never {
    return bad(`truncated or malformed WebAssembly module: ${this.where} runs past its end (byte ${this.end} of ${this.b.length}); was the file cut short?`);
  }
  u8(): number { if (this.p >= this.end) this.short(); return this.b[this.p++]; }
  skip(n: number): void { if (n > this.end - this.p) this.short(); this.p += n; }
  /** LEB128 of at most `max` bytes; the value as a double (exact for 33 bits, enough to skip i64s). */
  leb(max: number, signed: boolean): number {
    let v = 0, mul = 1, b: number;
    for (let i = 0; ; i++, mul *= 128) {
      if (i === max) bad(`malformed LEB128 number in ${this.where} at byte ${this.p}`);
      b = this.u8(); v += (b & 0x7f) * mul;
      if (b < 0x80) break;
    }
    return signed && b & 0x40 ? v - mul * 128 : v;
  }
  u32(): number { const v = this.leb(5, false); if (v > 0xffffffff) bad(`malformed u32 in ${this.where} at byte ${this.p}`); return v; }
  /** A vector length, sanity-checked against the bytes left (every element takes at least one). */
  count(): number { const n = this.u32(); if (n > this.end - this.p) this.short(); return n; }
  name(): string {
    const n = this.count(), at = this.p; this.skip(n);
    try { return utf8.decode(this.b.subarray(at, at + n)); } catch { return bad(`a name in ${this.where} is not valid UTF-8 (byte ${at})`); }
  }
  valtype(): string { const t = this.u8(); return VALTYPE[t] ?? bad(`value type 0x${t.toString(16)} in ${this.where} is not supported (no GC or typed function references)`); }
  done(): void { if (this.p !== this.end) bad(`malformed WebAssembly module: ${this.where} has ${this.end - this.p} bytes left over`); }
}

function uleb(n: number): number[] {
  const out: number[] = [];
  do { let b = n % 128; n = Math.floor(n / 128); if (n) b |= 0x80; out.push(b); } while (n);
  return out;
}
function sleb(n: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const b = Number(n & 0x7fn); n >>= 7n;
    if ((n === 0n && !(b & 0x40)) || (n === -1n && b & 0x40)) { out.push(b); return out; }
    out.push(b | 0x80);
  }
}
const str = (s: string): number[] => { const b = new TextEncoder().encode(s); return [...uleb(b.length), ...b]; };

function sig(r: Reader): string {
  const vec = (): string[] => Array.from({ length: r.count() }, () => r.valtype());
  const p = vec(), res = vec();
  return `(${p.join(', ')}) -> ${res.length === 1 ? res[0] : `(${res.join(', ')})`}`;
}

function memarg(r: Reader): void { if (r.u32() & 0x40) r.u32(); r.u32(); } // align (bit 6: a memory index follows), offset

function blockType(r: Reader): void {
  const t = r.leb(5, true); // s33: 0x40 empty, a value type, or a type index (>= 0)
  if (t < 0 && t !== -0x40 && !VALTYPE[t + 0x80]) bad(`block type 0x${(t + 0x80).toString(16)} in ${r.where} is not supported`);
}

// Immediates of 0xFC ops 0..17: how many u32s (saturating truncations, bulk memory, table ops).
const FC_IMM = [0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 1, 2, 1, 2, 1, 1, 1];

/** A charge point: where a fuel check goes in a body, and what it charges (see scan()). */
interface Check { at: number; weight: number }
/** A bulk operation: where (its opcode) and how its length operand converts to fuel units. */
interface Bulk { at: number; mul: number; shift: number }
interface Scan { checks: Check[]; bulk: Bulk[]; fuelRefs: number; maxGlobal: number }

/** Fuel units an instruction costs: 1, and FN_MEM_WEIGHT for a memory access (a load or store
 *  that misses the caches costs several plain instructions). */
export const FN_MEM_WEIGHT = 4;
const W_MEM = FN_MEM_WEIGHT;
/** Bulk operations are charged by their length operand (the value on top of the stack) before
 *  they run: memory.fill/copy/init one unit per 2^FN_BULK_SHIFT bytes (memory.fill ~0.08 ns a
 *  byte, memory.copy ~0.13 where measured), table.fill/copy/init/grow FN_TABLE_WEIGHT units per
 *  element, memory.grow FN_GROW_WEIGHT units per page. */
export const FN_BULK_SHIFT = 3;
/** Units per table element of table.fill/copy/init/grow: V8 does these element by element in
 *  its runtime, ~130 ns each where measured. */
export const FN_TABLE_WEIGHT = 128;
const BULK_MEM = { mul: 1, shift: FN_BULK_SHIFT }, BULK_TABLE = { mul: FN_TABLE_WEIGHT, shift: 0 };
/** Units per page of memory.grow: the new pages are touched for the first time inside the call,
 *  16 page faults per 64 KiB page at ~16 µs each where measured (a VM): ~256 µs, 2^18 units.
 *  (The pages a module has at setup are touched by the host then; see FnInstance.) */
export const FN_GROW_WEIGHT = 1 << 18;
const BULK_GROW = { mul: FN_GROW_WEIGHT, shift: 0 };
const BULK_FC: Record<number, { mul: number; shift: number }> = { 8: BULK_MEM, 10: BULK_MEM, 11: BULK_MEM, 12: BULK_TABLE, 14: BULK_TABLE, 15: BULK_TABLE, 17: BULK_TABLE };

/**
 * Decodes one function body (after its locals) to its end. Returns the charge points: the
 * function entry (at the body's first instruction) and every loop header (right after the
 * loop's block type). Each charges the instructions it can lead to before the next charge
 * point: the entry, the instructions outside any loop; a loop header, the instructions directly
 * in that loop (an inner loop charges its own). Between two charge points control only moves
 * forward within a body (a branch back lands on a loop header, a call on an entry), so every
 * instruction executed was paid for by the last charge of its region: fuel bounds the
 * instructions run, however long a loop body or a straight-line function is. Also returns the
 * bulk operations (charged by length) and the references to global `fuel`.
 */
function scan(r: Reader, fuel: number): Scan {
  const checks: Check[] = [{ at: r.p, weight: 1 }];
  const bulk: Bulk[] = [];
  const regions: number[] = [0]; // the charge point paying for the current instruction, innermost last
  const loops: boolean[] = []; // per open block: is it a loop
  let fuelRefs = 0, maxGlobal = -1;
  const unsupported = (what: string): never => bad(`${r.where} uses ${what} at byte ${r.p}: the loader understands MVP, SIMD, bulk memory, reference types, atomics, tail calls and try/catch only`);
  while (r.p < r.end) {
    const at = r.p, op = r.u8();
    const region = checks[regions[regions.length - 1]];
    region.weight += 1;
    if (op >= 0x45 && op <= 0xc4) continue; // numeric ops and sign extension: no immediates
    switch (op) {
      case 0x00: case 0x01: case 0x05: case 0x0f: case 0x19: case 0x1a: case 0x1b: case 0xd1: break;
      case 0x0b: if (loops.length && loops.pop()) regions.pop(); break; // end (of a block, or of the body)
      case 0x18: r.u32(); loops.pop(); break; // delegate: ends its try
      case 0x02: case 0x04: case 0x06: blockType(r); loops.push(false); break; // block, if, try
      case 0x03: blockType(r); loops.push(true); regions.push(checks.push({ at: r.p, weight: 1 }) - 1); break; // loop: paid at its header
      case 0x23: case 0x24: { // global.get, global.set
        const g = r.u32();
        if (g === fuel) fuelRefs++;
        if (g > maxGlobal) maxGlobal = g;
        break;
      }
      case 0x40: r.u32(); bulk.push({ at, ...BULK_GROW }); break; // memory.grow
      case 0x07: case 0x08: case 0x09: case 0x0c: case 0x0d: case 0x10: case 0x12: case 0x20: case 0x21: case 0x22:
      case 0x25: case 0x26: case 0x3f: case 0xd2: r.u32(); break; // one index
      case 0x0e: for (let n = r.count(); n >= 0; n--) r.u32(); break; // br_table: labels + default
      case 0x11: case 0x13: r.u32(); r.u32(); break; // call_indirect, return_call_indirect: type, table
      case 0x1c: for (let n = r.count(); n > 0; n--) r.valtype(); break; // select t*
      case 0x41: r.leb(5, true); break;
      case 0x42: r.leb(10, true); break;
      case 0x43: r.skip(4); break;
      case 0x44: r.skip(8); break;
      case 0xd0: if (!VALTYPE[r.u8()]) unsupported('ref.null of a typed reference'); break;
      case 0xfc: {
        const s = r.u32();
        if (s >= FC_IMM.length) unsupported(`0xfc ${s}`);
        for (let i = FC_IMM[s]; i > 0; i--) r.u32();
        if (BULK_FC[s]) bulk.push({ at, ...BULK_FC[s] });
        break;
      }
      case 0xfd: { // SIMD
        const s = r.u32();
        if (s <= 11 || s === 92 || s === 93) { memarg(r); region.weight += W_MEM - 1; } // loads, store, load32/64_zero
        else if (s === 12 || s === 13) r.skip(16); // v128.const, i8x16.shuffle
        else if (s >= 21 && s <= 34) r.u8(); // extract/replace lane
        else if (s >= 84 && s <= 91) { memarg(r); r.u8(); region.weight += W_MEM - 1; } // load/store lane
        else if (s > 0x113) unsupported(`SIMD op 0xfd ${s}`);
        break;
      }
      case 0xfe: { // threads
        const s = r.u32();
        if (s === 3) r.u8(); // atomic.fence: one reserved byte
        else if (s <= 2 || (s >= 0x10 && s <= 0x4e)) { memarg(r); region.weight += W_MEM - 1; }
        else unsupported(`atomic op 0xfe ${s}`);
        break;
      }
      default:
        if (op >= 0x28 && op <= 0x3e) { memarg(r); region.weight += W_MEM - 1; break; } // loads and stores
        unsupported(`opcode 0x${op.toString(16)}`);
    }
  }
  return { checks, bulk, fuelRefs, maxGlobal };
}

interface Section { id: number; hdr: number; start: number; end: number }
type Chunk = Uint8Array | number[];

/** Checks a forwarding function against the ABI and returns it instrumented with fuel. */
export function prepareFnModule(input: Uint8Array, opts: { maxPages?: number } = {}): { bytes: Uint8Array<ArrayBuffer>; report: FnReport } {
  const cap = opts.maxPages ?? FN_MAX_PAGES;
  if (!Number.isInteger(cap) || cap < 1 || cap > 65536) throw new WasmapError('EINVAL', `maxPages ${cap} must be an integer from 1 to 65536`);
  if (!(input instanceof Uint8Array)) bad('not a WebAssembly module: expected its bytes');
  if (input.length > FN_MAX_BYTES) bad(`the module is ${input.length} bytes: at most ${FN_MAX_BYTES} (${FN_MAX_BYTES >> 20} MiB) are accepted`);
  // One private copy, read from here on: the caller's buffer may be shared and changing, and the
  // bytes we check, WebAssembly validates and we instrument must be the same bytes.
  const bytes = new Uint8Array(input);
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    bad('not a WebAssembly module: it does not start with the bytes \\0asm (give the .wasm file the compiler wrote, not its text or source)');
  }
  const version = bytes[4] | bytes[5] << 8 | bytes[6] << 16 | bytes[7] << 24;
  if (version !== 1) bad(`not a WebAssembly module of version 1 (the header says 0x${(version >>> 0).toString(16)}; components are not supported)`);

  // Split into sections, in the spec's order, each at most once (custom sections anywhere).
  const r = new Reader(bytes, 8, bytes.length);
  const secs: Section[] = [];
  const byId = new Map<number, Section>();
  for (let last = 0; r.p < r.end;) {
    const hdr = r.p, id = r.u8();
    r.where = `the ${SECTION[id] ?? `unknown (id ${id})`} section`;
    if (id >= SECTION.length) bad(`malformed WebAssembly module: unknown section id ${id} at byte ${hdr}`);
    const size = r.u32(), start = r.p;
    r.skip(size);
    if (id) {
      if (RANK[id] <= last) bad(`malformed WebAssembly module: the ${SECTION[id]} section (byte ${hdr}) is out of order or repeated`);
      last = RANK[id];
      byId.set(id, { id, hdr, start, end: r.p });
    }
    secs.push({ id, hdr, start, end: r.p });
  }
  const open = (id: number): Reader => {
    const s = byId.get(id), sr = new Reader(bytes, s?.start ?? 0, s?.end ?? 0);
    sr.where = `the ${SECTION[id]} section`;
    return sr;
  };

  const types: string[] = [], nparams: number[] = [];
  const tr = open(1);
  for (let n = tr.p < tr.end ? tr.count() : 0; n > 0; n--) {
    const form = tr.u8();
    if (form !== 0x60) bad(`type ${types.length} is not a plain function type (form 0x${form.toString(16)}): GC types are not supported`);
    const t = sig(tr);
    types.push(t);
    const params = t.slice(1, t.indexOf(')'));
    nparams.push(params ? params.split(', ').length : 0);
  }
  tr.done();
  const typeOf = (t: number): string => t < types.length ? types[t] : bad(`type index ${t} is out of range (${types.length} types)`);

  // Imports: only env.abort, which AssemblyScript emits for failed assertions.
  const funcs: string[] = [], funcType: number[] = [];
  const ir = open(2);
  for (let n = ir.p < ir.end ? ir.count() : 0; n > 0; n--) {
    const mod = ir.name(), field = ir.name(), kind = ir.u8();
    if (kind === 2) bad(`module imports its memory (${mod}.${field}): a forwarding function must define and export its own memory (compile without --importMemory)`);
    if (kind !== 0) bad(`module imports the ${KIND[kind] ?? `kind ${kind}`} ${mod}.${field}: forwarding functions may not import anything (${AS_HINT})`);
    if (mod !== 'env' || field !== 'abort') bad(`module imports ${mod}.${field}: forwarding functions may not import anything but env.abort (${AS_HINT})`);
    const t = typeOf(ir.u32());
    if (t !== ABORT) bad(`module imports env.abort with type ${t}: it must be ${ABORT}, or not imported at all (--use abort=)`);
    funcs.push(t);
  }
  ir.done();
  const nimported = funcs.length;
  const fr = open(3);
  const defined = fr.p < fr.end ? fr.count() : 0;
  for (let i = 0; i < defined; i++) { const t = fr.u32(); funcs.push(typeOf(t)); funcType.push(t); }
  fr.done();

  // Memory: exactly one, its own, unshared, 32-bit; the maximum is capped.
  const mr = open(5);
  const nmem = mr.p < mr.end ? mr.count() : 0;
  if (nmem !== 1) bad(nmem ? `module defines ${nmem} memories: a forwarding function has exactly one` : 'module defines no memory: a forwarding function must define one and export it as "memory"');
  const flags = mr.u8();
  if (flags & 2) bad('module\'s memory is shared: a forwarding function\'s memory must not be shared (compile without --sharedMemory)');
  if (flags > 1) bad(`module's memory has limit flags 0x${flags.toString(16)} (memory64 or custom page sizes): only a plain 32-bit memory is supported`);
  const pages = mr.u32(), declared = flags & 1 ? mr.u32() : Infinity;
  mr.done();
  if (pages > cap) bad(`module's memory starts at ${pages} pages (${pages * 64} KiB): at most ${cap} pages (${cap * 64} KiB) are allowed; use less static data or a smaller --initialMemory`);
  const maxPages = Math.min(declared, cap);

  // Tables: a few, each of at most FN_MAX_TABLE entries, their maximum capped the same way
  // (a table of 10 million entries is 80 MB of host memory, and filling one takes seconds).
  const tabr = open(4);
  const tables: number[][] = [];
  for (let n = tabr.p < tabr.end ? tabr.count() : 0; n > 0; n--) {
    const rt = tabr.u8();
    if (rt !== 0x70 && rt !== 0x6f) bad(`table ${tables.length} has element type 0x${rt.toString(16)}: only funcref and externref tables are supported`);
    const tf = tabr.u8();
    if (tf > 1) bad(`table ${tables.length} has limit flags 0x${tf.toString(16)} (shared or 64-bit): only plain tables are supported`);
    const min = tabr.u32(), max = tf & 1 ? tabr.u32() : Infinity;
    if (min > FN_MAX_TABLE) bad(`table ${tables.length} starts at ${min} entries: at most ${FN_MAX_TABLE} are allowed`);
    if (tf & 1 && max < min) bad(`table ${tables.length}: its maximum ${max} is below its minimum ${min}`);
    tables.push([rt, 1, ...uleb(min), ...uleb(Math.min(max, FN_MAX_TABLE))]);
  }
  tabr.done();
  if (tables.length > FN_MAX_TABLES) bad(`module defines ${tables.length} tables: at most ${FN_MAX_TABLES} are allowed`);

  // Globals: the fuel counter is appended, so no existing global index moves.
  const gr = open(6);
  const nglobals = gr.p < gr.end ? gr.count() : 0, globalsAt = gr.p;
  const fuel = uleb(nglobals); // no global can be imported, so this is its index

  // Exports: the ABI's, with their exact types.
  const er = open(7);
  const exports = new Map<string, [number, number]>();
  const nexports = er.p < er.end ? er.count() : 0, exportsAt = er.p;
  for (let n = nexports; n > 0; n--) {
    const name = er.name(), kind = er.u8(), index = er.u32();
    if (kind === 3 && index >= nglobals) bad(`export ${name} names global ${index}, which does not exist (${nglobals} globals)`);
    exports.set(name, [kind, index]);
  }
  er.done();
  if (exports.has('wasmap_fuel')) bad('module already exports "wasmap_fuel": that name is the loader\'s fuel counter (was it instrumented twice?); rename the export');
  if (exports.get('memory')?.[0] !== 2) bad('module does not export its memory as "memory" (AssemblyScript does by default; with other toolchains export it under that name)');
  for (const [name, want] of [...REQUIRED, ...OPTIONAL]) {
    const e = exports.get(name);
    if (!e) { if (REQUIRED.some(([n]) => n === name)) bad(`module does not export ${name}: ${want}, which the ABI requires (see docs/forwarding-functions.md)`); continue; }
    if (e[0] !== 0) bad(`export ${name} is a ${KIND[e[0]] ?? `kind ${e[0]}`}, not a function ${want}`);
    const got = e[1] < funcs.length ? funcs[e[1]] : bad(`export ${name} names function ${e[1]}, which does not exist`);
    if (got !== want) bad(`export ${name} has type ${got}: the ABI requires ${want}`);
  }

  // Code: a charge at every function entry (after the locals) and every loop header, weighted
  // by the instructions it pays for (scan()); every bulk operation charged by its length. Pay
  // first, then trap when the counter went negative, so after a trap wasmap_fuel < 0 means "out
  // of fuel" (any other trap leaves it >= 0). A charge of w units is: global.get f; i64.const w;
  // i64.sub; global.set f; global.get f; i64.const 0; i64.lt_s; if; unreachable; end.
  const trapIfNegative = [0x23, ...fuel, 0x42, 0, 0x53, 0x04, 0x40, 0x00, 0x0b];
  const charge = (w: number): number[] => [0x23, ...fuel, 0x42, ...sleb(BigInt(w)), 0x7d, 0x24, ...fuel, ...trapIfNegative];
  // A bulk operation's length (i32, on top of the stack) is kept in a scratch local l added to
  // the function: local.tee l; global.get f; local.get l; i64.extend_i32_u; [i64.const mul;
  // i64.mul;] [i64.const shift; i64.shr_u;] i64.sub; global.set f; (trap if negative); then the op.
  const bulkCharge = (l: number[], { mul, shift }: { mul: number; shift: number }): number[] => [0x22, ...l, 0x23, ...fuel, 0x20, ...l, 0xad,
    ...(mul !== 1 ? [0x42, ...sleb(BigInt(mul)), 0x7e] : []), ...(shift ? [0x42, shift, 0x88] : []), 0x7d, 0x24, ...fuel, ...trapIfNegative];
  const cr = open(10);
  if (cr.end - cr.p > FN_MAX_CODE) bad(`the module's code is ${cr.end - cr.p} bytes: at most ${FN_MAX_CODE} (${FN_MAX_CODE >> 10} KiB) are accepted (static data may be larger: the limit is on code)`);
  const nbodies = cr.p < cr.end ? cr.count() : 0;
  if (nbodies !== defined) bad(`malformed WebAssembly module: ${defined} functions declared but ${nbodies} bodies in the code section`);
  const code: Chunk[] = [uleb(nbodies)];
  let loops = 0, bulkOps = 0, expectFuelRefs = 0;
  for (let i = 0; i < nbodies; i++) {
    const size = cr.u32(), start = cr.p;
    cr.skip(size);
    const br = new Reader(bytes, start, cr.p);
    br.where = `the body of function ${nimported + i}`;
    const ngroups = br.count(), groupsAt = br.p;
    let nlocals = nparams[funcType[i]];
    for (let n = ngroups; n > 0; n--) { nlocals += br.u32(); br.valtype(); }
    const localsEnd = br.p;
    const { checks, bulk, maxGlobal } = scan(br, -1);
    if (maxGlobal >= nglobals) bad(`${br.where} uses global ${maxGlobal}, which does not exist (${nglobals} globals)`);
    loops += checks.length - 1;
    bulkOps += bulk.length;
    expectFuelRefs += 3 * (checks.length + bulk.length);
    // the body: locals (plus the scratch local when there are bulk operations), then the code
    // with the charges spliced in at their places, in order
    const parts: Chunk[] = [];
    if (bulk.length) parts.push(uleb(ngroups + 1), bytes.subarray(groupsAt, localsEnd), [1, 0x7f]);
    else parts.push(bytes.subarray(start, localsEnd));
    const scratch = uleb(nlocals);
    const cuts: [number, number[]][] = [...checks.map((c): [number, number[]] => [c.at, charge(c.weight)]),
      ...bulk.map((k): [number, number[]] => [k.at, bulkCharge(scratch, k)])].sort((x, y) => x[0] - y[0]);
    let p = localsEnd;
    for (const [q, ins] of cuts) { parts.push(bytes.subarray(p, q), ins); p = q; }
    parts.push(bytes.subarray(p, cr.p));
    code.push(uleb(parts.reduce((n, c) => n + c.length, 0)), ...parts);
  }
  cr.done();

  // WebAssembly's own verdict on the input, before anything is added to it: a module invalid on
  // its own (say, one that sets a global it does not declare) must not become valid by what we
  // append (that global would be the fuel counter).
  if (!WebAssembly.validate(bytes)) {
    let why = 'it does not validate';
    try { new WebAssembly.Module(bytes); } catch (e) { why = (e as Error).message; }
    bad(`the module is not valid WebAssembly: ${why}`);
  }

  // Reassemble: untouched sections byte for byte; a global section is created if there was none.
  const out: Chunk[] = [bytes.subarray(0, 8)];
  const emit = (id: number, parts: Chunk[]): void => {
    out.push([id, ...uleb(parts.reduce((a, p) => a + p.length, 0))]);
    for (const p of parts) out.push(p);
  };
  const fuelGlobal = [0x7e, 1, 0x42, ...sleb(FN_START_FUEL), 0x0b];
  let globalsDone = false;
  for (const s of secs) {
    if (!globalsDone && s.id && RANK[s.id] > RANK[6]) { emit(6, [uleb(1), fuelGlobal]); globalsDone = true; }
    if (s.id === 5) emit(5, [[1, 1, ...uleb(pages), ...uleb(maxPages)]]);
    else if (s.id === 4) emit(4, [uleb(tables.length), ...tables]);
    else if (s.id === 6) { emit(6, [uleb(nglobals + 1), bytes.subarray(globalsAt, s.end), fuelGlobal]); globalsDone = true; }
    else if (s.id === 7) emit(7, [uleb(nexports + 1), bytes.subarray(exportsAt, s.end), [...str('wasmap_fuel'), 3, ...fuel]]);
    else if (s.id === 10) emit(10, code);
    else out.push(bytes.subarray(s.hdr, s.end));
  }
  const result = new Uint8Array(out.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of out) { result.set(p, o); o += p.length; }
  // The output, decoded again: nothing but our charges touches the fuel counter.
  const or = new Reader(result, 8, result.length);
  let fuelRefs = 0;
  for (let id = -1; or.p < or.end && id !== 10;) {
    id = or.u8();
    const size = or.u32(), next = or.p + size;
    if (id === 10) {
      for (let n = or.count(); n > 0; n--) {
        const bsize = or.u32(), br = new Reader(result, or.p, or.p + bsize);
        for (let g = br.count(); g > 0; g--) { br.u32(); br.valtype(); }
        fuelRefs += scan(br, nglobals).fuelRefs;
        or.p += bsize;
      }
    }
    or.p = next;
  }
  if (fuelRefs !== expectFuelRefs) bad(`internal error: the instrumented module references the fuel counter ${fuelRefs} times, not ${expectFuelRefs}`);
  return { bytes: result, report: { functions: defined, loops, bulkOps, memoryPages: pages, maxPages, exports: [...exports.keys()] } };
}
