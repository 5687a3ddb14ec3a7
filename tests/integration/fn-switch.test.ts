// Forwarding functions inside the switch (docs/forwarding-functions.md): every example decides
// real frames on a real switch; every kind of fault (trap, out of bounds, division by zero,
// endless loop, stack overflow, bad decision, bad rewrite, bad flags, negative return, bad
// module file) drops only its batch, disables the function with a reason and falls back at
// once, while another switch forwards on untouched; a hot swap under load loses and reorders
// nothing. Then the same through the daemon and `wasmap ctl set-lookup`, with kernels pinging.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import { spawnSync, ChildProcess } from 'node:child_process';
import { startDaemonProcess } from './daemon-proc.js';
import { Datapath } from '../../src/datapath.js';
import { Switch, SwitchPort, conservation, PortStats } from '../../src/switch.js';
import { Generator, TrafficPlan } from '../../src/gen.js';
import { findBuildFile } from '../../src/paths.js';
import { ctlRequest } from '../../src/ctl/client.js';
import { loadHost } from '../../src/host.js';
import { WasmapError } from '../../src/errors.js';
import { compileFn, FN_SETUP_MS, FN_SLOW_STRIKES } from '../../src/fn/host.js';
import * as H from '../fixtures/fn/modules/hostile.js';
import { same, macB, ipFrame, ipChecksum, put16, ether, station, BCAST, UDP, TCP } from '../frames.js';

const NOW = 1_000_000;
const wasm = (rel: string): Uint8Array => {
  const p = findBuildFile(rel);
  assert.ok(p, `build/${rel} is missing: run npm run build:examples`);
  return new Uint8Array(readFileSync(p));
};
const example = (name: string) => wasm(`examples/${name}.wasm`);
const faulty = () => wasm('fixtures/fn/faulty.wasm');

/** A switch with `n` ports p0..p(n-1) in a fresh datapath. */
function rig(n: number, name = 'vale7', dp = new Datapath()): { dp: Datapath; sw: Switch; p: SwitchPort[] } {
  const sw = new Switch(dp, name);
  return { dp, sw, p: Array.from({ length: n }, (_, i) => sw.attach(`p${i}`)) };
}
const drain = (p: SwitchPort[]) => p.map((x) => x.recv());
const law = (sw: Switch, gone: PortStats[] = []) => {
  const c = conservation(sw.stats(), gone);
  assert.ok(c.ok, `conservation: sent ${c.sent} + flood ${c.floodExtra} + seg ${c.segExtra} = received ${c.received} + drops ${c.drops}`);
  return c;
};

// ---- the examples, through the switch ----

test('forward-other: pairs 0↔1, 2↔3 — frames arrive whole, in order, nowhere else', () => {
  const { sw, p } = rig(4);
  const st = sw.setLookup(example('forward-other'));
  assert.equal(st.mode, 'function');
  assert.equal(st.function?.zeroCopy, !!loadHost(), 'the record area is shared when the native host is built');
  const sent = [0, 1, 2, 3].map((i) => Array.from({ length: 50 }, (_, k) => { const f = ether(station(99), station(i), 0x88b5, 60 + k); f[20] = k; return f; }));
  sent.forEach((fs, i) => p[i].send(fs));
  sw.round(NOW);
  const got = drain(p);
  for (let i = 0; i < 4; i++) {
    assert.equal(got[i ^ 1].length, 50, `port ${i ^ 1} got port ${i}'s frames`);
    got[i ^ 1].forEach((f, k) => assert.ok(same(f, sent[i][k]), `frame ${k} from ${i} intact and in order`));
  }
  const s = sw.lookupStatus().function!;
  assert.equal(s.frames, 200); assert.equal(s.state, 'active'); assert.ok(s.calls >= 4);
  law(sw);
});

test('l2-learn as a module: floods the unknown, then forwards only to the learned port', () => {
  const { sw, p } = rig(3);
  sw.setLookup(example('l2-learn'), { config: { age: 60 } });
  const A = station(0xa), B = station(0xb);
  p[0].send([ether(B, A, 0x88b5)]);
  sw.round(NOW);
  let got = drain(p);
  assert.deepEqual(got.map((g) => g.length), [0, 1, 1], 'unknown B: flooded to p1 and p2');
  p[1].send([ether(A, B, 0x88b5)]);
  sw.round(NOW);
  got = drain(p);
  assert.deepEqual(got.map((g) => g.length), [1, 0, 0], 'A was learned on p0');
  p[0].send([ether(B, A, 0x88b5)]);
  sw.round(NOW);
  assert.deepEqual(drain(p).map((g) => g.length), [0, 1, 0], 'B was learned on p1');
  const c = sw.lookupStatus().function!.counters;
  assert.equal(c.flooded, 1); assert.equal(c.forwarded, 2);
  law(sw);
});

test('router: LPM picks the port; the switch applies the rewrite (MACs, TTL − 1, checksum); bad frames are dropped and counted', () => {
  const { sw, p } = rig(3);
  const R = ['02:00:00:00:ff:00', '02:00:00:00:ff:01', '02:00:00:00:ff:02'], NH = ['02:00:00:01:00:01', '02:00:00:01:00:02'];
  sw.setLookup(example('router'), { config: { ports: R.map((mac, port) => ({ port, mac })), routes: [
    { prefix: '10.1.0.0/16', port: 1, via: NH[0] }, { prefix: '10.1.2.0/24', port: 2, via: NH[1] }] } });
  const cases = [['10.1.9.9', 1, NH[0]], ['10.1.2.3', 2, NH[1]]] as const;
  for (const [dst, port, via] of cases) {
    for (const len of [60, 200, 1500]) {
      const f = ipFrame({ dmac: R[0], dst, len, ttl: 9, proto: len > 100 ? TCP : UDP });
      p[0].send([f]);
      sw.round(NOW);
      const got = drain(p);
      assert.equal(got[port].length, 1, `${dst} (${len} bytes) leaves by p${port}`);
      const w = f.slice();
      w.set(macB(via)); w.set(macB(R[port]), 6); w[22] = 8;
      put16(w, 24, ipChecksum(w.subarray(14, 34)));
      assert.ok(same(got[port][0], w), `${dst}: MACs rewritten, TTL 9 → 8, checksum recomputed, payload untouched`);
    }
  }
  p[0].send([ipFrame({ dmac: R[0], dst: '10.1.2.3', ttl: 1 }), ipFrame({ dmac: R[0], dst: '172.16.0.1' }), ipFrame({ dmac: R[0], dst: '10.1.2.3', badSum: true })]);
  sw.round(NOW);
  assert.deepEqual(drain(p).map((g) => g.length), [0, 0, 0]);
  const c = sw.lookupStatus().function!.counters;
  assert.equal(c.forwarded, 6); assert.equal(c.drop_ttl_expired, 1); assert.equal(c.drop_no_route, 1); assert.equal(c.drop_bad_checksum, 1);
  assert.equal(sw.stats().ports[0].dropLookup, 3n);
  law(sw);
});

test('acl: allowed 5-tuples pass, everything else is denied and counted', () => {
  const { sw, p } = rig(2);
  sw.setLookup(example('acl'), { config: { rules: [{ dst: '10.1.0.0/16', proto: 'udp', dport: 53, action: 'allow' }, { ethertype: 2054, action: 'allow' }], default: 'deny', forward: { 0: 1, 1: 0 } } });
  p[0].send([ipFrame({ dst: '10.1.2.3', dport: 53 }), ipFrame({ dst: '10.1.2.3', dport: 54 }), ipFrame({ dst: '10.2.0.1', dport: 53 }),
    ipFrame({ dst: '10.1.2.3', dport: 53, proto: TCP }), ether(BCAST, station(1), 0x0806)]);
  sw.round(NOW);
  const got = drain(p);
  assert.equal(got[1].length, 2, 'the DNS datagram and the ARP frame');
  assert.equal(got[1][1][12], 0x08); assert.equal(got[1][1][13], 0x06);
  assert.equal(sw.stats().ports[0].dropLookup, 3n);
  law(sw);
});

test('vlan: access frames get a tag on the trunk (a longer frame), trunk frames lose it — at any length', () => {
  const { sw, p } = rig(3);
  sw.setLookup(example('vlan'), { config: { trunk: 0, access: { 1: 10, 2: 20 } } });
  for (const len of [60, 200, 1514]) {
    const f = ether(station(0xb), station(0xa), 0x0800, len);
    p[1].send([f]);
    sw.round(NOW);
    let got = drain(p);
    assert.equal(got[0].length, 1, 'to the trunk');
    const t = got[0][0];
    assert.equal(t.length, len + 4);
    assert.deepEqual([...t.subarray(12, 16)], [0x81, 0x00, 0x00, 10], '802.1Q tag, VLAN 10');
    assert.ok(same(t.subarray(16), f.subarray(12)) && same(t.subarray(0, 12), f.subarray(0, 12)), 'the rest unchanged');
    // back from the trunk, tagged for VLAN 20: untagged to p2
    const back = new Uint8Array(len + 4); back.set(f.subarray(0, 12)); back.set([0x81, 0, 0, 20], 12); back.set(f.subarray(12), 16);
    p[0].send([back]);
    sw.round(NOW);
    got = drain(p);
    assert.equal(got[2].length, 1);
    assert.ok(same(got[2][0], f), 'untagged: the original frame');
  }
  law(sw);
});

test('lb: each flow sticks to one output, flows spread over all outputs, replies go back to the input', () => {
  const { sw, p } = rig(4);
  sw.setLookup(example('lb'), { config: { in: 0, out: [1, 2, 3] } });
  const where = new Map<number, number>();
  for (let round = 0; round < 2; round++) {
    p[0].send(Array.from({ length: 60 }, (_, i) => ipFrame({ src: `10.0.0.${i + 1}`, dst: '10.9.9.9', sport: 1000 + i })));
    sw.round(NOW);
    const got = drain(p);
    assert.equal(got[1].length + got[2].length + got[3].length, 60);
    for (const o of [1, 2, 3]) {
      assert.ok(got[o].length > 5, `output ${o} got a share (${got[o].length})`);
      for (const g of got[o]) {
        const flow = g[29]; // last byte of the source address
        if (round === 0) where.set(flow, o); else assert.equal(where.get(flow), o, `flow ${flow} stays on p${o}`);
      }
    }
  }
  p[2].send([ipFrame({ src: '10.9.9.9', dst: '10.0.0.1' })]);
  sw.round(NOW);
  assert.equal(drain(p)[0].length, 1, 'from an output back to the input');
  law(sw);
});

// ---- faults ----

const FAULTS: [string, RegExp][] = [
  ['trap', /trap: RuntimeError: unreachable/], ['oob', /out of bounds/], ['divzero', /divide by zero/],
  ['loop', /ran out of fuel/], ['stack', /call stack|stack overflow|ran out of fuel/i], ['decision', /bad decision: record \d+ said port 200/],
  ['rewrite', /bad rewrite: record 0 asked for a new header of 200 bytes/], ['flags', /bad flags: record 0 set flags 0x80/],
  ['negative', /returned < 0: wasmap_fn_lookup returned -7/],
];

for (const [fault, reason] of FAULTS) {
  test(`fault '${fault}': its batch is dropped and counted, the function is disabled with the reason, the fallback forwards at once, another switch is untouched`, () => {
    const dp = new Datapath();
    const a = rig(2, 'vale1', dp), b = rig(2, 'vale2', dp);
    a.sw.setLookup(faulty(), { config: { fault, after: 3 }, fallback: 'learning', name: `faulty-${fault}` });
    const f = (k: number) => { const x = ether(station(2), station(1), 0x88b5, 64); x[20] = k & 255; return x; };
    let delivered = 0, otherDelivered = 0, faultRound = -1, fallbackMs = -1;
    for (let r = 0; r < 10; r++) {
      a.p[0].send(Array.from({ length: 20 }, (_, k) => f(k)));
      b.p[0].send(Array.from({ length: 20 }, (_, k) => f(k)));
      const t0 = performance.now();
      a.sw.round(NOW); b.sw.round(NOW);
      const st = a.sw.lookupStatus();
      if (faultRound < 0 && st.function?.state === 'disabled') {
        faultRound = r;
        // the very next round is decided by the fallback
        a.p[0].send([f(0)]);
        a.sw.round(NOW);
        fallbackMs = performance.now() - t0;
      }
      delivered += a.p[1].recv().length;
      otherDelivered += b.p[1].recv().length;
    }
    const st = a.sw.lookupStatus();
    assert.equal(faultRound, 3, 'the fault came with the 4th batch');
    assert.equal(st.mode, 'learning', 'fell back to learning');
    assert.equal(st.function?.state, 'disabled');
    assert.match(st.function!.reason!, reason);
    assert.equal(st.function!.faultDrops, 20, 'exactly the failed batch was dropped');
    assert.equal(st.function!.frames, 60, 'the three good batches were decided by the function');
    // a stack overflow first fills V8's ~1 MiB stack with frames (measured 3-16 ms on a loaded
    // 2-core machine); every other fault stops within the documented ~7 ms
    const bound = fault === 'stack' ? 30 : 10;
    assert.ok(fallbackMs < bound, `fault to fallback forwarding: ${fallbackMs.toFixed(2)} ms (bound ${bound} ms)`);
    assert.equal(a.sw.stats().ports[0].dropLookup, 20n, 'counted as lookup drops of the sender');
    assert.equal(delivered, 10 * 20 - 20 + 1, 'everything else arrived (function, then fallback)');
    assert.equal(otherDelivered, 200, 'the other switch forwarded every frame');
    law(a.sw); law(b.sw);
  });
}

test('fallback drop (the default) drops and counts everything after a fault', () => {
  const { sw, p } = rig(2);
  sw.setLookup(faulty(), { config: { fault: 'trap', after: 1 } });
  for (let r = 0; r < 4; r++) { p[0].send([ether(station(2), station(1), 0x88b5)]); sw.round(NOW); }
  assert.equal(p[1].recv().length, 1);
  const st = sw.lookupStatus();
  assert.equal(st.mode, 'drop');
  assert.equal(st.function?.faultDrops, 1);
  assert.equal(sw.stats().ports[0].dropLookup, 3n);
  law(sw);
  sw.setLookup('default');
  p[0].send([ether(station(2), station(1), 0x88b5)]); sw.round(NOW);
  assert.equal(p[1].recv().length, 1, "'default' brings learning back");
  assert.equal(sw.lookupStatus().previous?.state, 'disabled', 'the failed function is remembered with its reason');
});

test('bad module files and refused configurations are clear errors, and the lookup in place stays', () => {
  const { sw, p } = rig(2);
  sw.setLookup(example('forward-other'));
  const refuse = (bytes: Uint8Array, code: string, what: RegExp, opts = {}) => {
    assert.throws(() => sw.setLookup(bytes, opts), (e: unknown) => e instanceof WasmapError && e.code === code && what.test(e.message), `${code} ${what}`);
    p[0].send([ether(station(2), station(1), 0x88b5)]); sw.round(NOW);
    assert.equal(p[1].recv().length, 1, 'forward-other still decides');
  };
  refuse(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), 'EBADFN', /not a WebAssembly module|magic|malformed/i);
  const fo = example('forward-other');
  refuse(fo.subarray(0, fo.length - 7), 'EBADFN', /truncated|malformed|runs past/i);
  refuse(wasm('wasmap.wasm'), 'EBADFN', /import/i);
  refuse(example('router'), 'EINVAL', /refused its configuration/, { config: { routes: 'nope' } });
  refuse(example('forward-other'), 'EINVAL', /takes no configuration/, { config: {} });
  refuse(faulty(), 'EINVAL', /not JSON/, { config: '{oops' });
  assert.equal(sw.lookupStatus().function?.state, 'active');
  law(sw);
});

// ---- hostile modules (issue #15, findings 4 and 5) ----

/** Runs f and returns how long it took (ms). */
const took = (f: () => unknown): number => { const t0 = performance.now(); f(); return performance.now() - t0; };

test('finding 4: a module that would refuel itself (global.set of an undeclared global) is refused; the lookup in place stays', () => {
  const { sw, p } = rig(2);
  sw.setLookup(example('forward-other'));
  for (const m of [H.selfRefuel(), H.selfRefuelPastGlobals()]) {
    assert.throws(() => sw.setLookup(m), (e: unknown) => e instanceof WasmapError && e.code === 'EBADFN' && /global|not valid/.test(e.message));
    assert.throws(() => compileFn(m), (e: unknown) => e instanceof WasmapError && e.code === 'EBADFN');
  }
  p[0].send([ether(station(2), station(1), 0x88b5)]);
  assert.ok(took(() => sw.round(NOW)) < 100, 'a round returns');
  assert.equal(p[1].recv().length, 1, 'forward-other still decides');
  law(sw);
});

test('finding 5: bulk-memory and straight-line loops stop within the batch bound; chasing cache misses is stopped by the wall clock', () => {
  const dp = new Datapath();
  const a = rig(2, 'vale1', dp), b = rig(2, 'vale2', dp);
  const cases: [string, Uint8Array, RegExp, number][] = [
    ['fill', H.bulkLoop('fill'), /ran out of fuel/, 1], ['fill', H.bulkLoop('fill'), /ran out of fuel/, 1024],
    ['copy', H.bulkLoop('copy'), /ran out of fuel/, 1024], ['init', H.bulkLoop('init'), /ran out of fuel/, 1024],
    ['table.fill', H.bulkLoop('table.fill', 65536), /ran out of fuel/, 1024], ['grow', H.bulkLoop('grow'), /ran out of fuel/, 1],
    ['straight', H.straightLine(4_500), /ran out of fuel/, 1024], ['chase', H.chaseLookup(), /too slow|ran out of fuel/, 1024],
  ];
  let longest = 0;
  for (const [name, m, reason, n] of cases) {
    const before = a.sw.stats().ports[0].dropLookup;
    a.sw.setLookup(m, { fallback: 'learning', slowMs: name === 'chase' ? 1 : undefined });
    // the chase is disabled after FN_SLOW_STRIKES slow calls in a row (when fuel does not stop it first)
    for (let r = 0; r < (name === 'chase' ? FN_SLOW_STRIKES : 1) && a.sw.lookupStatus().function?.state === 'active'; r++) {
      a.p[0].send(Array.from({ length: n }, () => ether(station(2), station(1), 0x88b5)));
      b.p[0].send([ether(station(2), station(1), 0x88b5)]);
      const ms = took(() => { a.sw.round(NOW); b.sw.round(NOW); });
      longest = Math.max(longest, ms);
      if (name !== 'chase') assert.ok(ms < 100, `${name}, batch of ${n}: the round took ${ms.toFixed(1)} ms (documented: ~7 ms)`);
      assert.equal(b.p[1].recv().length, 1, `${name}: the other switch forwarded`);
    }
    const st = a.sw.lookupStatus();
    assert.equal(st.function?.state, 'disabled', name);
    assert.match(st.function!.reason!, reason, name);
    assert.ok(st.function!.faultDrops > 0 && BigInt(st.function!.faultDrops) === a.sw.stats().ports[0].dropLookup - before, `${name}: the batch was dropped and counted`);
    a.p[1].recv();
    law(a.sw); law(b.sw);
  }
  console.log(`# hostile lookups: longest round ${longest.toFixed(1)} ms`);
});

test('the configuration, counters and start calls are bounded too: fuel, then the setup wall clock', () => {
  const { sw, p } = rig(2);
  sw.setLookup(example('forward-other'));
  for (const [name, m, reason] of [['config fill', H.configForever('fill'), /ran out of fuel|setup limit/], ['config spin', H.configForever('spin'), /ran out of fuel|setup limit/],
    ['config chase', H.configForever('chase'), /setup limit|ran out of fuel/], ['start', H.startForever(), /failed to start/]] as const) {
    // (config fill is stopped by fuel, or by the wall clock on a slow machine: a 2.4 GB fill)
    let err: unknown;
    const ms = took(() => { try { sw.setLookup(m, { config: {} }); } catch (e) { err = e; } });
    assert.ok(err instanceof WasmapError && err.code === 'EBADFN' && reason.test(err.message), `${name}: ${String(err)}`);
    assert.ok(ms < FN_SETUP_MS + 500, `${name}: set-lookup held the thread ${ms.toFixed(1)} ms (limit ${FN_SETUP_MS} ms + compiling and touching memory)`);
  }
  // counters: read with the fuel of an empty batch; a runaway counters call gives no counters, fast
  sw.setLookup(H.countersForever());
  const ms = took(() => assert.deepEqual(sw.lookupStatus().function?.counters, {}));
  assert.ok(ms < 50, `a runaway counters call held stats ${ms.toFixed(1)} ms`);
  assert.equal(sw.lookupStatus().function?.state, 'active', 'a bad counters table is not a fault');
  p[0].send([ether(station(2), station(1), 0x88b5)]); sw.round(NOW);
  assert.equal(p[1].recv().length, 1, 'its lookup still forwards');
  law(sw);
});

test('deep recursion: the stack overflow is caught like any trap, the fallback forwards', () => {
  const { sw, p } = rig(2);
  sw.setLookup(H.bigFrameRecursion(), { fallback: 'learning' });
  // a full batch: its fuel lets the recursion go deeper than the stack
  p[0].send(Array.from({ length: 1024 }, () => ether(station(2), station(1), 0x88b5))); sw.round(NOW);
  p[1].recv();
  assert.match(sw.lookupStatus().function!.reason!, /call stack|stack overflow/i);
  p[0].send([ether(station(2), station(1), 0x88b5)]); sw.round(NOW);
  assert.equal(p[1].recv().length, 1);
  law(sw);
});

// ---- hot swap under load ----

test('hot swap under load: 300 swaps between functions and learning, not one frame lost or reordered', () => {
  const { dp, sw, p } = rig(4);
  const mods = [example('forward-other'), example('l2-learn'), 'default' as const];
  // p0 → p1 and p1 → p0: sequence-numbered frames, checked one by one
  const seqFrame = (from: number, seq: number) => { const f = ether(station(from ^ 1), station(from), 0x88b5, 60); new DataView(f.buffer).setUint32(14, seq); return f; };
  // (l2-learn starts with an empty table: it floods the load to p0 and p1 until it learns)
  const fromPort = (i: number) => (f: Uint8Array) => same(f.subarray(6, 12), Uint8Array.from(macB(station(i))));
  // p2 ↔ p3: generator load at full rate (every frame counted by the law below)
  const gens = [new Generator(dp, { srcMac: station(2), dstMac: station(3) }), new Generator(dp, { srcMac: station(3), dstMac: station(2) })];
  const sinks = [new Generator(dp), new Generator(dp)];
  const plan = new TrafficPlan(dp, sw.sw, gens.map((gen, i) => ({ gen, kring: p[2 + i].tx.kring, burst: 256 })), sinks.map((gen, i) => ({ gen, kring: p[2 + i].rx.kring })));
  // teach the built-in lookup where everyone is, so it floods nothing
  for (const i of [0, 1]) p[i].send([seqFrame(i, 0)]);
  plan.run(2);
  drain(p);
  const next = [1, 1], expect = [1, 1];
  let swaps = 0;
  for (let r = 0; r < 1500; r++) {
    for (const i of [0, 1]) p[i].send(Array.from({ length: 1 + (r % 40) }, () => seqFrame(i, next[i]++)));
    plan.run(1);
    if (r % 5 === 4) { const m = mods[swaps % 3]; sw.setLookup(m); swaps++; }
    for (const i of [0, 1]) for (const f of p[i ^ 1].recv().filter(fromPort(i))) {
      assert.equal(new DataView(f.buffer, f.byteOffset).getUint32(14), expect[i], `from p${i}: in order, none missing`);
      expect[i]++;
    }
  }
  for (const i of [0, 1]) for (const f of p[i ^ 1].recv().filter(fromPort(i))) { assert.equal(new DataView(f.buffer, f.byteOffset).getUint32(14), expect[i]); expect[i]++; }
  assert.equal(swaps, 300);
  assert.deepEqual(expect, next, 'every sequenced frame arrived');
  const c = law(sw);
  assert.equal(c.drops, 0n, 'no drops at all');
  assert.ok(sinks[0].rxPackets + sinks[1].rxPackets > 100000n, `load flowed (${sinks[0].rxPackets + sinks[1].rxPackets} frames)`);
  plan.close(); for (const g of [...gens, ...sinks]) g.close();
  sw.destroy();
});

// ---- through the daemon: wasmap ctl set-lookup, kernels pinging through TAP ports ----

const required = process.env.WASMAP_REQUIRE_NET === '1';
const lacks = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0;
const why = process.getuid?.() !== 0 ? 'needs root (network namespaces, TAP)' : !existsSync('/dev/net/tun') ? 'no /dev/net/tun' : !loadHost() ? 'native host not built'
  : lacks('ip') || lacks('ping') ? 'needs ip and ping (apt-get install iproute2 iputils-ping)' : '';
const P = `f${(process.pid % 9000) + 1000}`, nsA = `${P}A`, nsB = `${P}B`, sock = `/tmp/wasmap-fn-${P}.sock`;
let daemon: ChildProcess | null = null;
function sh(cmd: string, ok = true): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: 60000 });
  if (ok && r.status !== 0) throw new Error(`'${cmd}' failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}
function cleanup(): void {
  if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
  for (const n of [nsA, nsB]) sh(`ip netns del ${n} 2>/dev/null`, false);
  sh(`rm -f ${sock} /tmp/${P}-*.json`, false);
}
after(cleanup);

if (why && required) test('fn-switch daemon test prerequisites', () => assert.fail(`WASMAP_REQUIRE_NET=1 but ${why}`));

test('ctl set-lookup: ping through l2-learn.wasm, a faulty function is disabled mid-ping with its reason in ctl stats, learning takes over, default restores', { skip: why && !required ? why : false }, async () => {
  if (why) assert.fail(`WASMAP_REQUIRE_NET=1 but ${why}`);
  cleanup();
  const cli = findBuildFile('cli.mjs')!;
  const wctl = (...args: string[]) => spawnSync(process.execPath, [cli, 'ctl', '--socket', sock, ...args], { encoding: 'utf8', timeout: 30000 });
  daemon = await startDaemonProcess(['vale0', '--socket', sock]);
  for (const [n, ip] of [[nsA, '10.88.0.1'], [nsB, '10.88.0.2']]) {
    sh(`ip netns add ${n}`);
    await ctlRequest(sock, 'attach', { switch: 'vale0', port: `tap:${n}t` });
    sh(`ip link set ${n}t netns ${n} && ip netns exec ${n} sh -c 'ip addr add ${ip}/24 dev ${n}t && ip link set ${n}t up && ip link set lo up && sysctl -qw net.ipv6.conf.all.disable_ipv6=1'`);
  }
  const ex = findBuildFile('examples/l2-learn.wasm')!, bad = findBuildFile('fixtures/fn/faulty.wasm')!;
  let r = wctl('set-lookup', 'vale0', ex, '--config', '{"age": 120}');
  assert.equal(r.status, 0, r.stderr);
  const ping = (n: number) => sh(`ip netns exec ${nsA} ping -c ${n} -i 0.05 -W 1 10.88.0.2`, false);
  assert.match(ping(5), / 0% packet loss/, 'ping through the l2-learn module');
  r = wctl('stats', 'vale0');
  assert.match(r.stdout, /lookup: function l2-learn.wasm .*forwarded=\d+/);
  // bad input through ctl: a clear message, and l2-learn stays
  writeFileSync(`/tmp/${P}-bad.json`, '{"fault": "nope"}');
  r = wctl('set-lookup', 'vale0', bad, '--config', `@/tmp/${P}-bad.json`);
  assert.notEqual(r.status, 0); assert.match(r.stderr, /refused its configuration/);
  r = wctl('set-lookup', 'vale0', '/nonexistent.wasm');
  assert.notEqual(r.status, 0); assert.match(r.stderr, /cannot read \/nonexistent.wasm/);
  r = wctl('set-lookup', 'vale0', cli);
  assert.notEqual(r.status, 0); assert.match(r.stderr, /EBADFN|WebAssembly/);
  // a function that traps after 30 batches, with learning as the fallback, while ping runs
  r = wctl('set-lookup', 'vale0', bad, '--config', '{"fault": "trap", "after": 30}', '--fallback', 'learning');
  assert.equal(r.status, 0, r.stderr);
  const out = ping(60);
  const m = / (\d+) received/.exec(out);
  assert.ok(m && Number(m[1]) >= 58, `ping went on through the fault (${out.trim().split('\n').slice(-2).join(' / ')})`);
  const s = (await ctlRequest(sock, 'stats', { switch: 'vale0' })) as { lookup: { mode: string; function: { state: string; reason: string; faultDrops: number } }; ports: PortStats[] }[];
  assert.equal(s[0].lookup.mode, 'learning');
  assert.equal(s[0].lookup.function.state, 'disabled');
  assert.match(s[0].lookup.function.reason, /trap: RuntimeError: unreachable/);
  assert.ok(s[0].lookup.function.faultDrops >= 1);
  r = wctl('stats', 'vale0');
  assert.match(r.stdout, /DISABLED at .*unreachable/);
  r = wctl('stats', 'vale0', '--prometheus');
  assert.match(r.stdout, /^wasmap_switch_lookup\{switch="vale0",mode="learning"\} 1$/m);
  assert.match(r.stdout, /^wasmap_fn_active\{switch="vale0",function="faulty.wasm"\} 0$/m);
  assert.match(r.stdout, /^wasmap_fn_fault_drops_total\{switch="vale0",function="faulty.wasm"\} [1-9]/m);
  r = wctl('set-lookup', 'vale0', 'default');
  assert.equal(r.status, 0, r.stderr);
  assert.match(ping(3), / 0% packet loss/);
  const st = (await ctlRequest(sock, 'stats', { switch: 'vale0' })) as { floodExtra: number; segExtra: number; ports: Record<string, number>[] }[];
  const sum = (f: (p: Record<string, number>) => number) => st[0].ports.reduce((n, p) => n + f(p), 0);
  const sent = sum((p) => p.txPackets), recv = sum((p) => p.rxPackets);
  const drops = sum((p) => p.dropFull + p.dropBroken + p.dropNoDst + p.dropLookup + p.dropSize + p.dropHdr);
  assert.equal(sent + st[0].floodExtra + st[0].segExtra, recv + drops, `conservation: ${sent} sent, ${recv} received, ${drops} dropped`);
  assert.ok(sum((p) => p.dropLookup) >= s[0].lookup.function.faultDrops, 'the failed batch is among the lookup drops');
  rmSync(`/tmp/${P}-bad.json`, { force: true });
});
