// Hostile virtio-net senders (issue #15): frames from ports with a 10- or 12-byte header, with
// random offload headers (flags, gso types, gso_size 0..65535, csum_start/offset), random VLAN
// stacks (0..200 tags), random IHL and TCP data offsets, random lengths (multi-slot MOREFRAG
// chains up to ~70 KB), sent through a real switch to ports with header 0/10/12 and random
// accept sets, flooded or to one port. Checked: canary guard spans around the switch's private
// span and around every port's region are never touched, a bystander pair's frames arrive
// intact and in order every round, conservation holds every 16 rounds and at the end, no round
// traps, and the switch still converts a good TSO frame correctly afterwards.
// WASMAP_FUZZ_SCALE (default 1: a few seconds) and WASMAP_FUZZ_SEED choose the run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { Datapath } from '../../src/datapath.js';
import { Switch, SwitchPort, conservation } from '../../src/switch.js';
import { Region } from '../../src/port.js';

const SCALE = Math.max(0.01, Number(process.env.WASMAP_FUZZ_SCALE ?? 1));
const SEED = process.env.WASMAP_FUZZ_SEED !== undefined ? Number(process.env.WASMAP_FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const ROUNDS = Math.round(2500 * SCALE);
const NOW = 1_000_000;
const CANARY = 0x5c;
const GUARD = 64 * 1024;

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
  return { n: (k: number) => next() % k, p: (x: number) => next() / 2 ** 32 < x };
}
type R = ReturnType<typeof rng>;

interface Guard { at: number; bytes: number; what: string }

/** A hostile frame: a virtio-net header of `hdr` bytes, then something that may look like TCP/UDP over IP. */
function hostile(r: R, hdr: number): Uint8Array {
  // one in six is the shape of finding 1: a long stack of valid tags, tiny gso_size, <= 256 segments
  const attack = r.p(1 / 6);
  const tags = attack ? 50 + r.n(151) : r.p(0.6) ? 0 : r.p(0.5) ? r.n(3) : r.n(201);
  const goodTags = attack || r.p(0.8);
  const v6 = r.p(0.3), udp = r.p(0.25);
  const ihl = r.p(0.7) ? 5 : r.n(16), doff = r.p(0.7) ? 5 : r.n(16);
  const l3 = 14 + 4 * tags, ipl = v6 ? 40 : Math.max(ihl, 5) * 4, l4 = l3 + ipl, l4l = udp ? 8 : Math.max(doff, 5) * 4;
  const mss = attack ? 1 + r.n(4) : r.p(0.3) ? r.n(4) : r.p(0.5) ? 1 + r.n(1500) : r.n(65536);
  const payload = attack ? r.n(256 * mss + 1) : r.p(0.5) ? r.n(3000) : r.p(0.8) ? r.n(20000) : r.n(66000);
  let len = l4 + l4l + payload;
  if (!attack && r.p(0.1)) len = r.n(l4 + l4l + 1); // cut short anywhere
  const f = new Uint8Array(hdr + len);
  for (let i = hdr; i < f.length; i++) f[i] = r.p(0.05) ? r.n(256) : i & 255;
  const e = f.subarray(hdr);
  const put = (o: number, v: number[]) => { if (o + v.length <= e.length) e.set(v, o); };
  put(0, r.p(0.5) ? [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] : [2, 0, 0, 0, 0, 2 + r.n(4)]);
  put(6, [2, 0, 0, 0, 1, r.n(256)]);
  for (let t = 0; t < tags; t++) put(12 + 4 * t, goodTags ? (r.p(0.5) ? [0x81, 0x00, r.n(16), r.n(256)] : [0x88, 0xa8, r.n(16), r.n(256)]) : [r.n(256), r.n(256), r.n(256), r.n(256)]);
  put(l3 - 2, r.p(0.95) ? (v6 ? [0x86, 0xdd] : [0x08, 0x00]) : [r.n(256), r.n(256)]);
  if (v6) put(l3, [r.p(0.9) ? 0x60 : r.n(256), 0, 0, 0, 0, 0, udp ? 17 : r.p(0.9) ? 6 : r.n(256), 64]);
  else put(l3, [r.p(0.9) ? 0x40 | ihl : r.n(256), 0, 0, 0, r.n(256), r.n(256), 0, 0, 64, udp ? 17 : r.p(0.9) ? 6 : r.n(256)]);
  if (!udp) put(l4 + 12, [doff << 4, r.n(256)]);
  if (hdr) {
    const dv = new DataView(f.buffer);
    f[0] = r.p(0.7) ? r.n(4) : r.n(256);
    f[1] = attack ? (v6 ? 4 : udp ? 5 : 1) : r.p(0.8) ? [0, 1, 4, 5, 3, 0x81, 0x84][r.n(7)] : r.n(256);
    dv.setUint16(4, mss, true);
    dv.setUint16(6, r.p(0.5) ? l4 : r.n(65536), true);
    dv.setUint16(8, r.p(0.5) ? (udp ? 6 : 16) : r.n(65536), true);
    if (hdr === 12) dv.setUint16(10, r.n(65536), true);
  }
  return f;
}

function bystanderFrame(seq: number): Uint8Array {
  const f = new Uint8Array(60 + (seq % 200));
  f.set([2, 0, 0, 0, 0xbb, 2, 2, 0, 0, 0, 0xbb, 1, 0x88, 0xb5]);
  new DataView(f.buffer).setUint32(14, seq);
  for (let i = 18; i < f.length; i++) f[i] = (seq + i) & 255;
  return f;
}

test(`offload-hostile fuzz: ${ROUNDS} rounds (seed ${SEED})`, () => {
  const r = rng(SEED);
  const dp = new Datapath();
  const guards: Guard[] = [];
  const guard = (what: string): void => {
    const at = dp.alloc(GUARD, 64);
    dp.u8.fill(CANARY, at, at + GUARD);
    guards.push({ at, bytes: GUARD, what });
  };
  const checkGuards = (when: string): void => {
    for (const g of guards) {
      const s = dp.u8.subarray(g.at, g.at + g.bytes);
      const bad = s.findIndex((x) => x !== CANARY);
      assert.equal(bad, -1, `seed ${SEED}: guard ${g.what} touched at +${bad} (${when})`);
    }
  };
  guard('below the switch');
  const sw = new Switch(dp, 'vale9');
  guard('above the switch');
  const regions: Region[] = [];
  const port = (name: string, bufSize = 2048, slots = 1024): SwitchPort => {
    guard(`below ${name}`);
    const reg = new Region(dp, { slots, bufSize, name: `vale9:${name}` });
    guard(`above ${name}`);
    regions.push(reg);
    return sw.attach(name, { region: reg });
  };
  const s10 = port('s10'), s12 = port('s12');
  const recv: { p: SwitchPort; hdr: number }[] = [
    { p: port('r0'), hdr: 0 }, { p: port('r10'), hdr: 10 }, { p: port('r12'), hdr: 12 },
    { p: port('r12small', 256), hdr: 12 }, { p: port('r0small', 64, 2048), hdr: 0 },
  ];
  const by1 = port('by1', 2048, 256), by2 = port('by2', 2048, 4096); // room for a round of flooded segments too
  sw.setHeaderLength('s10', 10); sw.setHeaderLength('s12', 12);
  for (const x of recv) if (x.hdr) sw.setHeaderLength(x.p.name, x.hdr);
  const OFF = ['csum', 'tso4', 'tso6', 'uso'];
  const reaccept = () => { for (const x of recv) if (x.hdr) sw.setAccept(x.p.name, OFF.filter(() => r.p(0.5))); };
  reaccept();

  let ops = 0, longest = 0, bySeq = 0, byExpect = 0, frames = 0;
  const t0 = performance.now();
  try {
    for (let round = 0; round < ROUNDS; round++) {
      if (round % 50 === 0) reaccept();
      const n = 1 + r.n(6);
      for (let i = 0; i < n; i++) {
        const [src, hdr] = r.p(0.5) ? [s10, 10] : [s12, 12];
        const f = hostile(r, hdr);
        const to = r.p(0.3) ? 255 << 8 : (recv[r.n(recv.length)].p.index + 1) << 8;
        if (src.send([f], to) === 1) frames++;
        ops++;
      }
      const nb = 1 + r.n(4);
      const sent: Uint8Array[] = [];
      for (let i = 0; i < nb; i++) sent.push(bystanderFrame(bySeq++));
      assert.equal(by1.send(sent, (by2.index + 1) << 8), nb);
      const t = performance.now();
      sw.round(NOW + round);
      const dt = performance.now() - t;
      if (dt > longest) longest = dt;
      for (const x of recv) x.p.recv();
      by1.recv();
      // floods reach the bystanders too (legitimately): pick out the pair's own frames
      const got = by2.recv().filter((g) => g[6] === 2 && g[7] === 0 && g[8] === 0 && g[9] === 0 && g[10] === 0xbb && g[11] === 1);
      assert.equal(got.length, nb, `seed ${SEED} round ${round}: the bystander's ${nb} frames arrive`);
      for (const g of got) assert.deepEqual(g, bystanderFrame(byExpect++), `seed ${SEED} round ${round}: bystander frame intact, in order`);
      if (round % 16 === 15) {
        checkGuards(`round ${round}`);
        const c = conservation(sw.stats());
        assert.ok(c.ok, `seed ${SEED} round ${round}: conservation: sent ${c.sent} + flood ${c.floodExtra} + seg ${c.segExtra} = received ${c.received} + drops ${c.drops}`);
      }
    }
    checkGuards('end');
    const st = sw.stats(), c = conservation(st);
    assert.ok(c.ok, `seed ${SEED}: conservation at the end`);
    // still answering: a good TSO frame from s12 to r0 is cut into correct-length segments
    const good = new Uint8Array(12 + 14 + 20 + 20 + 3000);
    const e = good.subarray(12);
    e.set([2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 8, 0x08, 0x00, 0x45]); e[14 + 9] = 6; e[34 + 12] = 0x50;
    const dv = new DataView(good.buffer);
    good[0] = 1; good[1] = 1; dv.setUint16(4, 1000, true); dv.setUint16(6, 34, true); dv.setUint16(8, 16, true);
    s12.send([good], (recv[0].p.index + 1) << 8);
    sw.round(NOW + ROUNDS);
    const segs = recv[0].p.recv();
    assert.deepEqual(segs.map((s) => s.length), [1054, 1054, 1054], `seed ${SEED}: a good TSO frame still segments`);
    const hdrDrops = st.ports.reduce((a, p) => a + p.dropHdr, 0n);
    console.log(`fuzz offload-hostile: seed=${SEED} ops=${ops} longest_round_ms=${longest.toFixed(1)} rounds=${ROUNDS} frames=${frames} delivered=${c.received} hdr_drops=${hdrDrops} seg_extra=${st.segExtra} secs=${((performance.now() - t0) / 1000).toFixed(1)}`);
  } catch (err) {
    console.log(`fuzz offload-hostile: FAILED seed=${SEED} (rerun with WASMAP_FUZZ_SEED=${SEED})`);
    throw err;
  } finally {
    sw.destroy();
    for (const g of regions) g.close();
  }
});
