// The example forwarding functions (examples/fn/*.ts, built by src/tools/build-examples.mjs into
// build/examples/), driven here exactly as the switch drives them (docs/forwarding-functions.md):
// records written with decision 255 and flags 0, a lookup call, then every record checked for
// a valid decision and an intact record before the example-specific expectations. Frames are
// built and checksummed here, independently of the modules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { same, macB, ip4, ipStr, be16, put16, put32, station, BCAST, onesSum, ipChecksum, ether, type Ip, TCP, UDP, ICMP, ipFrame, Rng } from '../frames.js';

const NOW = 1_000_000;
const FLOOD = 254;
const DROP = 255;
const REWRITE = 0x1;
const NS_NO_LEARN = 0x8;
const RECORD = 128;
const MAX_BATCH = 1024;
const MAX_HDR = 96;
const EXAMPLES = ['forward-other', 'l2-learn', 'router', 'acl', 'vlan', 'lb'];

// ---- the ABI, from the switch's side ----

interface FnExports {
  memory: WebAssembly.Memory;
  wasmap_fn_version(): number;
  wasmap_fn_batch(): number;
  wasmap_fn_lookup(n: number, nports: number, now: number): number;
  wasmap_fn_config_buf?(len: number): number;
  wasmap_fn_config?(ptr: number, len: number): number;
  wasmap_fn_counters?(): number;
}

/** A frame handed to the function: where it came from and the slot flags it had. */
interface In { src: number; frame: Uint8Array; slotFlags?: number }
/** What became of it: the decision, the record's flags and header length, and the frame as the switch would send it. */
interface Out { decision: number; flags: number; hlen: number; frame: Uint8Array }

function wasmPath(name: string): URL {
  // the test runs from build/tests/unit/fn-examples.test.mjs; the modules are in build/examples/
  return new URL(`../../examples/${name}.wasm`, import.meta.url);
}

class Fn {
  readonly module: WebAssembly.Module;
  readonly ex: FnExports;
  constructor(readonly name: string) {
    const path = wasmPath(name);
    assert.ok(existsSync(path), `${fileURLToPath(path)} is missing: run node src/tools/build-examples.mjs`);
    this.module = new WebAssembly.Module(readFileSync(path));
    this.ex = new WebAssembly.Instance(this.module, {}).exports as unknown as FnExports;
  }
  get mem(): Uint8Array { return new Uint8Array(this.ex.memory.buffer); }
  get view(): DataView { return new DataView(this.ex.memory.buffer); }

  /** Apply a configuration (an object is sent as JSON) the way the loader does; the function's answer. */
  config(c: unknown): number {
    const text = Buffer.from(typeof c === 'string' ? c : JSON.stringify(c), 'utf8');
    assert.ok(this.ex.wasmap_fn_config_buf && this.ex.wasmap_fn_config, `${this.name} takes no configuration`);
    const ptr = this.ex.wasmap_fn_config_buf(text.length);
    assert.ok(ptr > 0 && ptr + text.length <= this.mem.length, `config buffer ${ptr} for ${text.length} bytes`);
    this.mem.set(text, ptr);
    return this.ex.wasmap_fn_config(ptr, text.length);
  }
  configOk(c: unknown): void { assert.equal(this.config(c), 0, `${this.name} refused ${typeof c === 'string' ? c : JSON.stringify(c)}`); }

  /** One batch: write the records as the switch does, look up, check and read them back. */
  run(frames: In[], nports: number, now = NOW): Out[] {
    assert.ok(frames.length <= MAX_BATCH);
    const base = this.ex.wasmap_fn_batch();
    let mem = this.mem;
    const ins: Uint8Array[] = [];
    frames.forEach((f, i) => {
      const r = base + i * RECORD;
      const hlen = Math.min(f.frame.length, MAX_HDR);
      const rec = new Uint8Array(RECORD);
      const dv = new DataView(rec.buffer);
      rec[0] = f.src;
      rec[1] = DROP;
      dv.setUint16(2, f.frame.length, true);
      dv.setUint16(4, hlen, true);
      dv.setUint16(6, 0, true);
      dv.setUint16(8, f.slotFlags ?? 0, true);
      rec.set(f.frame.subarray(0, hlen), 32);
      mem.set(rec, r);
      ins.push(rec);
    });
    assert.equal(this.ex.wasmap_fn_lookup(frames.length, nports, now), 0, `${this.name}: lookup failed`);
    mem = this.mem;
    return frames.map((f, i) => {
      const r = base + i * RECORD;
      const rec = mem.slice(r, r + RECORD);
      const dv = new DataView(rec.buffer);
      const inRec = ins[i];
      const inHlen = Math.min(f.frame.length, MAX_HDR);
      const decision = rec[1], flags = dv.getUint16(6, true), hlen = dv.getUint16(4, true);
      // what the switch checks, and the fields the function must leave alone
      assert.ok(decision < nports || decision === FLOOD || decision === DROP, `${this.name}: bad decision ${decision} (nports ${nports})`);
      assert.equal(flags & ~REWRITE, 0, 'only REWRITE may be set');
      if (rec[0] !== inRec[0] || dv.getUint16(2, true) !== f.frame.length || dv.getUint16(8, true) !== (f.slotFlags ?? 0)) assert.fail('input fields changed');
      if (!rec.subarray(12, 32).every((b) => b === 0)) assert.fail('reserved bytes stay zero');
      const replaced = dv.getUint16(10, true) || inHlen;
      let frame = f.frame;
      if (flags & REWRITE) {
        assert.ok(hlen <= MAX_HDR, `rewritten header of ${hlen} bytes`);
        assert.ok(replaced <= inHlen, `replaces ${replaced} of ${inHlen} header bytes`);
        frame = new Uint8Array(hlen + f.frame.length - replaced);
        frame.set(rec.subarray(32, 32 + hlen));
        frame.set(f.frame.subarray(replaced), hlen);
        assert.ok(frame.length >= 14, 'a rewrite leaves at least an Ethernet header');
      } else {
        assert.equal(dv.getUint16(10, true), 0, 'bytes replaced stays 0 without REWRITE');
        assert.equal(hlen, inHlen, 'header length unchanged without REWRITE');
        if (!same(rec.subarray(32, 32 + hlen), f.frame.subarray(0, hlen))) assert.fail('header changed without REWRITE');
      }
      return { decision, flags, hlen, frame };
    });
  }
  one(f: In, nports: number, now = NOW): Out { return this.run([f], nports, now)[0]; }

  counters(): Record<string, bigint> {
    assert.ok(this.ex.wasmap_fn_counters, `${this.name} has no counters`);
    const p = this.ex.wasmap_fn_counters();
    const dv = this.view;
    const n = dv.getUint32(p, true);
    assert.equal(dv.getUint32(p + 4, true), 0);
    const out: Record<string, bigint> = {};
    for (let i = 0; i < n; i++) {
      const e = p + 8 + 32 * i;
      const nameBytes = this.mem.subarray(e, e + 24);
      const end = nameBytes.indexOf(0);
      assert.ok(end > 0, 'a NUL-terminated name');
      assert.ok(nameBytes.subarray(end).every((b) => b === 0), 'NUL-padded');
      const name = Buffer.from(nameBytes.subarray(0, end)).toString('ascii');
      assert.ok(!(name in out), `counter ${name} twice`);
      out[name] = dv.getBigUint64(e + 24, true);
    }
    return out;
  }

  /** Run `f`; its result and the counters that changed, with how much. */
  counted<T>(f: () => T): [T, Record<string, number>] {
    const before = this.counters();
    const value = f();
    const after = this.counters();
    const d: Record<string, number> = {};
    for (const k of Object.keys(after)) if (after[k] !== (before[k] ?? 0n)) d[k] = Number(after[k] - (before[k] ?? 0n));
    return [value, d];
  }
  delta(f: () => unknown): Record<string, number> { return this.counted(f)[1]; }

  /** The frame is dropped, untouched, and counted once under `reason`. */
  expectDrop(f: In, nports: number, reason: string, now = NOW): void {
    const [o, d] = this.counted(() => this.one(f, nports, now));
    assert.deepEqual(d, { [reason]: 1 }, `${this.name}: counted as ${reason}`);
    assert.equal(o.decision, DROP, `${this.name}: ${reason} is dropped`);
    assert.equal(o.flags, 0);
  }
}

// ---- frames: tests/frames.ts ----

/** The memory section of a module: its limits and whether it is shared (parsed from the binary). */
function memorySection(bytes: Uint8Array): { min: number; max?: number; shared: boolean; imports: boolean } {
  let p = 8;
  const leb = (): number => { let v = 0, s = 0, b: number; do { b = bytes[p++]; v += (b & 0x7f) * 2 ** s; s += 7; } while (b & 0x80); return v; };
  let imports = false;
  let mem: { min: number; max?: number; shared: boolean } | undefined;
  while (p < bytes.length) {
    const id = bytes[p++];
    const size = leb();
    const end = p + size;
    if (id === 2) imports = true;
    if (id === 5) {
      assert.equal(leb(), 1, 'one memory');
      const flags = bytes[p++];
      const min = leb();
      mem = { min, max: flags & 1 ? leb() : undefined, shared: (flags & 2) !== 0 };
    }
    p = end;
  }
  assert.ok(mem, 'a memory section (the memory is defined, not imported)');
  return { ...mem, imports };
}

// ---- every module ----

for (const name of EXAMPLES) {
  test(`${name}: no imports, its own unshared memory of at most 256 pages, ABI version 1, a batch area that fits`, () => {
    const fn = new Fn(name);
    assert.deepEqual(WebAssembly.Module.imports(fn.module), []);
    const m = memorySection(readFileSync(wasmPath(name)));
    assert.equal(m.imports, false, 'no import section at all');
    assert.equal(m.shared, false, 'not shared');
    assert.ok(m.min <= 256 && m.max !== undefined && m.max <= 256, `memory ${m.min}..${m.max} pages`);
    assert.ok(fn.ex.memory.buffer instanceof ArrayBuffer);
    const exports = WebAssembly.Module.exports(fn.module);
    assert.ok(exports.some((e) => e.name === 'memory' && e.kind === 'memory'));
    for (const e of ['wasmap_fn_version', 'wasmap_fn_batch', 'wasmap_fn_lookup']) assert.ok(exports.some((x) => x.name === e && x.kind === 'function'), e);
    assert.equal(fn.ex.wasmap_fn_version(), 1);
    const batch = fn.ex.wasmap_fn_batch();
    assert.ok(batch > 0 && batch + MAX_BATCH * RECORD <= fn.ex.memory.buffer.byteLength, `batch area at ${batch}`);
    assert.equal(fn.ex.wasmap_fn_lookup(0, 4, NOW), 0, 'an empty batch');
    assert.ok(fn.ex.wasmap_fn_lookup(MAX_BATCH + 1, 4, NOW) < 0, 'more records than the area holds fail the batch');
    assert.ok(fn.ex.wasmap_fn_lookup(-1, 4, NOW) < 0);
    if (name !== 'forward-other') {
      assert.ok(fn.ex.wasmap_fn_config && fn.ex.wasmap_fn_config_buf && fn.ex.wasmap_fn_counters, 'configurable, with counters');
      for (const bad of ['', '{', '{"a":}', 'null', '[]', '{} x', '{"x":1}', '{,}', '{"a":1,}']) {
        assert.ok(fn.config(bad) < 0, `refuses ${JSON.stringify(bad)}`);
      }
    }
  });
}

// ---- forward-other ----

test('forward-other: 0↔1, 2↔3; a partner beyond nports is a drop; the frame is untouched', () => {
  const fn = new Fn('forward-other');
  const f = ether(BCAST, station(1), 0x88b5);
  const got = fn.run([0, 1, 2, 3, 4].map((src) => ({ src, frame: f })), 4);
  assert.deepEqual(got.map((o) => o.decision), [1, 0, 3, 2, DROP]);
  assert.deepEqual(fn.run([{ src: 2, frame: f }], 3).map((o) => o.decision), [DROP], 'port 3 not attached');
  for (const o of got) { assert.equal(o.flags, 0); assert.deepEqual(o.frame, f); }
  assert.equal(fn.one({ src: 253, frame: ether(BCAST, station(1), 0x88b5, 1514) }, 254).decision, 252);
});

test('forward-other: batches of 1 and 1024', () => {
  const fn = new Fn('forward-other');
  const rng = new Rng(7);
  assert.equal(fn.one({ src: 6, frame: ether(BCAST, station(2), 0x0800, 1514) }, 8).decision, 7);
  const batch = Array.from({ length: MAX_BATCH }, () => ({ src: rng.int(10), frame: ether(station(rng.int(100)), station(rng.int(100)), 0x0800, 14 + rng.int(1500)) }));
  const got = fn.run(batch, 9);
  got.forEach((o, i) => assert.equal(o.decision, (batch[i].src ^ 1) < 9 ? batch[i].src ^ 1 : DROP));
});

// ---- l2-learn ----

const A = station(0xa), B = station(0xb), C = station(0xc);

test('l2-learn: broadcast and unknown destinations flood; learned ones go to their port; the same port is a drop', () => {
  const fn = new Fn('l2-learn');
  const np = 4;
  assert.deepEqual(fn.delta(() => assert.equal(fn.one({ src: 0, frame: ether(BCAST, A, 0x0806) }, np).decision, FLOOD)), { flooded: 1 });
  assert.equal(fn.one({ src: 1, frame: ether(B, C, 0x0800) }, np).decision, FLOOD, 'B unknown');
  assert.equal(fn.one({ src: 1, frame: ether('01:00:5e:00:00:01', B, 0x0800) }, np).decision, FLOOD, 'multicast');
  assert.equal(fn.one({ src: 1, frame: ether('33:33:00:00:00:01', B, 0x86dd) }, np).decision, FLOOD, 'IPv6 multicast');
  assert.deepEqual(fn.delta(() => assert.equal(fn.one({ src: 1, frame: ether(A, B, 0x0800) }, np).decision, 0)), { forwarded: 1 });
  assert.equal(fn.one({ src: 0, frame: ether(B, A, 0x0800, 1514) }, np).decision, 1);
  assert.equal(fn.one({ src: 2, frame: ether(C, A, 0x0800) }, np).decision, 1, 'C was learned on 1 (from the frame to B)');
  fn.expectDrop({ src: 1, frame: ether(C, B, 0x0800) }, np, 'drop_same_port'); // C and B are both on 1
});

test('l2-learn: a station that moves is followed; NS_NO_LEARN and group source MACs are not learned; runts dropped', () => {
  const fn = new Fn('l2-learn');
  const np = 4;
  fn.one({ src: 0, frame: ether(BCAST, A, 0x0800) }, np);
  assert.equal(fn.one({ src: 1, frame: ether(A, B, 0x0800) }, np).decision, 0);
  fn.one({ src: 3, frame: ether(BCAST, A, 0x0800) }, np);
  assert.equal(fn.one({ src: 1, frame: ether(A, B, 0x0800) }, np).decision, 3, 'A moved to 3');
  fn.expectDrop({ src: 1, frame: ether(B, station(0x1b), 0x0800) }, np, 'drop_same_port');
  // C sends with NS_NO_LEARN: still forwarded, but nobody can reach it by name
  assert.equal(fn.one({ src: 2, frame: ether(B, C, 0x0800), slotFlags: NS_NO_LEARN }, np).decision, 1);
  assert.equal(fn.one({ src: 0, frame: ether(C, A, 0x0800) }, np).decision, FLOOD);
  // a group source address is nobody's (its unicast twin stays unknown)
  fn.one({ src: 2, frame: ether(B, '03:00:00:00:00:0d', 0x0800) }, np);
  assert.equal(fn.one({ src: 0, frame: ether('02:00:00:00:00:0d', A, 0x0800) }, np).decision, FLOOD);
  fn.expectDrop({ src: 0, frame: ether(B, A, 0x0800).subarray(0, 13) }, np, 'drop_runt');
  assert.equal(fn.one({ src: 0, frame: ether(B, A, 0x0800, 14) }, np).decision, 1, 'a bare Ethernet header is enough');
});

test('l2-learn: entries age out after 300 s, or the configured age; a refresh restarts the clock', () => {
  const fn = new Fn('l2-learn');
  const np = 2;
  fn.one({ src: 0, frame: ether(BCAST, A, 0x0800) }, np, NOW);
  assert.equal(fn.one({ src: 1, frame: ether(A, B, 0x0800) }, np, NOW + 299).decision, 0);
  assert.equal(fn.one({ src: 1, frame: ether(A, B, 0x0800) }, np, NOW + 300).decision, FLOOD);
  fn.configOk({ age: 10 });
  fn.one({ src: 0, frame: ether(BCAST, A, 0x0800) }, np, NOW);
  fn.one({ src: 0, frame: ether(BCAST, A, 0x0800) }, np, NOW + 8); // refresh
  assert.equal(fn.one({ src: 1, frame: ether(A, B, 0x0800) }, np, NOW + 17).decision, 0);
  assert.equal(fn.one({ src: 1, frame: ether(A, B, 0x0800) }, np, NOW + 18).decision, FLOOD);
  fn.configOk(' { "age" : 300 } ');
  for (const bad of [{ age: 0 }, { age: -5 }, { age: 1.5 }, { age: '10' }, { age: 10, x: 1 }, { aeg: 10 }]) assert.ok(fn.config(bad) < 0, JSON.stringify(bad));
});

test('l2-learn: a learned port that is no longer attached (nports shrank) is flooded, never named', () => {
  const fn = new Fn('l2-learn');
  fn.one({ src: 5, frame: ether(BCAST, A, 0x0800) }, 6);
  assert.equal(fn.one({ src: 0, frame: ether(A, B, 0x0800) }, 6).decision, 5);
  assert.equal(fn.one({ src: 0, frame: ether(A, B, 0x0800) }, 5).decision, FLOOD);
  assert.equal(fn.one({ src: 0, frame: ether(A, B, 0x0800) }, 6).decision, FLOOD, 'the table was flushed when the ports changed');
});

test('l2-learn: batches of 1 and 1024 (1024 stations learned in one batch, then reached in another)', () => {
  const fn = new Fn('l2-learn');
  const np = 8;
  assert.equal(fn.one({ src: 3, frame: ether(BCAST, station(5000), 0x0800) }, np).decision, FLOOD);
  const learnBatch = Array.from({ length: MAX_BATCH }, (_, i) => ({ src: i % np, frame: ether(BCAST, station(i), 0x0800) }));
  assert.ok(fn.run(learnBatch, np).every((o) => o.decision === FLOOD));
  const rng = new Rng(3);
  const senders = Array.from({ length: MAX_BATCH }, () => rng.int(np));
  const got = fn.run(senders.map((src, i) => ({ src, frame: ether(station(i), station(9000 + i), 0x0800) })), np);
  let forwarded = 0;
  got.forEach((o, i) => {
    const want = i % np === senders[i] ? DROP : i % np;
    // replace-on-collision: a station whose bucket another one took is flooded instead
    assert.ok(o.decision === want || o.decision === FLOOD, `station ${i}: ${o.decision}`);
    if (o.decision === want) forwarded++;
  });
  assert.ok(forwarded >= MAX_BATCH * 0.9, `${forwarded} of ${MAX_BATCH} stations still in the 4096-bucket table`);
});

// ---- router ----

const R = ['02:00:00:00:ff:00', '02:00:00:00:ff:01', '02:00:00:00:ff:02', '02:00:00:00:ff:03'];
const NH = ['02:00:00:01:00:00', '02:00:00:01:00:01', '02:00:00:01:00:02', '02:00:00:01:00:03', '02:00:00:01:00:04'];
const ROUTER = {
  ports: R.map((mac, port) => ({ port, mac })),
  routes: [
    { prefix: '10.1.0.0/16', port: 1, via: NH[1] },
    { prefix: '10.1.2.0/24', port: 2, via: NH[2] },
    { prefix: '10.1.2.128/25', port: 3, via: NH[3] },
    { prefix: '10.1.2.200/32', port: 1, via: NH[4] },
    { prefix: '192.168.0.0/16', port: 0, via: NH[0] },
  ],
};

/** The frame the router should send: new MACs, TTL − 1, a checksum recomputed from scratch, the rest unchanged. */
function routed(f: Uint8Array, via: string, portMac: string): Uint8Array {
  const w = f.slice();
  w.set(macB(via)); w.set(macB(portMac), 6);
  w[22]--;
  const ihl = (w[14] & 15) * 4;
  put16(w, 24, ipChecksum(w.subarray(14, 14 + ihl)));
  return w;
}

test('router: longest prefix wins; MACs rewritten, TTL − 1, checksum right (recomputed here), the rest untouched', () => {
  const fn = new Fn('router');
  fn.configOk(ROUTER);
  const np = 4;
  const cases: [string, number, number][] = [
    ['10.1.9.9', 1, 1], ['10.1.2.1', 2, 2], ['10.1.2.127', 2, 2], ['10.1.2.128', 3, 3], ['10.1.2.201', 3, 3],
    ['10.1.2.200', 1, 4], ['10.1.255.255', 1, 1], ['192.168.77.1', 0, 0],
  ];
  for (const [dst, port, nh] of cases) {
    for (const len of [60, 96, 97, 1514]) {
      const f = ipFrame({ dmac: R[0], dst, len, ttl: 64, src: '172.16.0.9', proto: TCP });
      const [o, d] = fn.counted(() => fn.one({ src: 0, frame: f }, np));
      assert.deepEqual(d, { forwarded: 1 });
      assert.equal(o.decision, port, `${dst} → port ${port}`);
      assert.equal(o.flags, REWRITE);
      assert.equal(o.hlen, Math.min(len, MAX_HDR), 'same header length');
      const want = routed(f, NH[nh], R[port]);
      assert.deepEqual(o.frame, want, `${dst}, ${len} bytes: the whole frame`);
      assert.equal(o.frame[22], 63);
      assert.equal(onesSum(o.frame.subarray(14, 34)), 0xffff, 'the header verifies');
    }
  }
  // from another port, with IP options (IHL 6..15), TTL 2 (leaves with 1)
  for (const ihl of [6, 15]) {
    const f = ipFrame({ dmac: R[3], dst: '10.1.2.5', ihl, ttl: 2, len: 200 });
    const o = fn.one({ src: 3, frame: f }, np);
    assert.equal(o.decision, 2);
    assert.deepEqual(o.frame, routed(f, NH[2], R[2]));
    assert.equal(o.frame[22], 1);
  }
});

test('router: the incremental checksum (RFC 1624) is right across every ID, including when the new checksum is 0x0000', () => {
  const fn = new Fn('router');
  fn.configOk(ROUTER);
  const frames: In[] = [];
  let zero = -1;
  for (let id = 0; id < 65536; id++) {
    const f = ipFrame({ dmac: R[0], dst: '10.1.2.3', id, ttl: 2 + (id % 254) });
    if (ipChecksum(routed(f, NH[2], R[2]).subarray(14, 34)) === 0 && zero < 0) zero = id;
    frames.push({ src: 0, frame: f });
  }
  assert.ok(zero >= 0, 'some ID makes the new checksum 0x0000');
  for (let i = 0; i < frames.length; i += MAX_BATCH) {
    const part = frames.slice(i, i + MAX_BATCH);
    fn.run(part, 4).forEach((o, k) => {
      assert.equal(o.decision, 2);
      const want = routed(part[k].frame, NH[2], R[2]);
      if (be16(o.frame, 24) !== be16(want, 24)) assert.fail(`ID ${i + k}: checksum ${be16(o.frame, 24).toString(16)}, want ${be16(want, 24).toString(16)}`);
    });
  }
  assert.equal(be16(fn.one(frames[zero], 4).frame, 24), 0, `ID ${zero}: 0x0000, not 0xffff`);
});

test('router: every drop reason, counted once each, frame untouched', () => {
  const fn = new Fn('router');
  fn.configOk(ROUTER);
  const np = 4;
  const ok = { dmac: R[0], dst: '10.1.2.3' };
  assert.equal(fn.one({ src: 0, frame: ipFrame(ok) }, np).decision, 2, 'the baseline is routed');
  fn.expectDrop({ src: 0, frame: ipFrame(ok).subarray(0, 13) }, np, 'drop_runt');
  fn.expectDrop({ src: 4, frame: ipFrame(ok) }, 6, 'drop_unconfigured_port');
  fn.expectDrop({ src: 0, frame: ipFrame({ ...ok, dmac: R[1] }) }, np, 'drop_not_for_us');
  fn.expectDrop({ src: 0, frame: ipFrame({ ...ok, dmac: '01:00:5e:00:00:05' }) }, np, 'drop_not_for_us');
  fn.expectDrop({ src: 0, frame: ipFrame({ ...ok, dmac: BCAST }) }, np, 'drop_l2_broadcast');
  fn.expectDrop({ src: 0, frame: ether(BCAST, station(1), 0x0806) }, np, 'drop_arp');
  fn.expectDrop({ src: 0, frame: ether(R[0], station(1), 0x0806) }, np, 'drop_arp');
  fn.expectDrop({ src: 0, frame: ether(R[0], station(1), 0x86dd) }, np, 'drop_not_ipv4');
  fn.expectDrop({ src: 0, frame: ipFrame({ ...ok, version: 6 }) }, np, 'drop_not_ipv4');
  fn.expectDrop({ src: 0, frame: ipFrame(ok).subarray(0, 33) }, np, 'drop_not_ipv4');
  fn.expectDrop({ src: 0, frame: ipFrame({ ...ok, ihl: 4 }) }, np, 'drop_bad_ihl');
  fn.expectDrop({ src: 0, frame: ipFrame({ ...ok, ihl: 15, len: 73 }) }, np, 'drop_bad_ihl');
  fn.expectDrop({ src: 0, frame: ipFrame({ ...ok, badSum: true }) }, np, 'drop_bad_checksum');
  fn.expectDrop({ src: 0, frame: ipFrame({ ...ok, ttl: 1 }) }, np, 'drop_ttl_expired');
  fn.expectDrop({ src: 0, frame: ipFrame({ ...ok, ttl: 0 }) }, np, 'drop_ttl_expired');
  fn.expectDrop({ src: 0, frame: ipFrame({ ...ok, dst: '10.2.0.1' }) }, np, 'drop_no_route');
  fn.expectDrop({ src: 0, frame: ipFrame({ ...ok, dst: '10.1.2.129' }) }, 3, 'drop_port_down');
  assert.equal(fn.one({ src: 0, frame: ipFrame({ ...ok, ihl: 15, len: 74 }) }, np).decision, 2, 'IHL 15 in 74 bytes fits');
});

test('router: refuses bad configurations (and then routes nothing); a default route matches everything', () => {
  const fn = new Fn('router');
  const port0 = { port: 0, mac: R[0] };
  const route = (r: object) => ({ ports: [port0, { port: 1, mac: R[1] }], routes: [{ prefix: '10.0.0.0/8', port: 1, via: NH[1], ...r }] });
  fn.configOk(route({}));
  for (const prefix of ['10.0.0.0/33', '10.0.0.1/8', '10.0.0/8', '300.0.0.0/8', '10.0.0.0/', '10.0.0.0/8/8', '10.0.0.0.0/8', '', 'x', '10.0.0.0 /8']) {
    assert.ok(fn.config(route({ prefix })) < 0, `prefix ${JSON.stringify(prefix)}`);
  }
  for (const via of ['02:00:00:00:00', '02:00:00:00:00:0g', '02-00-00-00-00-01', '02:00:00:00:00:01:02']) assert.ok(fn.config(route({ via })) < 0, `via ${via}`);
  assert.ok(fn.config(route({ port: 2 })) < 0, 'a route out of a port without a MAC');
  assert.ok(fn.config(route({ port: 254 })) < 0);
  assert.ok(fn.config(route({ metric: 1 })) < 0, 'unknown key');
  assert.ok(fn.config({ ports: [port0], routes: [{ prefix: '10.0.0.0/8', port: 0 }] }) < 0, 'no via');
  assert.ok(fn.config({ ports: [{ port: 0, mac: '03:00:00:00:00:01' }] }) < 0, 'a group MAC of its own');
  assert.ok(fn.config({ ports: [{ port: 0 }] }) < 0);
  assert.ok(fn.config({ ports: {} }) < 0);
  fn.expectDrop({ src: 0, frame: ipFrame({ dmac: R[0], dst: '10.1.2.3' }) }, 2, 'drop_unconfigured_port');
  fn.configOk({ ports: [port0], routes: [] });
  fn.expectDrop({ src: 0, frame: ipFrame({ dmac: R[0], dst: '10.1.2.3' }) }, 2, 'drop_no_route');
  fn.configOk({ ports: [port0, { port: 1, mac: R[1] }], routes: [{ prefix: '0.0.0.0/0', port: 1, via: NH[0] }, { prefix: '10.0.0.0/8', port: 0, via: NH[1] }, { prefix: '10.0.0.0/8', port: 0, via: NH[2] }] });
  for (const dst of ['0.0.0.0', '9.255.255.255', '11.0.0.0', '255.255.255.255']) assert.equal(fn.one({ src: 0, frame: ipFrame({ dmac: R[0], dst }) }, 2).decision, 1, dst);
  const o = fn.one({ src: 0, frame: ipFrame({ dmac: R[0], dst: '10.200.0.1' }) }, 2);
  assert.deepEqual([o.decision, [...o.frame.subarray(0, 6)]], [0, macB(NH[2])], 'of two equal prefixes the later one');
});

test('router: batches of 1 and 1024', () => {
  const fn = new Fn('router');
  fn.configOk(ROUTER);
  assert.equal(fn.one({ src: 1, frame: ipFrame({ dmac: R[1], dst: '192.168.1.1' }) }, 4).decision, 0);
  const rng = new Rng(11);
  const frames = Array.from({ length: MAX_BATCH }, (_, i) => ({ src: i & 3, frame: ipFrame({ dmac: R[i & 3], dst: `10.1.2.${rng.int(256)}`, ttl: 2 + rng.int(250), id: rng.int(65536), len: 60 + rng.int(1400) }) }));
  fn.run(frames, 4).forEach((o, i) => {
    const last = frames[i].frame[33];
    const [port, nh] = last === 200 ? [1, 4] : last >= 128 ? [3, 3] : [2, 2];
    assert.equal(o.decision, port);
    assert.deepEqual(o.frame, routed(frames[i].frame, NH[nh], R[port]));
  });
});

test('router: 10 000 random prefixes against a naive longest-prefix match, 20 000 addresses', (t) => {
  const fn = new Fn('router');
  const rng = new Rng(0x5eed);
  const nports = 8;
  const seen = new Set<string>();
  const pfx: number[] = [], lens: number[] = [], ports: number[] = [];
  while (pfx.length < 10_000) {
    // lengths like a real table: mostly /16../24, a few /8../15, some longer
    const r = rng.int(100);
    const len = r < 5 ? 8 + rng.int(8) : r < 85 ? 16 + rng.int(9) : 25 + rng.int(8);
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    // half of them under a few /8s, so that prefixes nest; half anywhere, so that the trie is wide
    const addr = ((rng.int(2) ? ((rng.int(4) + 10) << 24) | (rng.next() & 0xffffff) : rng.next()) & mask) >>> 0;
    const key = `${addr}/${len}`;
    if (seen.has(key)) continue;
    seen.add(key);
    pfx.push(addr); lens.push(len); ports.push(rng.int(nports));
  }
  const via = (i: number) => `02:01:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
  const config = {
    ports: Array.from({ length: nports }, (_, p) => ({ port: p, mac: `02:00:00:00:fe:${p.toString(16).padStart(2, '0')}` })),
    routes: pfx.map((p, i) => ({ prefix: `${ipStr(p)}/${lens[i]}`, port: ports[i], via: via(i) })),
  };
  fn.configOk(config);
  const masks = Uint32Array.from(lens, (l) => (l === 0 ? 0 : (0xffffffff << (32 - l)) >>> 0));
  const p32 = Uint32Array.from(pfx);
  const naive = (a: number): number => {
    let best = -1;
    for (let i = 0; i < p32.length; i++) if (((a & masks[i]) >>> 0) === p32[i] && (best < 0 || lens[i] > lens[best])) best = i;
    return best;
  };
  const addrs: number[] = [];
  for (let k = 0; k < 20_000; k++) {
    const r = rng.int(3);
    if (r === 0) addrs.push(rng.next()); // anywhere
    else {
      // inside a random prefix, sometimes right at its edges
      const i = rng.int(pfx.length);
      const host = r === 1 ? rng.next() & ~masks[i] : (rng.int(2) ? 0 : ~masks[i]);
      addrs.push((p32[i] | (host & ~masks[i])) >>> 0);
    }
  }
  let matched = 0;
  const before = fn.counters();
  for (let k = 0; k < addrs.length; k += MAX_BATCH) {
    const part = addrs.slice(k, k + MAX_BATCH);
    const got = fn.run(part.map((a) => ({ src: 0, frame: ipFrame({ dmac: config.ports[0].mac, dst: ipStr(a) }) })), nports);
    got.forEach((o, j) => {
      const want = naive(part[j]);
      if (want < 0) { if (o.decision !== DROP) assert.fail(`${ipStr(part[j])}: no route, got port ${o.decision}`); return; }
      matched++;
      const gotVia = [...o.frame.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
      if (o.decision !== ports[want] || gotVia !== via(want)) {
        assert.fail(`${ipStr(part[j])}: want ${ipStr(pfx[want])}/${lens[want]} (route ${want}), got port ${o.decision} via ${gotVia}`);
      }
    });
  }
  const after = fn.counters();
  assert.equal(Number(after.forwarded - before.forwarded), matched);
  assert.equal(Number(after.drop_no_route - before.drop_no_route), addrs.length - matched);
  assert.ok(matched > 12_000 && matched < addrs.length, `${matched} matched: both outcomes are exercised`);
  t.diagnostic(`${matched} of ${addrs.length} addresses routed, ${addrs.length - matched} without a route; trie in ${fn.ex.memory.buffer.byteLength >> 16} pages`);
});

// ---- acl ----

const ACL = {
  rules: [
    { src: '10.0.0.0/8', dst: '192.168.1.0/24', proto: 'udp', sport: '1000-2000', dport: 53, action: 'allow' }, // 0
    { dst: '192.168.1.10', proto: 'tcp', dport: '22', action: 'deny' }, // 1
    { dst: '192.168.1.0/24', proto: 'tcp', dport: '20-25', action: 'allow' }, // 2
    { proto: 'icmp', action: 'allow' }, // 3
    { ethertype: 2054, action: 'allow' }, // 4
    { src: '10.9.0.0/16', action: 'deny' }, // 5
    { proto: 47, action: 'allow' }, // 6
    { src: '10.8.0.0/16', action: 'allow' }, // 7
  ],
  default: 'deny',
  forward: { 0: 1, 1: 0, 2: 9 },
};

interface AclRule { src?: string; dst?: string; proto?: string | number; sport?: string | number; dport?: string | number; ethertype?: number; action: string }

/** The rule set in JS: the index of the first matching rule, -1 for none. */
function aclModel(rules: AclRule[], f: Uint8Array): number {
  const type = be16(f, 12);
  const inPrefix = (a: number, p?: string) => {
    if (!p) return true;
    const [n, l = '32'] = p.split('/');
    const m = +l === 0 ? 0 : (0xffffffff << (32 - +l)) >>> 0;
    return ((a & m) >>> 0) === ip4(n);
  };
  const inRange = (v: number, r?: string | number) => {
    if (r === undefined) return true;
    const [lo, hi = lo] = String(r).split('-').map(Number);
    return v >= lo && v <= hi;
  };
  const protoNum = (p: string | number) => (typeof p === 'number' ? p : { tcp: 6, udp: 17, icmp: 1 }[p]);
  const ihl = (f[14] & 15) * 4;
  const proto = f[23];
  const frag = be16(f, 20) & 0x1fff;
  const hasPorts = (proto === 6 || proto === 17) && frag === 0 && 14 + ihl + 4 <= Math.min(f.length, 96);
  for (let k = 0; k < rules.length; k++) {
    const r = rules[k];
    if ((r.ethertype ?? 0x0800) !== type) continue;
    if (type !== 0x0800) return k;
    const sip = ((f[26] << 24) | (f[27] << 16) | (f[28] << 8) | f[29]) >>> 0, dip = ((f[30] << 24) | (f[31] << 16) | (f[32] << 8) | f[33]) >>> 0;
    if (!inPrefix(sip, r.src) || !inPrefix(dip, r.dst)) continue;
    if (r.proto !== undefined && protoNum(r.proto) !== proto) continue;
    if (r.sport !== undefined || r.dport !== undefined) {
      if (!hasPorts) continue;
      if (!inRange(be16(f, 14 + ihl), r.sport) || !inRange(be16(f, 14 + ihl + 2), r.dport)) continue;
    }
    return k;
  }
  return -1;
}

test('acl: first match wins; prefixes, protocols, port ranges and ethertypes; counters per rule', () => {
  const fn = new Fn('acl');
  fn.configOk(ACL);
  const np = 4;
  const names = Object.keys(fn.counters());
  assert.deepEqual(names.filter((n) => n.startsWith('rule_')), ACL.rules.map((_, k) => `rule_${k}`));
  const dns = { src: '10.1.2.3', dst: '192.168.1.7', proto: UDP, sport: 1500, dport: 53 };
  const cases: [string, Uint8Array, number, Record<string, number>][] = [
    ['dns', ipFrame(dns), 1, { allowed: 1, rule_0: 1 }],
    ['sport 1000', ipFrame({ ...dns, sport: 1000 }), 1, { allowed: 1, rule_0: 1 }],
    ['sport 2000', ipFrame({ ...dns, sport: 2000 }), 1, { allowed: 1, rule_0: 1 }],
    ['sport 999', ipFrame({ ...dns, sport: 999 }), DROP, { default_denied: 1 }],
    ['sport 2001', ipFrame({ ...dns, sport: 2001 }), DROP, { default_denied: 1 }],
    ['dport 54', ipFrame({ ...dns, dport: 54 }), DROP, { default_denied: 1 }],
    ['tcp to 53', ipFrame({ ...dns, proto: TCP }), DROP, { default_denied: 1 }],
    ['src outside', ipFrame({ ...dns, src: '11.0.0.1' }), DROP, { default_denied: 1 }],
    ['dst outside', ipFrame({ ...dns, dst: '192.168.2.7' }), DROP, { default_denied: 1 }],
    ['ssh to .10: rule 1 before rule 2', ipFrame({ dst: '192.168.1.10', proto: TCP, dport: 22 }), DROP, { denied: 1, rule_1: 1 }],
    ['ssh to .11', ipFrame({ dst: '192.168.1.11', proto: TCP, dport: 22 }), 1, { allowed: 1, rule_2: 1 }],
    ['icmp', ipFrame({ proto: ICMP, src: '10.9.0.1' }), 1, { allowed: 1, rule_3: 1 }],
    ['arp', ether(BCAST, station(1), 0x0806), 1, { allowed: 1, rule_4: 1 }],
    ['ipv6', ether(BCAST, station(1), 0x86dd), DROP, { drop_non_ip: 1 }],
    ['10.9/16 udp', ipFrame({ src: '10.9.3.3', dst: '192.168.1.7', sport: 5000 }), DROP, { denied: 1, rule_5: 1 }],
    ['gre', ipFrame({ proto: 47 }), 1, { allowed: 1, rule_6: 1 }],
    ['udp first fragment (MF) has ports', ipFrame({ ...dns, frag: 0x2000 }), 1, { allowed: 1, rule_0: 1 }],
    ['udp later fragment has none', ipFrame({ ...dns, frag: 0x2010 }), DROP, { default_denied: 1 }],
    ['icmp later fragment', ipFrame({ proto: ICMP, frag: 0x0010 }), 1, { allowed: 1, rule_3: 1 }],
    ['options: ports at 74', ipFrame({ ...dns, ihl: 15, len: 1514 }), 1, { allowed: 1, rule_0: 1 }],
    ['ports past the header copy', ipFrame({ ...dns, ihl: 15, len: 76 }), DROP, { default_denied: 1 }],
  ];
  for (const [what, f, want, counted] of cases) {
    const [o, d] = fn.counted(() => fn.one({ src: 0, frame: f }, np));
    assert.deepEqual(d, counted, what);
    assert.equal(o.decision, want, what);
    assert.equal(o.flags, 0);
    const k = aclModel(ACL.rules, f);
    assert.equal(k >= 0 ? `rule_${k}` : 'none', Object.keys(counted).find((c) => c.startsWith('rule_')) ?? 'none', `${what}: the model agrees`);
  }
  assert.equal(fn.one({ src: 1, frame: ipFrame(dns) }, np).decision, 0, 'port 1 forwards to 0');
});

test('acl: drops — no forward entry, forward to a detached port, bad IPv4, runts; default allow; non-IP never defaulted', () => {
  const fn = new Fn('acl');
  fn.configOk(ACL);
  const np = 4;
  const icmp = ipFrame({ proto: ICMP });
  // allowed by rule 3, then nowhere to go: forward 2 → 9 is not attached, 3 has no entry
  for (const src of [2, 3]) {
    const [o, d] = fn.counted(() => fn.one({ src, frame: icmp }, np));
    assert.deepEqual([o.decision, d], [DROP, { rule_3: 1, drop_no_forward: 1 }]);
  }
  fn.expectDrop({ src: 0, frame: ipFrame({ proto: ICMP, ihl: 4 }) }, np, 'drop_bad_ip');
  fn.expectDrop({ src: 0, frame: ipFrame({ proto: ICMP, version: 6 }) }, np, 'drop_bad_ip');
  fn.expectDrop({ src: 0, frame: icmp.subarray(0, 33) }, np, 'drop_bad_ip');
  fn.expectDrop({ src: 0, frame: ipFrame({ proto: ICMP, ihl: 15, len: 70 }) }, np, 'drop_bad_ip');
  fn.expectDrop({ src: 0, frame: icmp.subarray(0, 12) }, np, 'drop_runt');
  assert.equal(fn.one({ src: 2, frame: icmp }, 10).decision, 9, 'once port 9 exists');
  fn.configOk({ rules: [{ proto: 'tcp', action: 'deny' }], default: 'allow', forward: { 0: 1 } });
  assert.equal(fn.one({ src: 0, frame: ipFrame({ proto: UDP }) }, 2).decision, 1, 'default allow');
  assert.deepEqual(fn.delta(() => assert.equal(fn.one({ src: 0, frame: ipFrame({ proto: TCP }) }, 2).decision, DROP)), { denied: 1, rule_0: 1 });
  fn.expectDrop({ src: 0, frame: ether(BCAST, station(1), 0x0806) }, 2, 'drop_non_ip');
  assert.deepEqual(Object.keys(fn.counters()).filter((n) => n.startsWith('rule_')), ['rule_0'], 'per-rule counters follow the configuration');
  fn.configOk({ rules: [{ ethertype: 2048, action: 'allow' }], forward: { 0: 1 } });
  assert.equal(fn.one({ src: 0, frame: icmp }, 2).decision, 1, 'an explicit IPv4 ethertype rule with no fields matches all IPv4');
  fn.configOk({});
  fn.expectDrop({ src: 0, frame: icmp }, 2, 'default_denied');
});

test('acl: refuses bad configurations', () => {
  const fn = new Fn('acl');
  const bad: object[] = [
    { rules: [{ src: '10.0.0.0/33', action: 'allow' }] },
    { rules: [{ src: '10.0.0.1/8', action: 'allow' }] },
    { rules: [{ dst: '1.2.3', action: 'allow' }] },
    { rules: [{ proto: 'icmp', dport: 53, action: 'allow' }] },
    { rules: [{ dport: 53, action: 'allow' }] },
    { rules: [{ proto: 'udp', dport: '2000-1000', action: 'allow' }] },
    { rules: [{ proto: 'udp', dport: 70000, action: 'allow' }] },
    { rules: [{ proto: 'udp', dport: '1-', action: 'allow' }] },
    { rules: [{ proto: 'sctp', action: 'allow' }] },
    { rules: [{ proto: 256, action: 'allow' }] },
    { rules: [{ ethertype: 2054, src: '10.0.0.0/8', action: 'allow' }] },
    { rules: [{ ethertype: 70000, action: 'allow' }] },
    { rules: [{ action: 'permit' }] },
    { rules: [{ proto: 'udp' }] },
    { rules: [{ action: 'allow', log: true }] },
    { rules: {} },
    { default: 'maybe' },
    { forward: { x: 1 } },
    { forward: { 0: 254 } },
    { forward: [1] },
    { rules: Array.from({ length: 257 }, () => ({ action: 'allow' })) },
  ];
  for (const c of bad) assert.ok(fn.config(c) < 0, JSON.stringify(c).slice(0, 80));
  fn.expectDrop({ src: 0, frame: ipFrame({ proto: ICMP }) }, 2, 'default_denied');
  fn.configOk({ rules: Array.from({ length: 256 }, () => ({ action: 'allow' })), forward: { 0: 1 } });
  assert.equal(Object.keys(fn.counters()).filter((n) => n.startsWith('rule_')).length, 32, 'the first 32 rules are counted');
});

test('acl: batches of 1 and 1024 against the JS model', () => {
  const fn = new Fn('acl');
  fn.configOk(ACL);
  assert.equal(fn.one({ src: 1, frame: ipFrame({ proto: ICMP }) }, 4).decision, 0);
  const rng = new Rng(99);
  const pick = <T>(a: T[]): T => a[rng.int(a.length)];
  const frames: In[] = Array.from({ length: MAX_BATCH }, () => {
    const r = rng.int(20);
    if (r === 0) return { src: rng.int(4), frame: ether(BCAST, station(1), pick([0x0806, 0x86dd, 0x88b5])) };
    return {
      src: rng.int(4),
      frame: ipFrame({
        src: pick(['10.1.2.3', '10.9.1.1', '10.8.0.1', '11.0.0.1']), dst: pick(['192.168.1.7', '192.168.1.10', '192.168.2.1']),
        proto: pick([UDP, TCP, ICMP, 47, 50]), sport: pick([999, 1000, 1500, 2000, 2001, 40000]), dport: pick([53, 22, 20, 25, 26, 80]),
        frag: pick([0, 0x4000, 0x2000, 0x0010]), ihl: pick([5, 5, 6, 15]), len: pick([60, 90, 1514]),
      }),
    };
  });
  const fwd: Record<number, number> = { 0: 1, 1: 0 };
  fn.run(frames, 4).forEach((o, i) => {
    const f = frames[i].frame;
    const type = be16(f, 12), ihl = (f[14] & 15) * 4;
    const badIp = type === 0x0800 && (f.length < 34 || f[14] >> 4 !== 4 || ihl < 20 || 14 + ihl > Math.min(f.length, MAX_HDR));
    const k = badIp ? -1 : aclModel(ACL.rules, f);
    const allow = k >= 0 ? ACL.rules[k].action === 'allow' : false;
    const want = allow && fwd[frames[i].src] !== undefined ? fwd[frames[i].src] : DROP;
    assert.equal(o.decision, want, `frame ${i} (type ${type.toString(16)}, rule ${k})`);
  });
});

// ---- vlan ----

const VLAN = { trunk: 0, access: { 1: 10, 2: 20, 3: 10 } };

/** The frame as tagged for VLAN `vid` (priority 0): 0x8100 and the TCI after the MACs. */
function tagged(f: Uint8Array, tci: number): Uint8Array {
  const t = new Uint8Array(f.length + 4);
  t.set(f.subarray(0, 12)); put16(t, 12, 0x8100); put16(t, 14, tci); t.set(f.subarray(12), 16);
  return t;
}
const untagged = (t: Uint8Array): Uint8Array => { const f = new Uint8Array(t.length - 4); f.set(t.subarray(0, 12)); f.set(t.subarray(16), 12); return f; };

test('vlan: access → trunk gets the tag (0x8100, TCI = VLAN); trunk → access loses it; the rest byte for byte', () => {
  const fn = new Fn('vlan');
  fn.configOk(VLAN);
  const np = 4;
  for (const len of [14, 60, 92, 93, 1514, 9000]) {
    const f = ipFrame({ dmac: BCAST, smac: station(1), len: Math.max(len, 34) }).subarray(0, len);
    const [o, d] = fn.counted(() => fn.one({ src: 1, frame: f }, np));
    assert.deepEqual(d, { tagged_to_trunk: 1 });
    assert.deepEqual([o.decision, o.flags, o.hlen], [0, REWRITE, 16], 'MACs + tag replace the MACs');
    assert.deepEqual(o.frame, tagged(f, 10), `${len} bytes`);
    assert.deepEqual([...o.frame.subarray(12, 16)], [0x81, 0x00, 0x00, 0x0a]);
  }
  assert.deepEqual(fn.one({ src: 2, frame: ether(BCAST, station(2), 0x0800) }, np).frame.subarray(12, 16), Uint8Array.from([0x81, 0, 0, 20]));
  // from the trunk, any length, priority bits ignored (and dropped with the tag)
  for (const len of [18, 60, 96, 97, 1518]) {
    const t = tagged(ether(station(0x77), station(0x70), 0x0800, len - 4), 0xa000 | 20);
    const [o, d] = fn.counted(() => fn.one({ src: 0, frame: t }, np));
    assert.deepEqual(d, { untagged_from_trunk: 1 });
    assert.deepEqual([o.decision, o.flags, o.hlen], [2, REWRITE, 12], 'the MACs replace MACs + tag');
    assert.deepEqual(o.frame, untagged(t), `${len} bytes`);
  }
});

test('vlan: learned per VLAN — access ↔ access directly and untagged, unknown from the trunk to the lowest access port, VLANs isolated', () => {
  const fn = new Fn('vlan');
  fn.configOk(VLAN);
  const np = 4;
  const S1 = station(0x101), S3 = station(0x103), S2 = station(0x102), T = station(0x100);
  // unknown destination from the trunk in VLAN 10: ports 1 and 3 are VLAN 10, 1 is the lowest
  assert.equal(fn.one({ src: 0, frame: tagged(ether(S3, T, 0x0800), 10) }, np).decision, 1);
  fn.one({ src: 1, frame: ether(BCAST, S1, 0x0806) }, np); // S1 on 1 (to the trunk)
  fn.one({ src: 3, frame: ether(BCAST, S3, 0x0806) }, np); // S3 on 3
  fn.one({ src: 2, frame: ether(BCAST, S2, 0x0806) }, np); // S2 on 2 (VLAN 20)
  let [o, d] = fn.counted(() => fn.one({ src: 3, frame: ether(S1, S3, 0x0800) }, np));
  assert.deepEqual(d, { access_to_access: 1 });
  assert.deepEqual([o.decision, o.flags], [1, 0], 'S3 → S1: straight to port 1, untagged, not rewritten');
  assert.equal(fn.one({ src: 0, frame: tagged(ether(S3, T, 0x0800), 10) }, np).decision, 3, 'trunk → S3 now known on 3');
  assert.equal(fn.one({ src: 0, frame: tagged(ether(S2, T, 0x0800), 10) }, np).decision, 1, 'S2 is not in VLAN 10');
  o = fn.one({ src: 2, frame: ether(S1, S2, 0x0800) }, np);
  assert.deepEqual([o.decision, be16(o.frame, 14)], [0, 20], 'S2 → S1 crosses VLANs only through the trunk, tagged 20');
  assert.equal(fn.one({ src: 0, frame: tagged(ether(BCAST, T, 0x0806), 10) }, np).decision, 1, 'a broadcast from the trunk: lowest access port');
  o = fn.one({ src: 1, frame: ether(T, S1, 0x0800) }, np);
  assert.deepEqual([o.decision, o.flags], [0, REWRITE], 'T was learned on the trunk');
  // the same station name in two VLANs is two stations
  fn.one({ src: 0, frame: tagged(ether(BCAST, S1, 0x0806), 20) }, np);
  assert.equal(fn.one({ src: 3, frame: ether(S1, S3, 0x0800) }, np).decision, 1, 'S1 in VLAN 10 is still on 1');
});

test('vlan: every drop reason, counted once each', () => {
  const fn = new Fn('vlan');
  fn.configOk(VLAN);
  const np = 5;
  const S1 = station(0x101), T = station(0x100);
  fn.expectDrop({ src: 0, frame: ether(BCAST, T, 0x0800) }, np, 'drop_untagged_on_trunk');
  fn.expectDrop({ src: 0, frame: tagged(ether(BCAST, T, 0x0800), 10).subarray(0, 17) }, np, 'drop_untagged_on_trunk');
  fn.expectDrop({ src: 0, frame: tagged(ether(BCAST, T, 0x0800), 30) }, np, 'drop_unknown_vlan');
  fn.expectDrop({ src: 0, frame: tagged(ether(BCAST, T, 0x0800), 0) }, np, 'drop_unknown_vlan');
  fn.expectDrop({ src: 1, frame: tagged(ether(BCAST, S1, 0x0800), 10) }, np, 'drop_tagged_on_access');
  fn.expectDrop({ src: 4, frame: ether(BCAST, S1, 0x0800) }, np, 'drop_unconfigured_port');
  assert.equal(fn.one({ src: 1, frame: ether(BCAST, S1, 0x0800, 1514) }, np).decision, 0, 'a full-size frame is tagged too (and S1 learned on 1)');
  fn.expectDrop({ src: 1, frame: ether(S1, station(0x111), 0x0800) }, np, 'drop_same_port');
  fn.one({ src: 0, frame: tagged(ether(BCAST, T, 0x0800), 10) }, np);
  fn.expectDrop({ src: 0, frame: tagged(ether(T, station(0x99), 0x0800), 10) }, np, 'drop_same_port');
  fn.expectDrop({ src: 1, frame: ether(BCAST, S1, 0x0800).subarray(0, 13) }, np, 'drop_runt');
  fn.configOk({ trunk: 3, access: { 0: 10, 1: 10 } });
  fn.expectDrop({ src: 0, frame: ether(BCAST, S1, 0x0800) }, 3, 'drop_port_down');
  fn.configOk({ trunk: 0, access: { 3: 10 } });
  fn.expectDrop({ src: 0, frame: tagged(ether(BCAST, T, 0x0800), 10) }, 3, 'drop_port_down');
});

test('vlan: refuses bad configurations (and then passes nothing)', () => {
  const fn = new Fn('vlan');
  const bad: object[] = [
    { access: { 1: 10 } }, { trunk: 0, access: { 0: 10 } }, { trunk: 0, access: { 1: 0 } }, { trunk: 0, access: { 1: 4095 } },
    { trunk: 254 }, { trunk: 0, access: { 254: 10 } }, { trunk: 0, access: { x: 10 } }, { trunk: 0, access: [10] }, { trunk: '0' },
    { trunk: 0, native: 1 },
  ];
  for (const c of bad) assert.ok(fn.config(c) < 0, JSON.stringify(c));
  fn.expectDrop({ src: 1, frame: ether(BCAST, station(1), 0x0800) }, 2, 'drop_unconfigured_port');
  fn.configOk({ trunk: 0 });
  fn.expectDrop({ src: 0, frame: tagged(ether(BCAST, station(1), 0x0800), 10) }, 2, 'drop_unknown_vlan');
});

test('vlan: batches of 1 and 1024', () => {
  const fn = new Fn('vlan');
  fn.configOk(VLAN);
  const np = 4;
  assert.equal(fn.one({ src: 3, frame: ether(BCAST, station(3), 0x0800) }, np).decision, 0);
  const rng = new Rng(5);
  const frames: In[] = Array.from({ length: MAX_BATCH }, (_, i) => {
    const len = 14 + rng.int(79);
    return i & 1
      ? { src: 1 + rng.int(3), frame: ether(BCAST, station(0x200 + (i & 0xff)), 0x0800, len) }
      : { src: 0, frame: tagged(ether(BCAST, station(0x300 + (i & 0xff)), 0x0800, len), rng.int(2) ? 10 : 20) };
  });
  fn.run(frames, np).forEach((o, i) => {
    const f = frames[i];
    if (f.src === 0) {
      const vid = be16(f.frame, 14);
      assert.equal(o.decision, vid === 10 ? 1 : 2);
      assert.deepEqual(o.frame, untagged(f.frame));
    } else {
      assert.equal(o.decision, 0);
      assert.deepEqual(o.frame, tagged(f.frame, f.src === 2 ? 20 : 10));
    }
  });
});

// ---- lb ----

function flows(n: number, rng: Rng): Ip[] {
  return Array.from({ length: n }, () => ({
    src: ipStr(rng.next()), dst: ipStr(rng.next()), proto: rng.int(2) ? TCP : UDP, sport: rng.int(65536), dport: rng.int(65536),
    smac: station(rng.int(65536)), dmac: station(rng.int(65536)),
  }));
}
const reverse = (f: Ip): Ip => ({ ...f, src: f.dst, dst: f.src, sport: f.dport, dport: f.sport, smac: f.dmac, dmac: f.smac });

test('lb: flows spread over the outputs; both directions of a flow go the same way; replies go to the input', () => {
  const fn = new Fn('lb');
  fn.configOk({ in: 0, out: [1, 2, 3] });
  const np = 4;
  const rng = new Rng(42);
  const fl = flows(3000, rng);
  const count = [0, 0, 0, 0];
  const before = fn.counters();
  for (let k = 0; k < fl.length; k += MAX_BATCH) {
    const part = fl.slice(k, k + MAX_BATCH);
    const fwd = fn.run(part.map((f) => ({ src: 0, frame: ipFrame(f) })), np);
    const rev = fn.run(part.map((f) => ({ src: 0, frame: ipFrame(reverse(f)) })), np);
    fwd.forEach((o, j) => {
      assert.ok([1, 2, 3].includes(o.decision), `decision ${o.decision}`);
      assert.equal(rev[j].decision, o.decision, 'symmetric');
      assert.equal(o.flags, 0);
      count[o.decision]++;
    });
  }
  for (const p of [1, 2, 3]) assert.ok(count[p] > 900 && count[p] < 1100, `port ${p}: ${count[p]} of 3000 flows`);
  const after = fn.counters();
  assert.deepEqual([1, 2, 3].map((p, k) => Number(after[`out_${k}`] - before[`out_${k}`])), [1, 2, 3].map((p) => 2 * count[p]));
  // the same addresses with other ports are other flows
  const ports = new Set(Array.from({ length: 64 }, (_, s) => fn.one({ src: 0, frame: ipFrame({ ...fl[0], sport: s }) }, np).decision));
  assert.equal(ports.size, 3, 'ports are part of the hash');
  for (const src of [1, 2, 3]) {
    assert.deepEqual(fn.delta(() => assert.equal(fn.one({ src, frame: ipFrame(fl[src]) }, np).decision, 0)), { to_in: 1 });
  }
  fn.expectDrop({ src: 4, frame: ipFrame(fl[0]) }, 5, 'drop_unconfigured_port');
  fn.expectDrop({ src: 0, frame: ipFrame(fl[0]).subarray(0, 13) }, np, 'drop_runt');
});

test('lb: fragments of a datagram stay together; other IP protocols and non-IP frames hash symmetrically too', () => {
  const fn = new Fn('lb');
  fn.configOk({ in: 0, out: [1, 2, 3, 4, 5] });
  const np = 6;
  const rng = new Rng(9);
  const outs = new Set<number>();
  for (const f of flows(200, rng)) {
    const first = fn.one({ src: 0, frame: ipFrame({ ...f, frag: 0x2000 }) }, np).decision;
    const later = fn.one({ src: 0, frame: ipFrame({ ...f, frag: 0x0020, sport: 7, dport: 9 }) }, np).decision;
    assert.equal(later, first, 'first and later fragments');
    const esp = fn.one({ src: 0, frame: ipFrame({ ...f, proto: 50 }) }, np).decision;
    assert.equal(fn.one({ src: 0, frame: ipFrame({ ...reverse(f), proto: 50 }) }, np).decision, esp);
    const arp = fn.one({ src: 0, frame: ether(f.dmac!, f.smac!, 0x0806) }, np).decision;
    assert.equal(fn.one({ src: 0, frame: ether(f.smac!, f.dmac!, 0x0806) }, np).decision, arp, 'MACs, symmetric');
    outs.add(arp);
  }
  assert.equal(outs.size, 5, 'non-IP frames spread too');
});

test('lb: an output that is not attached drops its share; bad configurations refused', () => {
  const fn = new Fn('lb');
  fn.configOk({ in: 0, out: [1, 2, 3] });
  const rng = new Rng(1);
  let down = 0;
  const fl = flows(300, rng);
  const d = fn.delta(() => {
    for (const o of fn.run(fl.map((f) => ({ src: 0, frame: ipFrame(f) })), 3)) {
      assert.ok(o.decision === 1 || o.decision === 2 || o.decision === DROP);
      if (o.decision === DROP) down++;
    }
  });
  assert.ok(down > 50 && down < 150, `${down} flows hashed to port 3`);
  assert.equal(d.drop_port_down, down);
  assert.deepEqual(Object.keys(fn.counters()).filter((n) => n.startsWith('out_')), ['out_0', 'out_1', 'out_2']);
  const bad: object[] = [
    { in: 0, out: [0, 1] }, { in: 0, out: [1, 1] }, { in: 0, out: [] }, { out: [1] }, { in: 0 }, { in: 254, out: [1] },
    { in: 0, out: [1, 254] }, { in: 0, out: Array.from({ length: 33 }, (_, i) => i + 1) }, { in: 0, out: 1 }, { in: 0, out: [1], weight: 1 },
  ];
  for (const c of bad) assert.ok(fn.config(c) < 0, JSON.stringify(c));
  fn.expectDrop({ src: 0, frame: ipFrame(fl[0]) }, 4, 'drop_unconfigured_port');
  fn.configOk({ in: 5, out: Array.from({ length: 32 }, (_, i) => (i < 5 ? i : i + 1)) });
  assert.equal(fn.one({ src: 32, frame: ipFrame(fl[0]) }, 40).decision, 5);
});

test('lb: batches of 1 and 1024', () => {
  const fn = new Fn('lb');
  fn.configOk({ in: 2, out: [0, 1] });
  const rng = new Rng(77);
  const f1 = flows(1, rng)[0];
  const one = fn.one({ src: 2, frame: ipFrame(f1) }, 3).decision;
  assert.ok(one === 0 || one === 1);
  const fl = flows(MAX_BATCH, rng);
  const got = fn.run(fl.map((f, i) => ({ src: i % 3, frame: ipFrame(f) })), 3);
  got.forEach((o, i) => {
    if (i % 3 === 2) assert.equal(o.decision, fn.one({ src: 2, frame: ipFrame(reverse(fl[i])) }, 3).decision, 'same as its reverse, alone');
    else assert.equal(o.decision, 2);
  });
});
