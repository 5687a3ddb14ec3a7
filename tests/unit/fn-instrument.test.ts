// The forwarding-function loader's validator and fuel instrumenter (src/fn/instrument.ts): test
// modules are assembled byte by byte here (a tiny builder below), plus one real AssemblyScript
// module compiled with SIMD. Checked: every ABI refusal and its message, that instrumented
// modules compute exactly what the originals do, that fuel stops loops, recursion and tail
// calls and can be refilled, the memory cap, every immediate kind of the decoder, and a fuzz
// loop: mutated modules only ever get an EBADFN, and nothing WebAssembly accepts is broken.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WasmapError } from '../../src/errors.js';
import { FN_MAX_BYTES, FN_MAX_CODE, FN_MAX_PAGES, FN_MAX_TABLE, FN_MAX_TABLES, FN_START_FUEL, fnFuelFor, prepareFnModule } from '../../src/fn/instrument.js';
import * as H from '../fixtures/fn/modules/hostile.js';
import { Script, createContext } from 'node:vm';
import { assertWasmapError } from './helpers.js';

import { I32, I64, F32, V128, FUNCREF, Sig, uleb, sleb, str, vec, i32c, i64c, f32c, f64c, Func, Spec, LOOKUP, ABI, build } from '../fixtures/fn/modules/builder.js';

// each test module exports its own functions: untyped on purpose
type Exports = Record<string, any>;
const instantiate = (bytes: Uint8Array<ArrayBuffer>, imports: WebAssembly.Imports = {}): Exports =>
  new WebAssembly.Instance(new WebAssembly.Module(bytes), imports).exports as Exports;
const prepared = (spec: Spec, opts?: { maxPages?: number }): Exports => instantiate(prepareFnModule(build(spec), opts).bytes);
const refused = (bytes: Uint8Array, ...parts: string[]): void => assertWasmapError(() => prepareFnModule(bytes), 'EBADFN', ...parts);
const isRuntimeError = (e: unknown): boolean => e instanceof WebAssembly.RuntimeError;

/** Fill `n` records (sources 0..n-1) and run the lookup; the decisions. */
function lookup(x: Exports, n: number, nports: number): number[] {
  const mem = new Uint8Array(x.memory.buffer);
  const base = x.wasmap_fn_batch();
  for (let i = 0; i < n; i++) { mem[base + 128 * i] = i % 250; mem[base + 128 * i + 1] = 255; }
  assert.equal(x.wasmap_fn_lookup(n, nports, 1_000_000), 0);
  return Array.from({ length: n }, (_, i) => mem[base + 128 * i + 1]);
}

// ---- the happy path ----
test('a valid module passes, keeps its behaviour and gains an i64 wasmap_fuel export', () => {
  const bytes = build();
  const { bytes: out, report } = prepareFnModule(bytes);
  assert.deepEqual(report, { functions: 3, loops: 1, bulkOps: 0, memoryPages: 1, maxPages: FN_MAX_PAGES,
    exports: ['wasmap_fn_version', 'wasmap_fn_batch', 'wasmap_fn_lookup', 'memory'] });
  const x = instantiate(out), orig = instantiate(bytes);
  assert.ok(x.wasmap_fuel instanceof WebAssembly.Global);
  assert.equal(x.wasmap_fuel.value, FN_START_FUEL);
  x.wasmap_fuel.value = fnFuelFor(300);
  assert.equal(x.wasmap_fn_version(), 1);
  assert.deepEqual(lookup(x, 300, 7), lookup(orig, 300, 7));
  assert.deepEqual(lookup(x, 3, 7), [1, 2, 3]);
  // entries: version and batch (3 units each: the charge, i32.const, end), batch again, lookup
  // twice (6: the charge, block, loop, end, i32.const, end); loop headers: 301 + 4 (the last
  // pass exits), 31 units each (the charge, 28 instructions, 2 of them memory accesses at 4)
  assert.equal(fnFuelFor(300) - x.wasmap_fuel.value, 3n * 3n + 2n * 6n + 31n * (301n + 4n));
  // the header, type and function sections are untouched (the type section is under 128 bytes)
  const typeAndFuncs = 10 + bytes[9] + 2 + bytes[11 + bytes[9]];
  assert.deepEqual(out.subarray(0, typeAndFuncs), bytes.subarray(0, typeAndFuncs));
  assert.ok(WebAssembly.Module.exports(new WebAssembly.Module(out)).some((e) => e.name === 'wasmap_fuel' && e.kind === 'global'));
});

test('fnFuelFor: 100 000 + 5 000 per record; bad counts are EINVAL', () => {
  assert.equal(fnFuelFor(0), 100_000n);
  assert.equal(fnFuelFor(1024), 5_220_000n);
  assert.equal(FN_START_FUEL, fnFuelFor(1024));
  assertWasmapError(() => fnFuelFor(-1), 'EINVAL', '-1');
  assertWasmapError(() => fnFuelFor(1.5), 'EINVAL');
  assertWasmapError(() => prepareFnModule(build(), { maxPages: 0 }), 'EINVAL', 'maxPages');
});

// ---- fuel ----
const SPIN: Func = { name: 'spin', sig: [[], []], code: [0x03, 0x40, 0x0c, 0, 0x0b] };
// count(k): a loop whose header is passed k times, so it costs exactly 1 + k
const COUNT: Func = { name: 'count', sig: [[I32], [I32]], locals: [I32], code: [
  0x03, 0x40, 0x20, 1, ...i32c(1), 0x6a, 0x22, 1, 0x20, 0, 0x49, 0x0d, 0, 0x0b, 0x20, 1] };
// rec(n) = n ? rec(n - 1) + 1 : 0, function 0: n + 1 entries
const REC: Func = { name: 'rec', sig: [[I32], [I32]], code: [
  0x20, 0, 0x45, 0x04, I32, ...i32c(0), 0x05, 0x20, 0, ...i32c(1), 0x6b, 0x10, 0, ...i32c(1), 0x6a, 0x0b] };

test('an endless loop traps once the fuel is spent, leaves the counter negative, and runs again when refuelled', () => {
  const x = prepared({ funcs: [SPIN] });
  x.wasmap_fuel.value = 1000n;
  assert.throws(() => x.spin(), isRuntimeError);
  assert.ok(x.wasmap_fuel.value < 0n, 'the counter tells a fuel trap from any other');
  assert.throws(() => x.wasmap_fn_version(), isRuntimeError, 'no fuel, no call');
  x.wasmap_fuel.value = 1000n;
  assert.equal(x.wasmap_fn_version(), 1);
  assert.deepEqual(lookup(x, 4, 3), [1, 2, 0, 1]);
  assert.throws(() => x.spin(), isRuntimeError);
});

test('fuel is exact: a function entry pays for the instructions outside loops, a loop header for those in its loop', () => {
  const x = prepared({ funcs: [COUNT] });
  // entry: the charge + loop, local.get, end = 4; each pass: the charge + 7 instructions + end = 9
  for (const k of [1, 2, 10, 1000]) {
    x.wasmap_fuel.value = BigInt(4 + 9 * k);
    assert.equal(x.count(k), k);
    assert.equal(x.wasmap_fuel.value, 0n);
    x.wasmap_fuel.value = BigInt(4 + 9 * k - 1);
    assert.throws(() => x.count(k), isRuntimeError);
  }
});

test('recursion is bounded by the entry fuel, before the stack overflows', () => {
  const inf: Func = { name: 'inf', sig: [[], []], code: [0x10, 1] };
  const x = prepared({ funcs: [REC, inf] });
  x.wasmap_fuel.value = 51n * 14n; // 51 entries of the charge + 13 instructions
  assert.equal(x.rec(50), 50);
  x.wasmap_fuel.value = 51n * 14n - 1n;
  assert.throws(() => x.rec(50), isRuntimeError);
  x.wasmap_fuel.value = 10_000n;
  assert.throws(() => x.inf(), isRuntimeError, 'a fuel trap, not a RangeError (stack overflow)');
  assert.ok(x.wasmap_fuel.value < 0n);
});

test('tail calls and try/catch_all cannot escape the fuel', () => {
  const tailspin: Func = { name: 'tailspin', sig: [[], []], code: [0x12, 0] };
  const shielded: Func = { name: 'shielded', sig: [[], []], code: [0x06, 0x40, 0x10, 0, 0x19, 0x0b] };
  const x = prepared({ funcs: [tailspin, shielded] });
  x.wasmap_fuel.value = 5000n;
  assert.throws(() => x.tailspin(), isRuntimeError);
  x.wasmap_fuel.value = 5000n;
  assert.throws(() => x.shielded(), isRuntimeError, 'a trap is not an exception catch_all sees');
  assert.equal(x.wasmap_fuel.value, -1n);
});

test('a start function runs on the start fuel; an endless one makes instantiation trap', () => {
  const init: Func = { sig: [[], []], code: [...i32c(0), ...i32c(7), 0x36, 2, 0] }; // mem[0] = 7
  const x = prepared({ funcs: [init], start: 0 });
  assert.equal(new Uint32Array(x.memory.buffer)[0], 7);
  const spin = prepareFnModule(build({ funcs: [{ ...SPIN, name: undefined }], start: 0 })).bytes;
  assert.throws(() => instantiate(spin), isRuntimeError);
});

test('globals keep their indices; the fuel global is appended; a name section stays byte for byte', () => {
  const getg: Func = { name: 'getg', sig: [[], [I64]], code: [0x23, 1] };
  const fnames = vec([[0, ...str('getg')]]); // the name section's subsection 1: function names
  const bytes = build({
    funcs: [getg], globals: [[I32, 1, ...i32c(5), 0x0b], [I64, 0, ...i64c(-9n), 0x0b]],
    exports: [['g0', 3, 0]], custom: [['name', [1, ...uleb(fnames.length), ...fnames]]],
  });
  const out = prepareFnModule(bytes).bytes;
  const x = instantiate(out);
  assert.equal(x.g0.value, 5);
  x.wasmap_fuel.value = 10n;
  assert.equal(x.getg(), -9n);
  assert.equal(x.wasmap_fuel.value, 7n); // the charge, global.get, end
  const m = new WebAssembly.Module(out);
  assert.deepEqual(new Uint8Array(WebAssembly.Module.customSections(m, 'name')[0]),
    new Uint8Array(WebAssembly.Module.customSections(new WebAssembly.Module(bytes), 'name')[0]));
  // instrumenting twice is refused: the fuel export already exists
  refused(out, 'wasmap_fuel', 'instrumented twice');
});

// ---- memory ----
const GROW: Func = { name: 'grow', sig: [[I32], [I32]], code: [0x20, 0, 0x40, 0] };

test('memory: the maximum is capped at 256 pages (or maxPages), growth beyond it returns -1', () => {
  const preparedRich = (spec: Spec, opts?: { maxPages?: number }): Exports => { const x = prepared(spec, opts); x.wasmap_fuel.value = 1n << 40n; return x; };
  let x = preparedRich({ funcs: [GROW] });
  assert.equal(x.grow(255), 1);
  assert.equal(x.grow(1), -1);
  assert.throws(() => x.memory.grow(1), RangeError);
  x = preparedRich({ funcs: [GROW], memory: [1, 1, 10] }); // a smaller declared maximum is kept
  assert.equal(x.grow(10), -1);
  assert.equal(x.grow(9), 1);
  const r = prepareFnModule(build({ funcs: [GROW], memory: [1, 2, 100] }), { maxPages: 4 }).report;
  assert.deepEqual([r.memoryPages, r.maxPages], [2, 4]);
  x = preparedRich({ funcs: [GROW], memory: [1, 2, 100] }, { maxPages: 4 });
  assert.equal(x.grow(3), -1);
  assert.equal(x.grow(2), 2);
  refused(build({ memory: [0, ...uleb(257)] }), '257 pages', 'at most 256');
  assert.equal(prepareFnModule(build({ memory: [0, ...uleb(257)] }), { maxPages: 512 }).report.maxPages, 512);
  refused(build({ memory: [3, 1, 4] }), 'shared');
  refused(build({ memory: [4, 1] }), 'memory64');
  refused(build({ memory: null }), 'defines no memory');
  refused(build({ exportMemory: false }), 'does not export its memory as "memory"');
  refused(build({ exportMemory: false, exports: [['mem', 2, 0]] }), '"memory"');
});

// ---- refusals ----
const ABORT_SIG: Sig = [[I32, I32, I32, I32], []];

test('imports: only env.abort (i32, i32, i32, i32) -> () is tolerated', () => {
  const abortOk = build({ imports: [{ mod: 'env', name: 'abort', sig: ABORT_SIG }] });
  const x = instantiate(prepareFnModule(abortOk).bytes, { env: { abort: () => { throw new Error('abort'); } } });
  x.wasmap_fuel.value = 1000n;
  assert.deepEqual(lookup(x, 2, 5), [1, 2], 'function indices shifted by the import still line up');
  refused(build({ imports: [{ mod: 'wasi_snapshot_preview1', name: 'fd_write', sig: [[I32, I32, I32, I32], [I32]] }] }),
    'wasi_snapshot_preview1.fd_write', 'may not import', '--runtime stub --use abort=');
  refused(build({ imports: [{ mod: 'env', name: 'abort', sig: [[I32], []] }] }), 'env.abort with type (i32) -> ()', '(i32, i32, i32, i32) -> ()');
  refused(build({ imports: [{ mod: 'env', name: 'seed', sig: [[], [I64]] }] }), 'env.seed');
  refused(build({ memory: null, exportMemory: false, imports: [{ mod: 'env', name: 'memory', desc: [2, 0, 1] }] }),
    'imports its memory (env.memory)', '--importMemory');
  refused(build({ imports: [{ mod: 'env', name: 'tbl', desc: [1, FUNCREF, 0, 1] }] }), 'table env.tbl');
  refused(build({ imports: [{ mod: 'env', name: 'g', desc: [3, I32, 0] }] }), 'global env.g');
});

test('exports: the three required ones with their exact types, the optional ones typed if present', () => {
  const without = (name: string): Spec => ({ abi: false, funcs: ABI.filter((f) => f.name !== name) });
  for (const f of ABI) refused(build(without(f.name!)), `does not export ${f.name}`);
  refused(build({ abi: false, funcs: [ABI[0], ABI[1], { ...LOOKUP, sig: [[I32, I32], [I32]], locals: [I32, I32, I32] }] }),
    'wasmap_fn_lookup has type (i32, i32) -> i32', '(i32, i32, i32) -> i32');
  refused(build({ abi: false, funcs: [{ ...ABI[0], sig: [[], [I64]], code: i64c(1n) }, ABI[1], LOOKUP] }), 'wasmap_fn_version', '() -> i64');
  refused(build({ abi: false, funcs: [ABI[0], LOOKUP], globals: [[I32, 0, ...i32c(1024), 0x0b]], exports: [['wasmap_fn_batch', 3, 0]] }),
    'wasmap_fn_batch is a global');
  // the optional ones
  const opt = (name: string, sig: Sig): Uint8Array<ArrayBuffer> => build({ funcs: [{ name, sig, code: i32c(0) }] });
  prepareFnModule(opt('wasmap_fn_config_buf', [[I32], [I32]]));
  prepareFnModule(opt('wasmap_fn_config', [[I32, I32], [I32]]));
  prepareFnModule(opt('wasmap_fn_counters', [[], [I32]]));
  refused(opt('wasmap_fn_config', [[I32], [I32]]), 'wasmap_fn_config has type (i32) -> i32', '(i32, i32) -> i32');
  refused(opt('wasmap_fn_counters', [[I32], [I32]]), 'wasmap_fn_counters');
  refused(build({ funcs: [{ name: 'wasmap_fn_config_buf', sig: [[I32], []], code: [] }] }), '(i32) -> ()');
  refused(build({ globals: [[I64, 1, ...i64c(0n), 0x0b]], exports: [['wasmap_fuel', 3, 0]] }), '"wasmap_fuel"');
});

test('garbage, other versions, bad section order and every truncation are EBADFN', () => {
  refused(new Uint8Array(0), 'not a WebAssembly module');
  refused(Buffer.from('(module (memory 1))'), 'not a WebAssembly module', '\\0asm');
  refused(Uint8Array.from([0, 0x61, 0x73, 0x6d, 2, 0, 0, 0]), 'version');
  refused(Uint8Array.from([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]), 'version', 'components');
  refused(Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 99, 0]), 'unknown section id 99');
  // the export section moved before the function section
  const good = build();
  const secs: number[][] = [];
  for (let p = 8; p < good.length;) {
    const size = good[p + 1]; // every section of this module is under 128 bytes
    assert.ok(size < 128);
    secs.push([...good.subarray(p, p + 2 + size)]); p += 2 + size;
  }
  const order = secs.map((s) => s[0]);
  const swapped = [...secs]; const e = order.indexOf(7), f = order.indexOf(3);
  [swapped[e], swapped[f]] = [swapped[f], swapped[e]];
  refused(Uint8Array.from([...good.subarray(0, 8), ...swapped.flat()]), 'out of order');
  refused(Uint8Array.from([...good.subarray(0, 8), ...secs.flat(), ...secs[order.indexOf(7)]]), 'out of order or repeated');
  for (let n = 0; n < good.length; n++) {
    assert.throws(() => prepareFnModule(good.subarray(0, n)), (err: unknown) => err instanceof WasmapError && err.code === 'EBADFN', `cut at ${n}`);
  }
  refused(good.subarray(0, good.length - 3), 'truncated or malformed', 'code section');
  refused(build({ funcs: [{ sig: [[], []], code: [0xd3] }] }), 'opcode 0xd3', 'body of function 0');
  refused(build({ funcs: [{ sig: [[], []], code: [0xfc, 30] }] }), '0xfc 30');
});

// ---- the decoder: every immediate kind ----
/** One function with every kind of immediate the decoder knows, folded into one i32. */
function sinkSpec(): Spec {
  const T_VOID = 0, T_II_I = 1, T_I_I = 2;
  const mix = [0x20, 2, ...i32c(33), 0x6c, 0x6a, 0x21, 2]; // acc = acc * 33 + value
  const lanes = (f: (i: number) => number): number[] => Array.from({ length: 16 }, (_, i) => f(i));
  const code = [
    ...i32c(0), ...i32c(0), ...i32c(16), 0xfc, 8, 0, 0, 0xfc, 9, 0, // memory.init, data.drop
    ...i32c(16), ...i32c(0), ...i32c(16), 0xfc, 10, 0, 0, // memory.copy
    ...i32c(32), ...i32c(0x5a), ...i32c(8), 0xfc, 11, 0, // memory.fill
    ...i32c(0), 0xfd, 0, 4, 0, 0x21, 0, // v128.load
    0x20, 0, 0xfd, 12, ...lanes((i) => i * 3 + 1), 0xfd, 13, ...lanes((i) => (i & 1 ? 16 + i : 15 - i)), 0x21, 0, // v128.const, i8x16.shuffle
    0x20, 0, ...i32c(0x12345678), 0xfd, 28, 2, 0x21, 0, // i32x4.replace_lane
    ...i32c(48), 0x20, 0, 0xfd, 11, 4, 0, // v128.store
    ...i32c(5), 0x20, 0, 0xfd, 84, 0, 0, 3, 0x21, 0, // v128.load8_lane
    ...i32c(64), 0x20, 0, 0xfd, 90, 2, 0, 1, // v128.store32_lane
    ...i32c(48), 0xfd, 92, 2, 0, 0xfd, 27, 0, ...mix, // v128.load32_zero, i32x4.extract_lane
    0x20, 0, 0xfd, 22, 7, ...mix, // i8x16.extract_lane_u
    0x20, 0, 0xfd, 29, 1, 0xa7, ...mix, // i64x2.extract_lane, i32.wrap_i64
    0x20, 0, 0xfd, 83, ...mix, ...i32c(-1), 0xfd, 15, 0xfd, 99, ...mix, 0x20, 0, 0xfd, 100, ...mix, // any_true, splat, all_true, bitmask
    0x20, 0, 0x20, 0, 0xfd, 0xae, 1, 0xfd, 27, 3, ...mix, // i32x4.add: a two-byte sub-opcode
    0x03, 0x40, 0x0b, // an empty loop among them
    ...i32c(128), ...i32c(5), 0xfe, 0x1e, 2, 0, ...mix, 0xfe, 3, 0, // i32.atomic.rmw.add, atomic.fence
    ...i32c(128), 0xfe, 0x10, 2, 0, ...mix, ...i32c(128), ...i32c(1), 0xfe, 0, 2, 0, ...mix, // atomic.load, notify
    ...i32c(136), ...i64c(0n), ...i64c(7n), 0xfe, 0x49, 3, 0, 0xa7, ...mix, ...i32c(136), 0x29, 3, 0, 0xa7, ...mix, // cmpxchg
    ...f32c(1e10), 0xfc, 0, ...mix, ...f64c(-1.5), 0xfc, 3, ...mix, ...i32c(0x80), 0xc0, ...mix, // trunc_sat, extend8_s
    ...i32c(1), ...i32c(2), ...i32c(0), 0x1c, 1, I32, ...mix, // typed select
    0xd0, FUNCREF, 0xd1, ...mix, 0xd2, 0, 0xd1, ...mix, // ref.null, ref.is_null, ref.func
    0xfc, 16, 0, ...mix, 0xd0, FUNCREF, ...i32c(2), 0xfc, 15, 0, ...mix, // table.size, table.grow
    ...i32c(1), ...i32c(0), ...i32c(1), 0xfc, 12, 0, 0, 0xfc, 13, 0, // table.init, elem.drop
    ...i32c(3), ...i32c(1), ...i32c(1), 0xfc, 14, 0, 0, // table.copy
    ...i32c(4), 0xd2, 0, ...i32c(2), 0xfc, 17, 0, ...i32c(5), 0x25, 0, 0xd1, ...mix, // table.fill, table.get
    ...i32c(5), 0xd0, FUNCREF, 0x26, 0, ...i32c(5), 0x25, 0, 0xd1, ...mix, // table.set
    ...i32c(21), ...i32c(3), 0x11, T_I_I, 0, ...mix, // call_indirect
    ...i32c(3), ...i32c(4), 0x02, T_II_I, 0x6a, 0x0b, ...mix, // a block with parameters
    ...i32c(10), 0x03, T_I_I, ...i32c(1), 0x6b, 0x22, 1, 0x20, 1, 0x0d, 0, 0x0b, ...mix, // a loop with a parameter
    ...i32c(0), 0x21, 1, 0x02, 0x40, 0x03, 0x40, 0x02, 0x40, 0x02, 0x40, 0x20, 1, 0x0e, 2, 0, 1, 3, 0x0b, // br_table
    ...i32c(100), ...mix, 0x20, 1, ...i32c(1), 0x6a, 0x21, 1, 0x0c, 1, 0x0b,
    ...i32c(200), ...mix, 0x20, 1, ...i32c(1), 0x6a, 0x21, 1, 0x0c, 0, 0x0b, 0x0b,
    0x06, 0x40, 0x10, 2, 0x07, 0, ...i32c(7), ...mix, 0x0b, // try, throw, catch
    0x06, 0x40, 0x06, 0x40, 0x10, 2, 0x18, 0, 0x19, ...i32c(9), ...mix, 0x0b, // delegate, catch_all
    0x06, 0x40, 0x06, 0x40, 0x10, 2, 0x07, 0, 0x09, 0, 0x0b, 0x19, ...i32c(11), ...mix, 0x0b, // rethrow
    ...i64c(0x123456789abcdef0n), ...i64c(3n), 0x7e, 0xa7, ...mix, 0x3f, 0, ...mix, // i64.const, memory.size
    0x20, 2,
  ];
  return {
    types: [[[], []], [[I32, I32], [I32]], [[I32], [I32]]],
    funcs: [
      { sig: [[I32], [I32]], code: [0x20, 0, ...i32c(2), 0x6c] }, // double, for call_indirect
      { name: 'sink', sig: [[], [I32]], locals: [V128, I32, I32], code },
      { sig: [[], []], code: [0x08, 0] }, // throws tag 0
    ],
    tables: [[FUNCREF, 0, 4]], tags: [[0, T_VOID]], elems: [[1, 0, ...vec([[0]])]],
    dataCount: true, data: [[1, ...str('hello, wasmap!!!')]],
  };
}

test('SIMD, bulk memory, atomics, tables, references, multi-value, br_table, EH: decoded, same results', () => {
  const bytes = build(sinkSpec());
  new WebAssembly.Module(bytes); // the test module itself is valid
  const { bytes: out, report } = prepareFnModule(bytes);
  assert.equal(report.loops, 4); // the empty one, the parameterized one, br_table's and the lookup's
  const a = instantiate(bytes), b = instantiate(out);
  b.wasmap_fuel.value = 100_000n;
  const want = a.sink();
  assert.equal(b.sink(), want);
  assert.deepEqual(new Uint8Array(b.memory.buffer, 0, 256), new Uint8Array(a.memory.buffer, 0, 256));
  assert.equal(report.bulkOps, 7, 'memory.init/copy/fill and table.grow/init/copy/fill are charged by length');
  const used = 100_000n - b.wasmap_fuel.value;
  const c = instantiate(out), d = instantiate(out); // sink runs once per instance (data.drop)
  c.wasmap_fuel.value = used;
  assert.equal(c.sink(), want, 'exactly the fuel it used is enough');
  d.wasmap_fuel.value = used - 1n;
  assert.throws(() => d.sink(), isRuntimeError);
});

// ---- a real AssemblyScript module, with SIMD ----
function findRoot(): string {
  for (let d = dirname(fileURLToPath(import.meta.url)); d !== dirname(d); d = dirname(d)) {
    if (existsSync(join(d, 'node_modules/.bin/asc'))) return d;
  }
  return process.cwd();
}
const AS_SOURCE = `
const BATCH = memory.data(1024 * 128, 16);
const COUNTERS = memory.data(8 + 32, 8);
let floods: u64 = 0;
export function wasmap_fn_version(): i32 { return 1; }
export function wasmap_fn_batch(): i32 { return <i32>BATCH; }
export function wasmap_fn_counters(): i32 {
  store<u32>(COUNTERS, 1);
  store<u8>(COUNTERS + 8, 0x66); store<u8>(COUNTERS + 9, 0x6c);
  store<u64>(COUNTERS + 32, floods);
  return <i32>COUNTERS;
}
// broadcast destination (six 0xff bytes, found with SIMD) -> flood; else the last MAC byte mod nports
export function wasmap_fn_lookup(n: i32, nports: i32, now: i32): i32 {
  const ones = i8x16.splat(-1);
  for (let i = 0; i < n; i++) {
    const rec = BATCH + (<usize>i << 7);
    const hdr = v128.load(rec + 32);
    if ((i8x16.bitmask(i8x16.eq(hdr, ones)) & 0x3f) == 0x3f) { store<u8>(rec, 254, 1); floods++; continue; }
    store<u8>(rec, <u8>(<i32>i8x16.extract_lane_u(hdr, 5) % nports), 1);
  }
  return 0;
}
`;
let asWasm: Uint8Array<ArrayBuffer> | undefined;
function compileAs(): Uint8Array<ArrayBuffer> {
  if (asWasm) return asWasm;
  const dir = mkdtempSync(join(tmpdir(), 'wasmap-fn-'));
  try {
    writeFileSync(join(dir, 'fn.ts'), AS_SOURCE);
    execFileSync(join(findRoot(), 'node_modules/.bin/asc'), [join(dir, 'fn.ts'), '--outFile', join(dir, 'fn.wasm'),
      '--runtime', 'stub', '--use', 'abort=', '-O3', '--enable', 'simd'], { stdio: 'pipe', cwd: dir }); // cwd: not the project's asconfig.json
    return (asWasm = new Uint8Array(readFileSync(join(dir, 'fn.wasm'))));
  } finally { rmSync(dir, { recursive: true, force: true }); }
}

test('an AssemblyScript module compiled with SIMD instruments and decides the same', () => {
  const bytes = compileAs();
  const { bytes: out, report } = prepareFnModule(bytes);
  assert.ok(report.loops >= 1 && report.exports.includes('wasmap_fn_counters'));
  const x = instantiate(out), orig = instantiate(bytes);
  x.wasmap_fuel.value = fnFuelFor(100);
  for (const m of [x, orig]) {
    const mem = new Uint8Array(m.memory.buffer), base = m.wasmap_fn_batch();
    for (let i = 0; i < 100; i++) mem.fill(i % 3 ? i : 0xff, base + 128 * i + 32, base + 128 * i + 38);
  }
  const got = lookup(x, 100, 7);
  assert.deepEqual(got, lookup(orig, 100, 7));
  assert.deepEqual(got.slice(0, 4), [254, 1 % 7, 2 % 7, 254]);
  const c = x.wasmap_fn_counters();
  assert.equal(new DataView(x.memory.buffer).getBigUint64(c + 32, true), 34n);
  x.wasmap_fuel.value = 50n; // too little for 100 records
  assert.throws(() => x.wasmap_fn_lookup(100, 7, 0), isRuntimeError);
});

// ---- fuzz ----
/** Where the code section's contents lie (a walk over section headers). */
function codeRange(m: Uint8Array): [number, number] {
  for (let p = 8; p < m.length;) {
    const id = m[p++];
    let size = 0, mul = 1, b: number;
    do { b = m[p++]; size += (b & 0x7f) * mul; mul *= 128; } while (b & 0x80);
    if (id === 10) return [p, p + size];
    p += size;
  }
  throw new Error('test bug: no code section');
}

test('fuzz: mutations give EBADFN, or a module WebAssembly accepts whenever it accepted the input', () => {
  let seed = 0x5eed1234;
  const rnd = (n: number): number => { // mulberry32: reproducible
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
  const bases = [build(), build(sinkSpec()), compileAs(),
    build({ funcs: [COUNT, REC, SPIN, GROW], globals: [[I32, 1, ...i32c(5), 0x0b]], custom: [['x', [1, 2, 3]]] })];
  const codes = bases.map(codeRange);
  let passed = 0, valid = 0;
  for (let iter = 0; iter < 6000; iter++) {
    const base = bases[iter % bases.length], [c0, c1] = codes[iter % bases.length];
    let m: Uint8Array<ArrayBuffer> = Uint8Array.from(base);
    const at = (): number => (rnd(2) ? c0 + rnd(c1 - c0) : 8 + rnd(m.length - 8)); // half of them inside code
    switch (rnd(6)) {
      case 0: for (let k = 1 + rnd(3); k > 0; k--) m[at()] ^= 1 << rnd(8); break;
      case 1: for (let k = 1 + rnd(3); k > 0; k--) m[at()] = rnd(256); break;
      case 2: m = m.subarray(0, rnd(m.length)); break;
      case 3: { const p = at(); m = Uint8Array.from([...m.subarray(0, p), ...Array.from({ length: 1 + rnd(4) }, () => rnd(256)), ...m.subarray(p)]); break; }
      case 4: { const p = at(); m = Uint8Array.from([...m.subarray(0, p), ...m.subarray(p + 1 + rnd(4))]); break; }
      default: m = Uint8Array.from({ length: rnd(64) }, (_, i) => (i < 8 && rnd(2) ? base[i] : rnd(256)));
    }
    const accepted = WebAssembly.validate(m);
    const hex = (): string => Buffer.from(m).toString('hex');
    let out: Uint8Array<ArrayBuffer>;
    try { out = prepareFnModule(m).bytes; } catch (e) {
      if (!(e instanceof WasmapError) || e.code !== 'EBADFN') assert.fail(`iteration ${iter}: ${String(e)}\n${hex()}`);
      // a module WebAssembly accepts may break the ABI, but it is never "malformed" to our decoder
      if (accepted && /malformed|truncated|runs past/.test(e.message)) assert.fail(`iteration ${iter}: decoder disagrees with WebAssembly: ${e.message}\n${hex()}`);
      continue;
    }
    passed++;
    if (accepted) valid++;
    if (accepted && !WebAssembly.validate(out)) assert.fail(`iteration ${iter}: instrumentation broke a valid module\n${hex()}`);
  }
  assert.ok(passed > 100 && valid > 50, `enough mutations get through to test something (${passed}, ${valid} valid)`);
});

// ---- hostile modules (issue #15, findings 4 and 5) ----
/** Runs f with a wall-clock limit (node:vm interrupts WebAssembly too); the elapsed ms, or the
 *  limit's error: a test of a module that should stop must not hang when it does not. */
function timed(limitMs: number, f: () => unknown): { ms: number; error: unknown } {
  const ctx = createContext({ f });
  const t0 = performance.now();
  let error: unknown = null;
  try { new Script('f()').runInContext(ctx, { timeout: limitMs }); } catch (e) { error = e; }
  const ms = performance.now() - t0;
  if ((error as { code?: string })?.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') assert.fail(`still running after ${limitMs} ms: fuel did not stop it`);
  return { ms, error };
}

/** What FnInstance does at setup: touch every page once (a first touch is a page fault). */
function prefault(x: Exports): void {
  const u = new Uint8Array(x.memory.buffer);
  for (let i = 0; i < u.length; i += 4096) u[i] = 0;
}

test('finding 4: a module invalid on its own (global.set of a global it does not declare) is refused, not given the fuel counter', () => {
  for (const [name, m] of [['global.set 0, no globals', H.selfRefuel()], ['global.set 1, one global', H.selfRefuelPastGlobals()]] as const) {
    assert.equal(WebAssembly.validate(m), false, `${name}: the test module is invalid on its own`);
    assertWasmapError(() => prepareFnModule(m), 'EBADFN', 'global');
  }
  refused(H.exportsMissingGlobal(), 'export g names global 0, which does not exist');
  // invalid in ways our decoder does not look at: WebAssembly's verdict on the input is final
  refused(build({ funcs: [{ name: 'bad', sig: [[], [I32]], code: [0x42, 1] }] }), 'not valid WebAssembly'); // i64 where i32 is due
  refused(build({ funcs: [{ name: 'bad', sig: [[], []], code: [0x20, 5, 0x1a] }] }), 'not valid WebAssembly'); // local 5 of 0
});

test('finding 4: a valid module\'s own global is not the fuel counter: refilling it in a loop still runs out of fuel', () => {
  const refill: Func = { name: 'refill', sig: [[], []], code: [0x03, 0x40, ...i64c(1n << 50n), 0x24, 0, 0x0c, 0, 0x0b] };
  const m = build({ funcs: [refill], globals: [[I64, 1, ...i64c(0n), 0x0b]], exports: [['g0', 3, 0]] });
  assert.ok(WebAssembly.validate(m));
  const x = instantiate(prepareFnModule(m).bytes);
  x.wasmap_fuel.value = 1000n;
  const { error } = timed(3000, () => x.refill());
  assert.ok(error instanceof WebAssembly.RuntimeError && x.wasmap_fuel.value < 0n, String(error));
  assert.equal(x.g0.value, 1n << 50n, 'it set its own global');
  assert.notEqual(x.g0, x.wasmap_fuel);
});

test('finding 5: bulk memory and table operations are charged by length — a 16 MiB fill loop stops within the batch bound', () => {
  for (const op of ['fill', 'copy', 'init', 'table.fill', 'table.copy', 'grow'] as const) {
    const x = instantiate(prepareFnModule(H.bulkLoop(op, op.startsWith('table') ? 65536 : 16 << 20)).bytes);
    prefault(x);
    for (const n of [1, 1024]) {
      x.wasmap_fuel.value = fnFuelFor(n);
      const { ms, error } = timed(3000, () => x.wasmap_fn_lookup(n, 2, 0));
      assert.ok(error instanceof WebAssembly.RuntimeError && x.wasmap_fuel.value < 0n, `${op}, batch of ${n}: out of fuel (${String(error)})`);
      assert.ok(ms < 100, `${op}, batch of ${n}: stopped after ${ms.toFixed(1)} ms, want well under 100 (the documented ~7 ms)`);
    }
  }
  // the charge is by length: a small fill costs little (one unit per 8 bytes), a large one much
  const x = instantiate(prepareFnModule(H.bulkLoop('fill', 800)).bytes);
  x.wasmap_fuel.value = 100_000n;
  assert.throws(() => x.wasmap_fn_lookup(1, 2, 0), isRuntimeError);
  // 100 000 units: passes of 100 (the 800-byte fill) + the charge and 6 instructions
  assert.ok(x.wasmap_fuel.value < 0n);
});

test('finding 5: a long straight-line function called in a loop is charged for every instruction, not once per call', () => {
  const x = instantiate(prepareFnModule(H.straightLine(4_500)).bytes);
  x.wasmap_fuel.value = 10n;
  assert.throws(() => x.wasmap_fn_lookup(1024, 2, 0), isRuntimeError); // the first call compiles it (lazily): not timed
  x.wasmap_fuel.value = fnFuelFor(1024);
  const { ms, error } = timed(3000, () => x.wasmap_fn_lookup(1024, 2, 0));
  assert.ok(error instanceof WebAssembly.RuntimeError && x.wasmap_fuel.value < 0n, String(error));
  assert.ok(ms < 100, `stopped after ${ms.toFixed(1)} ms`);
});

test('limits: module size, table count and size (capped maximum), unknown table element types', () => {
  refused(new Uint8Array(FN_MAX_BYTES + 1), `at most ${FN_MAX_BYTES}`);
  refused(H.straightLine(5_000), 'code is', `at most ${FN_MAX_CODE}`); // 35 KB of code
  prepareFnModule(H.straightLine(4_500)); // 31.5 KB
  refused(H.hugeTable(), '10000000 entries', `at most ${FN_MAX_TABLE}`);
  prepareFnModule(H.hugeTable(FN_MAX_TABLE));
  refused(H.manyTables(FN_MAX_TABLES + 1), `at most ${FN_MAX_TABLES}`);
  // a table that may grow without bound is capped like the memory
  const grow: Func = { name: 'tgrow', sig: [[I32], [I32]], code: [0xd0, FUNCREF, 0x20, 0, 0xfc, 15, 0] };
  const x = prepared({ funcs: [grow], tables: [[FUNCREF, 0, 1]] });
  x.wasmap_fuel.value = 1n << 40n;
  assert.equal(x.tgrow(FN_MAX_TABLE - 1), 1);
  assert.equal(x.tgrow(1), -1, 'past FN_MAX_TABLE: refused like a memory past its cap');
});

test('a stack overflow (deep recursion with big frames) is a RangeError the host catches; the instance lives on', () => {
  const x = instantiate(prepareFnModule(H.bigFrameRecursion()).bytes);
  x.wasmap_fuel.value = fnFuelFor(1024);
  assert.throws(() => x.wasmap_fn_lookup(1, 2, 0), RangeError);
  assert.ok(x.wasmap_fuel.value > 0n, 'the stack ran out, not the fuel');
  x.wasmap_fuel.value = 100n;
  assert.equal(x.wasmap_fn_version(), 1);
});
