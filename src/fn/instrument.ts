// Load-time checks and fuel instrumentation of forwarding-function modules (docs/forwarding-
// functions.md). We decode the binary ourselves, without a dependency, because we must rewrite
// it: the ABI's imports and exports are checked, the memory's maximum is capped, and a fuel
// counter is added at every function entry and loop header so that no function runs forever.
// Anything we do not understand is refused with EBADFN; what we accept we rewrite only where
// needed, so a module WebAssembly accepts stays one it accepts, with unchanged function and
// global indices (the name section and element segments stay right).
import { WasmapError } from '../errors.js';

/** The loader's cap on a function's memory (16 MiB), the ABI's default. */
export const FN_MAX_PAGES = 256;

/** Fuel for one batch of `nRecords` records. A unit is one function entry or one loop
 *  iteration. A sane lookup spends tens of units per record (parse, hash, probe a few slots);
 *  5 000 per record leaves room for a linear scan of a small table, and the 100 000 base for
 *  per-batch work such as an aging sweep. A unit costs ~1.2 ns on the machines measured
 *  (BENCHMARKS.md), so a runaway function is stopped within ~7 ms even on a full batch of 1024:
 *  the switch falls back within the 10 ms the design promises. */
export function fnFuelFor(nRecords: number): bigint {
  if (!Number.isSafeInteger(nRecords) || nRecords < 0) throw new WasmapError('EINVAL', `fnFuelFor: record count ${nRecords} must be a non-negative integer`);
  return 100_000n + 5_000n * BigInt(nRecords);
}

/** The initial value of `wasmap_fuel`: a start function (AssemblyScript emits one for top-level
 *  code) runs during instantiation, before the host can set any fuel; it gets one full batch. */
export const FN_START_FUEL = fnFuelFor(1024);

export interface FnReport { functions: number; loops: number; memoryPages: number; maxPages: number; exports: string[] }

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

/** Decodes one function body (after its locals) to its end; returns where loops' bodies start. */
function loopStarts(r: Reader): number[] {
  const at: number[] = [];
  const unsupported = (what: string): never => bad(`${r.where} uses ${what} at byte ${r.p}: the loader understands MVP, SIMD, bulk memory, reference types, atomics, tail calls and try/catch only`);
  while (r.p < r.end) {
    const op = r.u8();
    if (op >= 0x45 && op <= 0xc4) continue; // numeric ops and sign extension: no immediates
    switch (op) {
      case 0x00: case 0x01: case 0x05: case 0x0b: case 0x0f: case 0x19: case 0x1a: case 0x1b: case 0xd1: break;
      case 0x02: case 0x04: case 0x06: blockType(r); break; // block, if, try
      case 0x03: blockType(r); at.push(r.p); break; // loop: fuel goes right after its block type
      case 0x07: case 0x08: case 0x09: case 0x0c: case 0x0d: case 0x10: case 0x12: case 0x18: case 0x20: case 0x21: case 0x22:
      case 0x23: case 0x24: case 0x25: case 0x26: case 0x3f: case 0x40: case 0xd2: r.u32(); break; // one index
      case 0x0e: for (let n = r.count(); n >= 0; n--) r.u32(); break; // br_table: labels + default
      case 0x11: case 0x13: r.u32(); r.u32(); break; // call_indirect, return_call_indirect: type, table
      case 0x1c: for (let n = r.count(); n > 0; n--) r.valtype(); break; // select t*
      case 0x41: r.leb(5, true); break;
      case 0x42: r.leb(10, true); break;
      case 0x43: r.skip(4); break;
      case 0x44: r.skip(8); break;
      case 0xd0: if (!VALTYPE[r.u8()]) unsupported('ref.null of a typed reference'); break;
      case 0xfc: { const s = r.u32(); if (s >= FC_IMM.length) unsupported(`0xfc ${s}`); for (let i = FC_IMM[s]; i > 0; i--) r.u32(); break; }
      case 0xfd: { // SIMD
        const s = r.u32();
        if (s <= 11 || s === 92 || s === 93) memarg(r); // loads, store, load32/64_zero
        else if (s === 12 || s === 13) r.skip(16); // v128.const, i8x16.shuffle
        else if (s >= 21 && s <= 34) r.u8(); // extract/replace lane
        else if (s >= 84 && s <= 91) { memarg(r); r.u8(); } // load/store lane
        else if (s > 0x113) unsupported(`SIMD op 0xfd ${s}`);
        break;
      }
      case 0xfe: { // threads
        const s = r.u32();
        if (s === 3) r.u8(); // atomic.fence: one reserved byte
        else if (s <= 2 || (s >= 0x10 && s <= 0x4e)) memarg(r);
        else unsupported(`atomic op 0xfe ${s}`);
        break;
      }
      default:
        if (op >= 0x28 && op <= 0x3e) { memarg(r); break; } // loads and stores
        unsupported(`opcode 0x${op.toString(16)}`);
    }
  }
  return at;
}

interface Section { id: number; hdr: number; start: number; end: number }
type Chunk = Uint8Array | number[];

/** Checks a forwarding function against the ABI and returns it instrumented with fuel. */
export function prepareFnModule(bytes: Uint8Array, opts: { maxPages?: number } = {}): { bytes: Uint8Array<ArrayBuffer>; report: FnReport } {
  const cap = opts.maxPages ?? FN_MAX_PAGES;
  if (!Number.isInteger(cap) || cap < 1 || cap > 65536) throw new WasmapError('EINVAL', `maxPages ${cap} must be an integer from 1 to 65536`);
  if (!(bytes instanceof Uint8Array) || bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
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

  const types: string[] = [];
  const tr = open(1);
  for (let n = tr.p < tr.end ? tr.count() : 0; n > 0; n--) {
    const form = tr.u8();
    if (form !== 0x60) bad(`type ${types.length} is not a plain function type (form 0x${form.toString(16)}): GC types are not supported`);
    types.push(sig(tr));
  }
  tr.done();
  const typeOf = (t: number): string => t < types.length ? types[t] : bad(`type index ${t} is out of range (${types.length} types)`);

  // Imports: only env.abort, which AssemblyScript emits for failed assertions.
  const funcs: string[] = [];
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
  const fr = open(3);
  const defined = fr.p < fr.end ? fr.count() : 0;
  for (let i = 0; i < defined; i++) funcs.push(typeOf(fr.u32()));
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

  // Globals: the fuel counter is appended, so no existing global index moves.
  const gr = open(6);
  const nglobals = gr.p < gr.end ? gr.count() : 0, globalsAt = gr.p;
  const fuel = uleb(nglobals); // no global can be imported, so this is its index

  // Exports: the ABI's, with their exact types.
  const er = open(7);
  const exports = new Map<string, [number, number]>();
  const nexports = er.p < er.end ? er.count() : 0, exportsAt = er.p;
  for (let n = nexports; n > 0; n--) exports.set(er.name(), [er.u8(), er.u32()]);
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

  // Code: fuel at every function entry (after the locals) and every loop header. Pay first,
  // then trap when the counter went negative, so after a trap wasmap_fuel < 0 means "out of
  // fuel" (any other trap leaves it >= 0). 10 instructions, 16 bytes while the index is < 128:
  // global.get f; i64.const 1; i64.sub; global.set f; global.get f; i64.const 0; i64.lt_s;
  // if; unreachable; end.
  const check = Uint8Array.from([0x23, ...fuel, 0x42, 1, 0x7d, 0x24, ...fuel, 0x23, ...fuel, 0x42, 0, 0x53, 0x04, 0x40, 0x00, 0x0b]);
  const cr = open(10);
  const nbodies = cr.p < cr.end ? cr.count() : 0;
  if (nbodies !== defined) bad(`malformed WebAssembly module: ${defined} functions declared but ${nbodies} bodies in the code section`);
  const code: Chunk[] = [uleb(nbodies)];
  let loops = 0;
  for (let i = 0; i < nbodies; i++) {
    const size = cr.u32(), start = cr.p;
    cr.skip(size);
    const br = new Reader(bytes, start, cr.p);
    br.where = `the body of function ${funcs.length - defined + i}`;
    for (let n = br.count(); n > 0; n--) { br.u32(); br.valtype(); }
    const at = [br.p, ...loopStarts(br)];
    loops += at.length - 1;
    code.push(uleb(size + at.length * check.length));
    for (let k = 0, p = start; k <= at.length; k++) {
      const q = k < at.length ? at[k] : cr.p;
      code.push(bytes.subarray(p, q));
      if (k < at.length) code.push(check);
      p = q;
    }
  }
  cr.done();

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
    else if (s.id === 6) { emit(6, [uleb(nglobals + 1), bytes.subarray(globalsAt, s.end), fuelGlobal]); globalsDone = true; }
    else if (s.id === 7) emit(7, [uleb(nexports + 1), bytes.subarray(exportsAt, s.end), [...str('wasmap_fuel'), 3, ...fuel]]);
    else if (s.id === 10) emit(10, code);
    else out.push(bytes.subarray(s.hdr, s.end));
  }
  const result = new Uint8Array(out.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of out) { result.set(p, o); o += p.length; }
  return { bytes: result, report: { functions: defined, loops, memoryPages: pages, maxPages, exports: [...exports.keys()] } };
}
