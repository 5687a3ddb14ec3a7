// The VALE switch through the control plane (src/switch.ts): the learning bridge, explicit
// destinations, drops of every kind counted exactly, multi-slot frames, broken users, ports
// that come and go under traffic, limits and names. Every test ends on the conservation law.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Datapath } from '../../src/datapath.js';
import { Switch, type AttachOptions, type PortStats, type SwitchPort } from '../../src/switch.js';
import {
  NOW, BCAST, FLOOD, NS_MOREFRAG, NS_NO_LEARN, Rng, allPkts, assertAudit, assertConserved, assertWasmapError, counters, errCode,
  frame, macValue, pkts, portStats, sendFrags, seqOf, split, station, toPort,
} from './helpers.js';

const MAC: Record<string, string> = { a: station(0xa), b: station(0xb), c: station(0xc), d: station(0xd) };

function setup(names: string[], o: AttachOptions | Record<string, AttachOptions> = { slots: 256 }) {
  const dp = new Datapath();
  const start = dp.allocated;
  const sw = new Switch(dp, 'vale0');
  const per = (n: string): AttachOptions => ('slots' in o || 'bufSize' in o ? o as AttachOptions : (o as Record<string, AttachOptions>)[n] ?? { slots: 256 });
  const p: Record<string, SwitchPort> = {};
  for (const n of names) p[n] = sw.attach(n, per(n));
  return { dp, sw, p, start };
}
const seqs = (port: SwitchPort): number[] => port.recv().map(seqOf);
const round = (sw: Switch, now = NOW): number => sw.round(now);

test('learning: the first frame floods, the reply goes only to the learned port', () => {
  const { sw, p } = setup(['a', 'b', 'c']);
  const f1 = frame(MAC.b, MAC.a, 60, 1);
  assert.equal(p.a.send([f1]), 1);
  assert.equal(round(sw), 1);
  assert.equal(p.b.rx.flags(p.b.rx.head), 1 << 8, 'rx slot flags carry nfrags << 8');
  assert.deepEqual(p.b.recv(), [f1]);
  assert.deepEqual(p.c.recv(), [f1], 'unknown destination: flooded to c too');
  assert.deepEqual(p.a.recv(), [], 'never back to the source');
  p.b.send([frame(MAC.a, MAC.b, 60, 2)]);
  round(sw);
  assert.deepEqual(seqs(p.a), [2]);
  assert.deepEqual(seqs(p.c), [], 'the third port sees nothing of the reply');
  p.a.send([frame(MAC.b, MAC.a, 60, 3)]);
  round(sw);
  assert.deepEqual(seqs(p.b), [3]);
  assert.deepEqual(seqs(p.c), []);
  const s = sw.stats();
  assert.equal(s.floodExtra, 1n);
  assert.equal(s.learned, 2n, 'A and B, each written once');
  assert.equal(s.frames, 3n);
  assert.deepEqual(allPkts(sw), { a: { tx: 2, rx: 1 }, b: { tx: 1, rx: 2 }, c: { rx: 1 } });
  assert.deepEqual(counters(portStats(sw, 'b')), { tx: 1, txBytes: 60, rx: 2, rxBytes: 120 });
  assertConserved(sw);
});

test('broadcast and multicast go to every port but the source', () => {
  const { sw, p } = setup(['a', 'b', 'c', 'd']);
  p.a.send([frame(BCAST, MAC.a, 60, 1), frame('01:00:5e:00:00:fb', MAC.a, 70, 2), frame('33:33:00:00:00:01', MAC.a, 80, 3)]);
  round(sw);
  for (const n of ['b', 'c', 'd']) assert.deepEqual(seqs(p[n]), [1, 2, 3], n);
  assert.deepEqual(seqs(p.a), []);
  assert.equal(sw.stats().floodExtra, 6n, '3 frames x (3 copies - 1)');
  assert.deepEqual(allPkts(sw), { a: { tx: 3 }, b: { rx: 3 }, c: { rx: 3 }, d: { rx: 3 } });
  assert.equal(portStats(sw, 'd').rxBytes, 210n);
  assertConserved(sw);
});

test('a frame to a MAC learned on its own source port is dropped (dropLookup), no hairpin', () => {
  const { sw, p } = setup(['a', 'b']);
  p.a.send([frame(BCAST, MAC.a, 60, 1)]);
  round(sw);
  assert.deepEqual(seqs(p.b), [1]);
  p.a.send([frame(MAC.a, station(0x77), 60, 2), frame(MAC.a, station(0x78), 60, 3)]);
  round(sw);
  assert.deepEqual(seqs(p.b), []);
  assert.deepEqual(seqs(p.a), []);
  assert.deepEqual(pkts(portStats(sw, 'a')), { tx: 3, lookup: 2 });
  assertConserved(sw);
});

test('a station that moves from port a to port c is relearned; traffic to it follows', () => {
  const { sw, p } = setup(['a', 'b', 'c']);
  const S = station(0x55);
  p.a.send([frame(BCAST, S, 60, 1)]);
  round(sw);
  p.b.recv(); p.c.recv();
  p.b.send([frame(S, MAC.b, 60, 2)]);
  round(sw);
  assert.deepEqual(seqs(p.a), [2]);
  assert.deepEqual(seqs(p.c), []);
  p.c.send([frame(BCAST, S, 60, 3)]); // S now speaks from c
  round(sw);
  assert.deepEqual(seqs(p.a), [3]);
  assert.deepEqual(seqs(p.b), [3]);
  p.b.send([frame(S, MAC.b, 60, 4), frame(S, MAC.b, 60, 5)]);
  round(sw);
  assert.deepEqual(seqs(p.c), [4, 5]);
  assert.deepEqual(seqs(p.a), [], 'the old port hears nothing more');
  assert.equal(sw.stats().learned, 3n, 'S on a, B, S on c');
  assertConserved(sw);
});

test('explicit destinations in the slot flags: a port, 255 = flood, absent port, the source itself', () => {
  const { sw, p } = setup(['a', 'b', 'c', 'd']);
  assert.deepEqual([p.a.index, p.b.index, p.c.index, p.d.index], [0, 1, 2, 3]);
  p.a.send([frame(station(0x99), MAC.a, 60, 1)], toPort(p.c.index)); // unknown MAC, but told where
  round(sw);
  assert.deepEqual(seqs(p.c), [1]);
  assert.deepEqual([seqs(p.b), seqs(p.d)], [[], []], 'no flood');
  assert.equal(sw.stats().learned, 0n, 'explicit destinations skip learning');
  p.b.send([frame(MAC.a, MAC.b, 60, 2)]); // so A is unknown: this floods
  round(sw);
  assert.deepEqual([seqs(p.a), seqs(p.c), seqs(p.d)], [[2], [2], [2]]);
  p.a.send([frame(MAC.b, MAC.a, 60, 3)], FLOOD); // B is known, 255 floods anyway
  round(sw);
  assert.deepEqual([seqs(p.b), seqs(p.c), seqs(p.d)], [[3], [3], [3]]);
  p.a.send([frame(MAC.b, MAC.a, 60, 4)], toPort(100)); // nobody at index 100
  p.a.send([frame(MAC.b, MAC.a, 60, 5)], 254 << 8); // index 253, the last one: absent too
  p.a.send([frame(MAC.b, MAC.a, 60, 6)], toPort(p.a.index)); // to itself
  p.a.send([frame(MAC.b, MAC.a, 60, 7)], toPort(p.d.index)); // still works after those
  round(sw);
  assert.deepEqual([seqs(p.b), seqs(p.c), seqs(p.d)], [[], [], [7]]);
  assert.deepEqual(allPkts(sw), { a: { tx: 6, rx: 1, noDst: 2, lookup: 1 }, b: { tx: 1, rx: 1 }, c: { rx: 3 }, d: { rx: 3 } });
  assert.equal(sw.stats().floodExtra, 4n, '2 for b\'s flood to 3 ports, 2 for the 255 flood');
  assertConserved(sw);
});

test('NS_NO_LEARN: the source is not learned, so a reply to it still floods', () => {
  const { sw, p } = setup(['a', 'b', 'c']);
  p.a.send([frame(BCAST, MAC.a, 60, 1)], NS_NO_LEARN);
  round(sw);
  assert.equal(sw.stats().learned, 0n);
  p.b.recv(); p.c.recv();
  p.b.send([frame(MAC.a, MAC.b, 60, 2)]);
  round(sw);
  assert.deepEqual(seqs(p.a), [2]);
  assert.deepEqual(seqs(p.c), [2], 'flooded: A was never learned');
  assert.equal(sw.stats().learned, 1n, 'only B');
  assertConserved(sw);
});

test('a multicast source address is never learned', () => {
  const { sw, p } = setup(['a', 'b', 'c']);
  const M = '03:00:00:00:00:01'; // group bit set
  p.a.send([frame(BCAST, M, 60, 1)]);
  round(sw);
  assert.equal(sw.stats().learned, 0n);
  assertConserved(sw);
});

test('runt frames (< 14 bytes) are dropped at the source and counted; 14 bytes pass', () => {
  const { sw, p } = setup(['a', 'b']);
  p.a.send([new Uint8Array(0), frame(BCAST, MAC.a, 13, 0), frame(BCAST, MAC.a, 14, 0)]);
  p.a.send([frame(MAC.b, MAC.a, 6, 0)], toPort(p.b.index)); // an explicit destination does not save a runt
  round(sw);
  const got = p.b.recv();
  assert.deepEqual(got.map((f) => f.length), [14]);
  assert.deepEqual(got[0], frame(BCAST, MAC.a, 14, 0));
  assert.deepEqual(allPkts(sw), { a: { tx: 4, lookup: 3 }, b: { rx: 1 } });
  assert.equal(portStats(sw, 'a').txBytes, 0n + 13n + 14n + 6n);
  assertConserved(sw);
});

test('multi-slot frames cross between 512- and 2048-byte buffers whole; oversize fragments are dropSize', () => {
  const { sw, p } = setup(['a', 'b'], { a: { slots: 64, bufSize: 2048 }, b: { slots: 64, bufSize: 512 } });
  // b (512) -> a (2048): 3 fragments stay 3 slots
  const big = frame(MAC.a, MAC.b, 1500, 1);
  assert.equal(p.b.send([big], FLOOD), 1);
  assert.equal(p.b.tx.head, 3);
  round(sw);
  const rx = p.a.rx, h = rx.head;
  assert.deepEqual([0, 1, 2].map((i) => rx.len((h + i) % 64)), [512, 512, 476]);
  assert.deepEqual([0, 1, 2].map((i) => rx.flags((h + i) % 64)), [0x300 | NS_MOREFRAG, 0x300 | NS_MOREFRAG, 0x300]);
  assert.deepEqual(p.a.recv(), [big]);
  // a (2048) -> b (512)
  const chain = frame(MAC.b, MAC.a, 1300, 2);
  sendFrags(p.a.tx, split(chain, [500, 500, 300]), FLOOD); // fragments that fit 512
  p.a.send([frame(MAC.b, MAC.a, 1500, 3)], FLOOD); // one 1500-byte fragment: too big for b
  p.a.send([frame(MAC.b, MAC.a, 5000, 4)], FLOOD); // 2048 + 2048 + 904: too big
  p.a.send([frame(MAC.b, MAC.a, 512, 5)], FLOOD); // exactly one buffer
  p.a.send([frame(MAC.b, MAC.a, 513, 6)], FLOOD);
  round(sw);
  const got = p.b.recv();
  assert.deepEqual(got.map(seqOf), [2, 5]);
  assert.deepEqual(got[0], chain);
  assert.deepEqual(got[1], frame(MAC.b, MAC.a, 512, 5));
  assert.deepEqual(allPkts(sw), { a: { tx: 5, rx: 1 }, b: { tx: 1, rx: 2, size: 3 } });
  assert.deepEqual([portStats(sw, 'a').txBytes, portStats(sw, 'b').rxBytes], [1300n + 1500n + 5000n + 512n + 513n, 1300n + 512n]);
  assertConserved(sw);
});

test('a full destination ring: 200 frames into a 64-slot ring deliver 63 and count 137 dropFull', () => {
  const { sw, p } = setup(['a', 'b'], { a: { slots: 1024 }, b: { slots: 64 } });
  const burst = (from: number) => Array.from({ length: 200 }, (_, i) => frame(MAC.b, MAC.a, 60, from + i));
  assert.equal(p.a.send(burst(0), toPort(p.b.index)), 200);
  assert.equal(round(sw), 200, 'all 200 taken');
  assert.equal(p.a.tx.space, 1023, 'the sender\'s ring is fully reclaimed, drops or not');
  assert.equal(p.b.rx.space, 63);
  assert.deepEqual(seqs(p.b), Array.from({ length: 63 }, (_, i) => i), 'the first 63, in order');
  assert.deepEqual(allPkts(sw), { a: { tx: 200 }, b: { rx: 63, full: 137 } });
  assert.equal(p.a.send(burst(1000), toPort(p.b.index)), 200);
  round(sw); // releases the 63 read slots first
  assert.deepEqual(seqs(p.b), Array.from({ length: 63 }, (_, i) => 1000 + i));
  assert.deepEqual(allPkts(sw), { a: { tx: 400 }, b: { rx: 126, full: 274 } });
  round(sw);
  assert.deepEqual(allPkts(sw), { a: { tx: 400 }, b: { rx: 126, full: 274 } }, 'an idle round changes nothing');
  assertAudit(p.a.region, p.b.region);
  assertConserved(sw);
});

test('multi-slot frames go whole or not at all into a nearly full ring; smaller frames after them still fit', () => {
  const { sw, p } = setup(['a', 'b'], { a: { slots: 256, bufSize: 512 }, b: { slots: 8, bufSize: 512 } });
  const big = (s: number) => frame(MAC.b, MAC.a, 1500, s); // 3 slots each
  p.a.send([big(0), big(1), big(2), frame(MAC.b, MAC.a, 60, 3)], FLOOD);
  round(sw);
  assert.equal(p.b.rx.space, 7, 'room 7: 3 + 3 + 1 slots');
  const got = p.b.recv();
  assert.deepEqual(got.map(seqOf), [0, 1, 3]);
  assert.deepEqual(got[1], big(1));
  assert.deepEqual(allPkts(sw), { a: { tx: 4 }, b: { rx: 3, full: 1 } });
  p.a.send([big(4), big(5), big(6)], FLOOD);
  round(sw);
  assert.deepEqual(p.b.recv(), [big(4), big(5)], 'whole, also across the ring\'s wrap (slots 7, 0, 1)');
  assert.deepEqual(allPkts(sw), { a: { tx: 7 }, b: { rx: 5, full: 2 } });
  assertAudit(p.a.region, p.b.region);
  assertConserved(sw);
});

test('a user who writes a bad head on its tx ring gets txErrors; the others keep forwarding', () => {
  const { sw, p } = setup(['a', 'b', 'c']);
  p.a.send([frame(BCAST, MAC.a, 60, 1)]);
  p.b.send([frame(BCAST, MAC.b, 60, 2)]);
  round(sw);
  p.a.recv(); p.b.recv(); p.c.recv();
  p.a.send([frame(MAC.b, MAC.a, 60, 3)]);
  p.a.tx.head = 5000; // beyond the ring
  p.b.send([frame(MAC.a, MAC.b, 60, 4), frame(BCAST, MAC.b, 60, 5)]);
  p.c.send([frame(MAC.a, MAC.c, 60, 6)]);
  round(sw);
  const a = portStats(sw, 'a');
  assert.equal(a.txErrors, 1n);
  assert.equal(a.lastError, sw.dp.abi.E_HEAD);
  assert.equal(p.a.tx.broken, true);
  assert.deepEqual(seqs(p.a), [4, 5, 6], 'its rx side still works');
  assert.deepEqual(seqs(p.c), [5]);
  assert.deepEqual(seqs(p.b), [], 'nothing of a\'s came out');
  for (let r = 0; r < 3; r++) {
    p.b.send([frame(MAC.c, MAC.b, 60, 10 + r)]);
    p.c.send([frame(MAC.b, MAC.c, 60, 20 + r)]);
    round(sw);
    assert.deepEqual([seqs(p.c), seqs(p.b)], [[10 + r], [20 + r]]);
  }
  assert.equal(portStats(sw, 'a').txErrors, 1n, 'counted once: a broken ring is not re-counted every round');
  assert.equal(portStats(sw, 'a').txPackets, 1n);
  assertConserved(sw);
});

test('a tx slot naming a reserved buffer breaks only that ring (E_BUF_IDX), nothing of its batch leaves', () => {
  const { sw, p } = setup(['a', 'b']);
  p.a.send([frame(BCAST, MAC.a, 60, 1), frame(BCAST, MAC.a, 60, 2), frame(BCAST, MAC.a, 60, 3)]);
  p.a.tx.setBufIdx(1, 0);
  p.b.send([frame(BCAST, MAC.b, 60, 4)]);
  round(sw);
  assert.deepEqual(seqs(p.b), []);
  assert.deepEqual(seqs(p.a), [4]);
  const a = portStats(sw, 'a');
  assert.deepEqual([a.txErrors, a.txPackets, a.lastError], [1n, 0n, sw.dp.abi.E_BUF_IDX]);
  assert.equal(p.a.tx.error, sw.dp.abi.E_BUF_IDX);
  assertConserved(sw);
});

test('a receiver that corrupts a free rx slot\'s buf_idx: its frames are dropBroken, the others unaffected; reset recovers', () => {
  const { sw, p, dp } = setup(['a', 'b', 'c']);
  p.b.rx.setBufIdx(p.b.rx.tail, 0); // the next slot the switch would fill
  p.a.send(Array.from({ length: 5 }, (_, i) => frame(MAC.b, MAC.a, 60, i)), toPort(p.b.index));
  p.a.send(Array.from({ length: 5 }, (_, i) => frame(MAC.c, MAC.a, 60, 10 + i)), toPort(p.c.index));
  round(sw);
  assert.deepEqual(seqs(p.c), [10, 11, 12, 13, 14]);
  assert.equal(p.b.rx.broken, true);
  assert.deepEqual(pkts(portStats(sw, 'b')), { broken: 5 });
  assert.equal(portStats(sw, 'b').lastError, dp.abi.E_BUF_IDX);
  p.a.send([frame(MAC.b, MAC.a, 60, 5), frame(MAC.b, MAC.a, 60, 6)], toPort(p.b.index));
  p.c.send([frame(MAC.a, MAC.c, 60, 20)], toPort(p.a.index));
  round(sw);
  assert.deepEqual(seqs(p.a), [20]);
  assert.deepEqual(pkts(portStats(sw, 'b')), { broken: 7 }, 'still broken: every frame to it counted');
  dp.fn.kring_reset(p.b.rx.kring);
  assert.deepEqual(p.b.region.audit(), []);
  p.a.send([frame(MAC.b, MAC.a, 60, 7)], toPort(p.b.index));
  round(sw);
  assert.deepEqual(seqs(p.b), [7]);
  assert.deepEqual(allPkts(sw), { a: { tx: 13, rx: 1 }, b: { rx: 1, broken: 7 }, c: { tx: 1, rx: 5 } });
  assertConserved(sw);
});

test('a receiver that moves its rx head past tail: frames to it are dropBroken (lastError E_HEAD), the others unaffected', () => {
  const { sw, p, dp } = setup(['a', 'b', 'c']);
  p.a.send([frame(BCAST, MAC.a, 60, 0)]);
  round(sw);
  assert.equal(p.b.rx.tail, 1);
  p.b.rx.head = 6; p.b.rx.cur = 6; // it owns only [0, 1)
  p.a.send([frame(BCAST, MAC.a, 60, 1), frame(BCAST, MAC.a, 60, 2)]);
  round(sw);
  assert.equal(p.b.rx.broken, true);
  assert.deepEqual(pkts(portStats(sw, 'b')), { rx: 1, broken: 2 }, 'an rx error is not a txError');
  assert.equal(portStats(sw, 'b').lastError, dp.abi.E_HEAD);
  assert.deepEqual(seqs(p.c), [0, 1, 2]);
  dp.fn.kring_reset(p.b.rx.kring);
  assert.deepEqual(seqs(p.b), [0], 'after a reset the frame it had is still there');
  assertConserved(sw);
});

test('corruption met mid-batch: frames before it are delivered (seen after reset), the rest dropBroken', () => {
  const { sw, p, dp } = setup(['a', 'b']);
  const t = p.b.rx.tail;
  p.b.rx.setBufIdx((t + 2) % p.b.rx.numSlots, 1 << 30);
  p.a.send(Array.from({ length: 5 }, (_, i) => frame(MAC.b, MAC.a, 60, i)), FLOOD);
  round(sw);
  assert.deepEqual(pkts(portStats(sw, 'b')), { rx: 2, broken: 3 });
  assert.deepEqual(p.b.recv(), [], 'a broken ring publishes nothing');
  dp.fn.kring_reset(p.b.rx.kring);
  assert.deepEqual(seqs(p.b), [0, 1]);
  assert.deepEqual(p.b.region.audit(), []);
  assertConserved(sw);
});

test('frames in flight to a port that detaches are counted as drops; the index is reused by the next attach', () => {
  const { sw, p, dp, start } = setup(['a', 'b', 'c']);
  p.b.send([frame(BCAST, MAC.b, 60, 0)]);
  round(sw);
  p.a.recv(); p.c.recv();
  p.a.send(Array.from({ length: 5 }, (_, i) => frame(MAC.b, MAC.a, 60, 1 + i)), toPort(p.b.index));
  p.a.send(Array.from({ length: 3 }, (_, i) => frame(MAC.b, MAC.a, 60, 10 + i))); // B is learned on b
  p.b.send([frame(MAC.a, MAC.b, 60, 99)]); // queued on b, never taken
  const gone = [sw.detach('b')];
  assert.deepEqual(pkts(gone[0]), { tx: 1 });
  round(sw);
  assert.deepEqual(seqs(p.c), [10, 11, 12], 'a MAC learned on a detached port floods');
  assert.deepEqual(seqs(p.a), []);
  assert.deepEqual(allPkts(sw), { a: { tx: 8, rx: 1, noDst: 5 }, c: { rx: 4 } });
  assertConserved(sw, gone);
  const b2 = sw.attach('b2', { slots: 256 });
  assert.equal(b2.index, 1, 'lowest free index');
  p.a.send([frame(MAC.b, MAC.a, 60, 20)]);
  p.a.send([frame(MAC.b, MAC.a, 60, 21)], toPort(1));
  round(sw);
  assert.deepEqual(seqs(b2), [20, 21], 'the new port at index 1 gets the explicit frame, and the flood');
  assert.deepEqual(seqs(p.c), [20], 'the stale entry for B is not trusted on the new port either');
  assertConserved(sw, gone);
  sw.destroy();
  assert.equal(dp.allocated, start);
});

test('ports attach and detach between rounds under random traffic: conservation every round', () => {
  const dp = new Datapath();
  const start = dp.allocated;
  const sw = new Switch(dp, 'vale_churn');
  const names = ['p0', 'p1', 'p2', 'p3'];
  const mac = (n: string) => station(0x100 + names.indexOf(n));
  const live = new Map<string, SwitchPort>();
  for (const n of names) live.set(n, sw.attach(n, { slots: 64 }));
  const gone: PortStats[] = [];
  const rng = new Rng(12345);
  let seq = 0, consumed = 0, detaches = 0, attaches = 0;
  for (let r = 0; r < 400; r++) {
    for (const [n, port] of live) {
      for (let i = rng.int(5); i > 0; i--) {
        const peer = names[rng.int(4)], kind = rng.int(4);
        const f = frame(kind === 0 ? BCAST : mac(peer), mac(n), 60 + rng.int(200), seq++);
        port.send([f], kind === 3 ? toPort(rng.int(6)) : 0);
      }
    }
    // ports come and go with frames queued to them and by them
    if (rng.int(2) === 0) {
      const n = names[rng.int(4)];
      if (live.has(n)) { gone.push(sw.detach(n)); live.delete(n); detaches++; }
      else { live.set(n, sw.attach(n, { slots: 64 })); attaches++; }
    }
    round(sw);
    for (const port of live.values()) consumed += port.recv().length;
    assertConserved(sw, gone);
    assert.ok(sw.stats().ports.every((s) => s.txErrors === 0n && s.dropBroken === 0n));
  }
  assert.ok(detaches >= 30 && attaches >= 30, `churn happened (${detaches} detaches, ${attaches} attaches)`);
  const all = [...sw.stats().ports, ...gone];
  const sum = (f: (s: PortStats) => bigint) => all.reduce((n, s) => n + f(s), 0n);
  assert.equal(sum((s) => s.rxPackets), BigInt(consumed), 'every delivery was read by a port user');
  assert.ok(sum((s) => s.dropNoDst) > 0n, 'explicit frames to absent ports were counted');
  assert.ok(sum((s) => s.dropLookup) > 0n);
  assert.equal(sum((s) => s.dropFull), 0n);
  assertAudit(...[...live.values()].map((q) => q.region));
  sw.destroy();
  assert.equal(dp.allocated, start, 'every region freed');
});

test('a learned MAC expires after the age limit and then floods', () => {
  const { sw, p } = setup(['a', 'b', 'c']);
  sw.configure({ ageSeconds: 10 });
  p.a.send([frame(BCAST, MAC.a, 60, 0)]);
  round(sw, NOW);
  p.b.recv(); p.c.recv();
  p.b.send([frame(MAC.a, MAC.b, 60, 1)]);
  round(sw, NOW + 10);
  assert.deepEqual([seqs(p.a), seqs(p.c)], [[1], []], 'still fresh at exactly the limit');
  p.b.send([frame(MAC.a, MAC.b, 60, 2)]);
  round(sw, NOW + 11);
  assert.deepEqual([seqs(p.a), seqs(p.c)], [[2], [2]], 'stale: flooded');
  assertConserved(sw);
});

test('mac_hash is netmap\'s nm_vale_rthash (its bucket vectors, 1024 buckets)', () => {
  const dp = new Datapath();
  const bucket = (m: string) => dp.fn.mac_hash(macValue(m)) & 1023;
  assert.deepEqual(
    ['00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01', '02:00:00:00:00:02', '00:aa:bb:cc:dd:ee', '02:00:00:00:07:e7'].map(bucket),
    [269, 604, 92, 23, 77, 92]);
});

test('colliding MACs evict each other (direct-mapped table); the evicted one floods until it speaks again', () => {
  const { sw, p, dp } = setup(['a', 'b', 'c']);
  const mask = dp.u32(sw.sw + dp.abi.SW_TABLE_MASK);
  assert.equal(mask, 4095);
  const h = (m: string) => dp.fn.mac_hash(macValue(m)) & mask;
  let n = 0x1000;
  while (h(station(n)) !== h(MAC.a)) n++;
  const X = station(n);
  p.a.send([frame(BCAST, MAC.a, 60, 0)]);
  round(sw);
  p.c.send([frame(BCAST, X, 60, 1)]); // evicts A
  round(sw);
  for (const q of ['a', 'b', 'c']) p[q].recv();
  p.b.send([frame(MAC.a, MAC.b, 60, 2)]);
  round(sw);
  assert.deepEqual([seqs(p.a), seqs(p.c)], [[2], [2]], 'A was evicted: flood');
  p.a.send([frame(BCAST, MAC.a, 60, 3)]); // A speaks again (next round): relearned
  round(sw);
  p.b.recv(); p.c.recv();
  p.b.send([frame(MAC.a, MAC.b, 60, 4), frame(X, MAC.b, 60, 5)]);
  round(sw);
  assert.deepEqual(seqs(p.a), [4, 5]);
  assert.deepEqual(seqs(p.c), [5], 'and now X floods');
  assertConserved(sw);
});

test('the zeroed table does not send 00:00:00:00:00:00 to port 0: it floods', () => {
  const { sw, p } = setup(['a', 'b', 'c']);
  p.b.send([frame('00:00:00:00:00:00', MAC.b, 60, 1)]);
  round(sw);
  assert.deepEqual([seqs(p.a), seqs(p.c)], [[1], [1]]);
  assertConserved(sw);
});

test('unicast and flooded frames to one port keep the sender\'s order', () => {
  const { sw, p } = setup(['a', 'b', 'c']);
  p.b.send([frame(BCAST, MAC.b, 60, 0)]);
  round(sw);
  p.a.recv(); p.c.recv();
  p.a.send([frame(MAC.b, MAC.a, 60, 1), frame(BCAST, MAC.a, 60, 2), frame(MAC.b, MAC.a, 60, 3), frame(MAC.b, MAC.a, 60, 4),
    frame(BCAST, MAC.a, 60, 5), frame(MAC.c, MAC.a, 60, 6)]);
  round(sw);
  assert.deepEqual(seqs(p.b), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(seqs(p.c), [2, 5, 6]);
  assertConserved(sw);
});

test('a port alone on its switch: floods have nowhere to go (dropNoDst)', () => {
  const { sw, p } = setup(['a']);
  p.a.send([frame(BCAST, MAC.a, 60, 0), frame(MAC.b, MAC.a, 60, 1)]);
  round(sw);
  assert.deepEqual(allPkts(sw), { a: { tx: 2, noDst: 2 } });
  assert.equal(sw.stats().floodExtra, 0n);
  assertConserved(sw);
});

test('the batch bound: a round still takes everything, in batches of the configured size', () => {
  const { sw, p } = setup(['a', 'b']);
  sw.configure({ batch: 10 });
  p.a.send(Array.from({ length: 25 }, (_, i) => frame(MAC.b, MAC.a, 60, i)));
  assert.equal(round(sw), 25);
  assert.deepEqual(seqs(p.b), Array.from({ length: 25 }, (_, i) => i));
  assert.equal(errCode(() => sw.configure({ batch: 0 })), 'EINVAL');
  assert.equal(errCode(() => sw.configure({ batch: 1025 })), 'EINVAL');
  assert.equal(errCode(() => sw.configure({ batch: 2.5 })), 'EINVAL');
  assertConserved(sw);
});

test('a frame of more fragments than the batch bound still crosses the switch', () => {
  const { sw, p } = setup(['a', 'b'], { slots: 64, bufSize: 512 });
  sw.configure({ batch: 2 });
  const f = frame(MAC.b, MAC.a, 1500, 1); // 3 slots
  p.a.send([f, frame(MAC.b, MAC.a, 60, 2)]);
  for (let r = 0; r < 5; r++) round(sw);
  assert.deepEqual(pkts(portStats(sw, 'a')), { tx: 2 }, 'both frames taken from a\'s ring');
  assert.deepEqual(p.b.recv(), [f, frame(MAC.b, MAC.a, 60, 2)]);
  assert.equal(p.a.tx.space, 63, 'the sender\'s ring drained');
  assertConserved(sw);
});

test('254 ports attach; the 255th fails with ENOSPC and leaks nothing; a flood reaches all 253 others', () => {
  const dp = new Datapath();
  const start = dp.allocated;
  const sw = new Switch(dp, 'vale1');
  const o = { slots: 2, bufSize: 64 };
  const ports = Array.from({ length: 254 }, (_, i) => sw.attach(`p${i}`, o));
  assert.deepEqual(ports.map((q) => q.index), Array.from({ length: 254 }, (_, i) => i));
  const before = dp.allocated;
  assertWasmapError(() => sw.attach('p254', o), 'ENOSPC', '254');
  assert.equal(dp.allocated, before, 'the refused port\'s region was freed');
  ports[0].send([frame(BCAST, station(1), 60, 7)]);
  round(sw);
  assert.equal(sw.stats().floodExtra, 252n);
  assert.equal(ports.slice(1).filter((q) => q.recv().map(seqOf).join() === '7').length, 253);
  ports[0].send([frame(station(9), station(1), 60, 8)], 254 << 8); // high byte 254 = index 253
  round(sw);
  assert.deepEqual(seqs(ports[253]), [8]);
  const gone = [sw.detach('p100')];
  assert.deepEqual(pkts(gone[0]), { rx: 1 });
  assert.equal(sw.attach('x', o).index, 100, 'a freed index is reused');
  assert.deepEqual(pkts(portStats(sw, 'x')), {}, 'with fresh counters');
  assertConserved(sw, gone);
  sw.destroy();
  assert.equal(dp.allocated, start);
});

test('bad names are EINVAL; duplicates EBUSY; unknown ports ENOENT; a destroyed switch ESHUTDOWN', () => {
  const dp = new Datapath();
  for (const n of ['', 'foo0', 'VALE0', 'vale-1', 'vale0:x', 'vale0123456789ab', 'vale 0']) {
    assertWasmapError(() => new Switch(dp, n), 'EINVAL', `'${n}'`);
  }
  assert.equal(errCode(() => new Switch(dp, 'vale')), 'ok');
  const sw = new Switch(dp, 'vale_x9');
  for (const n of ['', 'a:b', 'a b', 'x{1', 'x}1', 'abcdefghijklmnop', 'é', 'a/b', 'a\n']) {
    assertWasmapError(() => sw.attach(n, { slots: 2, bufSize: 64 }), 'EINVAL', 'bad port name');
  }
  assert.equal(errCode(() => sw.attach('abcdefghijklmno', { slots: 2, bufSize: 64 })), 'ok', '15 characters are fine');
  assert.equal(errCode(() => sw.attach('tap-a.1_B', { slots: 2, bufSize: 64 })), 'ok');
  assertWasmapError(() => sw.attach('tap-a.1_B', { slots: 2, bufSize: 64 }), 'EBUSY', 'vale_x9:tap-a.1_B');
  assertWasmapError(() => sw.detach('nope'), 'ENOENT', 'nope', 'abcdefghijklmno');
  assertWasmapError(() => sw.attach('big', { slots: 5000 }), 'EINVAL');
  assertWasmapError(() => sw.setHeaderLength('tap-a.1_B', 11), 'EINVAL');
  assert.equal(sw.list().length, 2, 'the failed attaches left nothing behind');
  assertConserved(sw);
  sw.destroy();
  assertWasmapError(() => sw.attach('z'), 'ESHUTDOWN');
  assertWasmapError(() => sw.round(), 'ESHUTDOWN');
  sw.destroy(); // twice is harmless
});

test('destroy frees everything: the switch, its ports\' regions; dp.allocated back to its start', () => {
  const dp = new Datapath();
  const start = dp.allocated;
  const sw = new Switch(dp, 'vale2');
  const a = sw.attach('a', { slots: 512 }), b = sw.attach('b', { slots: 64, bufSize: 512 });
  sw.attach('c');
  a.send(Array.from({ length: 100 }, (_, i) => frame(BCAST, MAC.a, 1000, i)));
  b.send([frame(BCAST, MAC.b, 1500, 0)]);
  round(sw);
  assert.ok(dp.allocated > start);
  assertConserved(sw);
  sw.destroy();
  assert.equal(dp.allocated, start);
  const again = new Switch(dp, 'vale2');
  assert.equal(again.sw, sw.sw, 'the space is reused');
  again.destroy();
  assert.equal(dp.allocated, start);
});
