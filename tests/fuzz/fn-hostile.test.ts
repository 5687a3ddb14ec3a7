// Hostile forwarding functions (issue #15): mutated example modules (build/examples/*.wasm) and
// hand-built hostile ones (tests/fixtures/fn/modules/hostile.ts: bulk-memory loops, straight-
// line code, cache-missing loads, recursion, self-refuelling, runaway configuration, counters
// and start calls), with byte flips, random bytes, insertions, deletions and truncations,
// loaded through the real path (Switch.setLookup: check, instrument, compile, instantiate,
// configure) into a switch whose ports send frames, while a second switch on the same datapath
// forwards sequenced frames. Every load is refused with EBADFN/EINVAL or runs; every round, set-
// lookup and stats call stays within its bound; the bystander's frames arrive intact and in
// order; conservation holds on both switches; guard spans around the function's record area
// keep their canary.
// WASMAP_FUZZ_SCALE (default 1: 500 loads, ~8 s) and WASMAP_FUZZ_SEED choose the run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Datapath } from '../../src/datapath.js';
import { Switch, conservation } from '../../src/switch.js';
import { findBuildFile } from '../../src/paths.js';
import { WasmapError } from '../../src/errors.js';
import { FN_SETUP_MS, FN_SLOW_MS, FN_SLOW_STRIKES } from '../../src/fn/host.js';
import { HOSTILE } from '../fixtures/fn/modules/hostile.js';
import { ether, station, same } from '../frames.js';

const SCALE = Number(process.env.WASMAP_FUZZ_SCALE ?? 1);
const SEED = Number(process.env.WASMAP_FUZZ_SEED ?? Math.floor(Math.random() * 0x7fffffff));
const LOADS = Math.max(10, Math.round(500 * SCALE));
const NOW = 1_000_000;
// Bounds (docs/forwarding-functions.md, "Faults and limits"): a round with a computing function
// stays within a few ms; one whose loads all miss the caches can take up to ~FN_SLOW_MS × a few
// on a full batch, FN_SLOW_STRIKES times; a set-lookup within FN_SETUP_MS plus compiling and
// touching its memory; a stats call within the counters' fuel.
const ROUND_MS = 1000, SETUP_MS = FN_SETUP_MS + 1000, STATS_MS = 100;
const GUARD = 65536, CANARY = 0xa5;

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n: number) => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s % n; };
}

/** The examples, with a configuration each accepts (and the ones that take none). */
function examples(): [string, Uint8Array, unknown][] {
  const configs: Record<string, unknown> = {
    'l2-learn': { age: 60 },
    router: { ports: [{ port: 0, mac: '02:00:00:00:00:a0' }, { port: 1, mac: '02:00:00:00:00:a1' }], routes: [{ prefix: '10.0.0.0/8', port: 1, via: '02:00:00:00:00:01' }] },
    acl: { rules: [{ proto: 'udp', dport: 53, action: 'allow' }], default: 'deny', forward: { 0: 1, 1: 0 } },
    vlan: { trunk: 0, access: { 1: 10 } }, lb: { in: 0, out: [1] },
  };
  const dir = findBuildFile('examples/forward-other.wasm');
  assert.ok(dir, 'build/examples is missing: run npm run build:examples');
  const base = join(dir, '..');
  return readdirSync(base).filter((f) => f.endsWith('.wasm')).sort()
    .map((f) => [f.slice(0, -5), new Uint8Array(readFileSync(join(base, f))), configs[f.slice(0, -5)]]);
}

test(`fn-hostile fuzz: ${LOADS} hostile and mutated modules through Switch.setLookup (seed ${SEED})`, () => {
  const r = rng(SEED);
  const dp = new Datapath();
  const a = new Switch(dp, 'vale1'), b = new Switch(dp, 'vale2');
  const ap = [0, 1, 2].map((i) => a.attach(`p${i}`)), bp = [0, 1].map((i) => b.attach(`p${i}`));
  const seeds: [string, Uint8Array, unknown][] = [...examples(), ...Object.entries(HOSTILE).map(([n, f]): [string, Uint8Array, unknown] => [n, f(), n.startsWith('config') ? {} : undefined])];
  const facts = { ops: 0, loads: 0, refused: 0, ran: 0, disabled: 0, rounds: 0, frames: 0, bystander: 0, guarded: 0, longestRound: 0, longestSetup: 0, longestStats: 0, statsRetried: 0 };
  const reasons = new Map<string, number>();
  let seq = 0, expect = 0;
  const bystanderFrame = (k: number): Uint8Array => { const f = ether(station(0xb1), station(0xb0), 0x88b5, 60 + (k % 200)); new DataView(f.buffer).setUint32(14, k); return f; };
  const sentB = new Map<number, Uint8Array>();
  try {
    for (let load = 0; load < LOADS; load++) {
      const [name, base, config] = seeds[r(seeds.length)];
      let m = Uint8Array.from(base);
      let how = 'as is';
      const at = (): number => 8 + r(Math.max(1, m.length - 8));
      switch (r(10)) {
        case 0: case 1: case 2: break;
        case 3: { how = 'flip'; m[at()] ^= 1 << r(8); break; }
        case 4: { how = 'flips'; for (let k = 1 + r(4); k > 0; k--) m[at()] ^= 1 << r(8); break; }
        case 5: { how = 'bytes'; for (let k = 1 + r(4); k > 0; k--) m[at()] = r(256); break; }
        case 6: { how = 'truncated'; m = m.subarray(0, r(m.length)); break; }
        case 7: { how = 'inserted'; const p = at(); const ins = Array.from({ length: 1 + r(8) }, () => r(256)); m = Uint8Array.from([...m.subarray(0, p), ...ins, ...m.subarray(p)]); break; }
        case 8: { how = 'deleted'; const p = at(); m = Uint8Array.from([...m.subarray(0, p), ...m.subarray(p + 1 + r(8))]); break; }
        default: { how = 'opcode'; // a branch, call, global or bulk opcode written into the last part (the code section, mostly)
          const p = Math.max(8, m.length - 1 - r(Math.min(m.length - 8, 400))); m[p] = [0x0c, 0x0d, 0x10, 0x24, 0x23, 0x40, 0xfc, 0x03, 0x0b][r(9)]; }
      }
      const cfg = config !== undefined && r(6) === 0 ? { junk: r(1000) } : config;
      // guard spans: right below and above where the record area goes (the allocator is first
      // fit, so the record area lands between them when nothing else is free there)
      const g1 = dp.alloc(GUARD, 65536);
      dp.u8.fill(CANARY, g1, g1 + GUARD);
      const t0 = performance.now();
      let loaded = false;
      try {
        a.setLookup(m, { config: cfg, fallback: r(2) ? 'learning' : 'drop' });
        loaded = true;
      } catch (e) {
        if (!(e instanceof WasmapError) || (e.code !== 'EBADFN' && e.code !== 'EINVAL')) {
          assert.fail(`seed ${SEED} load ${load} (${name}, ${how}): not a clean refusal: ${String(e)}`);
        }
        facts.refused++;
      }
      const setupMs = performance.now() - t0;
      facts.longestSetup = Math.max(facts.longestSetup, setupMs);
      assert.ok(setupMs < SETUP_MS, `seed ${SEED} load ${load} (${name}, ${how}): set-lookup held the thread ${setupMs.toFixed(1)} ms`);
      facts.loads++; facts.ops++;
      const g2 = dp.alloc(GUARD, 65536);
      dp.u8.fill(CANARY, g2, g2 + GUARD);
      if (loaded) {
        facts.ran++;
        const rec = dp.u32(a.sw + dp.abi.SW_FN_REC);
        if (g1 + GUARD === rec && rec + 128 * 1024 === g2) facts.guarded++;
      }
      // rounds: frames from the function's ports (often a few, sometimes a full batch), and the
      // bystander's sequenced frames on the other switch
      const rounds = loaded ? 1 + r(FN_SLOW_STRIKES) : 1;
      for (let k = 0; k < rounds; k++) {
        const n = r(10) === 0 ? 1024 : 1 + r(40);
        const src = r(3);
        ap[src].send(Array.from({ length: n }, (_, i) => ether(r(4) ? station(r(3)) : 'ff:ff:ff:ff:ff:ff', station(src), [0x0800, 0x86dd, 0x0806, 0x88b5][r(4)], 60 + r(400) + (i & 1))));
        const bn = 1 + r(8);
        const bf = Array.from({ length: bn }, () => { const f = bystanderFrame(seq); sentB.set(seq, f); seq++; return f; });
        bp[0].send(bf);
        const t = performance.now();
        a.round(NOW + load); b.round(NOW + load);
        const ms = performance.now() - t;
        facts.longestRound = Math.max(facts.longestRound, ms);
        assert.ok(ms < ROUND_MS, `seed ${SEED} load ${load} (${name}, ${how}): a round took ${ms.toFixed(1)} ms`);
        facts.rounds++; facts.frames += n; facts.ops++;
        for (const f of bp[1].recv()) {
          const got = new DataView(f.buffer, f.byteOffset).getUint32(14);
          assert.equal(got, expect, `seed ${SEED}: bystander frames in order, none lost`);
          assert.ok(same(f, sentB.get(got)!), `seed ${SEED}: bystander frame ${got} intact`);
          sentB.delete(got); expect++; facts.bystander++;
        }
        for (const p of ap) p.recv();
      }
      // stats (the counters call): deterministic, so one slow reading (a GC pause, the thread
      // descheduled on a busy host) is measured again; slow twice is the function's doing
      const statsTime = (): number => { const ts = performance.now(); a.lookupStatus(); return performance.now() - ts; };
      let statsMs = statsTime();
      if (statsMs >= STATS_MS) { facts.statsRetried++; statsMs = statsTime(); }
      facts.longestStats = Math.max(facts.longestStats, statsMs);
      assert.ok(statsMs < STATS_MS, `seed ${SEED} load ${load} (${name}, ${how}): stats took ${statsMs.toFixed(1)} ms, twice`);
      const st = a.lookupStatus();
      if (st.function?.state === 'disabled') {
        facts.disabled++;
        const rs = st.function.reason!;
        const why = /ran out of fuel/.test(rs) ? 'fuel' : /too slow/.test(rs) ? 'slow' : /call stack/i.test(rs) ? 'stack' : rs.replace(/:.*/, '');
        reasons.set(why, (reasons.get(why) ?? 0) + 1);
      }
      for (const [sw, what] of [[a, 'function switch'], [b, 'bystander switch']] as const) {
        const c = conservation(sw.stats());
        assert.ok(c.ok, `seed ${SEED} load ${load} (${name}, ${how}): conservation on the ${what}: sent ${c.sent} + ${c.floodExtra} + ${c.segExtra} = received ${c.received} + drops ${c.drops}`);
      }
      for (const [g, where] of [[g1, 'below'], [g2, 'above']] as const) {
        const bad = dp.u8.subarray(g, g + GUARD).findIndex((x) => x !== CANARY);
        assert.equal(bad, -1, `seed ${SEED} load ${load} (${name}, ${how}): the guard span ${where} the record area was written at +${bad}`);
      }
      a.setLookup('default');
      dp.release(g2, GUARD); dp.release(g1, GUARD);
    }
    assert.equal(expect, seq, `seed ${SEED}: every bystander frame arrived`);
    assert.ok(facts.ran > 0 && facts.refused > 0, 'both outcomes were exercised');
    assert.ok(facts.guarded > facts.ran / 2, `the record area sat between the guard spans in ${facts.guarded} of ${facts.ran} loads`);
  } catch (e) {
    console.log(`fn-hostile fuzz failed: WASMAP_FUZZ_SEED=${SEED} WASMAP_FUZZ_SCALE=${SCALE}`);
    throw e;
  } finally {
    a.destroy(); b.destroy();
  }
  console.log(`fuzz fn-hostile: seed=${SEED} ops=${facts.ops} longest_round_ms=${facts.longestRound.toFixed(1)} loads=${facts.loads} refused=${facts.refused} ran=${facts.ran} disabled=${facts.disabled} rounds=${facts.rounds} frames=${facts.frames} bystander=${facts.bystander} guarded=${facts.guarded} longest_setup_ms=${facts.longestSetup.toFixed(1)} longest_stats_ms=${facts.longestStats.toFixed(2)} stats_retried=${facts.statsRetried} slow_ms=${FN_SLOW_MS} reasons=${[...reasons].map(([k, v]) => `${k.replace(/ /g, '_')}:${v}`).join(',')}`);
});
