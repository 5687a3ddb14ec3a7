// pkt-gen's engines (src/gen.ts, assembly/gen.ts): the UDP/IPv4 frames they write, checked
// field by field and against an independent RFC 1071 checksum, the order in which address and
// port ranges are walked, budgets, argument errors, and whole traffic plans through a switch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Datapath } from '../../src/datapath.js';
import { Pipe } from '../../src/pipe.js';
import { Switch, conservation, totalDrops } from '../../src/switch.js';
import { Generator, TrafficPlan, parseAddrRange, parseMac } from '../../src/gen.js';
import {
  NOW, NS_MOREFRAG, NS_NO_LEARN, assertAudit, assertConserved, assertWasmapError, be16, be32, frame, ip4, macBytes,
  onesSum, pkts, portStats, sendFrags, split, station, toPort,
} from './helpers.js';

const PAYLOAD = 'wasmap pkt-gen payload. ';

interface Udp4 { sip: number; dip: number; sport: number; dport: number }

/** Check every field of a generated frame and both checksums, computed here from scratch. */
function checkFrame(f: Uint8Array, len: number, dst: string, src: string, want?: Udp4): Udp4 {
  assert.equal(f.length, len, 'frame length');
  assert.deepEqual(f.subarray(0, 6), macBytes(dst), 'destination MAC');
  assert.deepEqual(f.subarray(6, 12), macBytes(src), 'source MAC');
  assert.equal(be16(f, 12), 0x0800, 'ethertype IPv4');
  const ip = f.subarray(14, 34);
  assert.deepEqual([ip[0], ip[1], be16(ip, 2), be16(ip, 4), be16(ip, 6), ip[8], ip[9]],
    [0x45, 0x10, len - 14, 0, 0x4000, 64, 17], 'version/IHL, TOS, total length, id, DF, TTL, UDP');
  const zeroed = ip.slice(); zeroed[10] = 0; zeroed[11] = 0;
  assert.equal(be16(ip, 10), ~onesSum(zeroed) & 0xffff, 'IPv4 header checksum');
  assert.equal(onesSum(ip), 0xffff, 'the header sums to 0xffff');
  const udp = f.subarray(34);
  assert.equal(be16(udp, 4), len - 34, 'UDP length');
  const pseudo = new Uint8Array(12);
  pseudo.set(ip.subarray(12, 20)); pseudo[9] = 17; pseudo[10] = (len - 34) >> 8; pseudo[11] = (len - 34) & 255;
  const uz = udp.slice(); uz[6] = 0; uz[7] = 0;
  const c = ~onesSum(uz, onesSum(pseudo)) & 0xffff;
  assert.equal(be16(udp, 6), c === 0 ? 0xffff : c, 'UDP checksum (RFC 768: 0 is sent as 0xffff)');
  for (let i = 42; i < len; i++) {
    if (f[i] !== PAYLOAD.charCodeAt((i - 42) % PAYLOAD.length)) assert.fail(`payload byte ${i}: ${f[i]}`);
  }
  const got = { sip: be32(ip, 12), dip: be32(ip, 16), sport: be16(udp, 0), dport: be16(udp, 2) };
  if (want) assert.deepEqual(got, want);
  return got;
}

/** Fill `n` frames from `gen` into a pipe and read them on the other end. */
function throughPipe(dp: Datapath, gen: Generator, n: number, bufSize = 2048): Uint8Array[] {
  const p = new Pipe(dp, { slots: 128, bufSize });
  const out: Uint8Array[] = [];
  while (out.length < n) {
    const k = gen.fill(p.master.tx.kring, n - out.length);
    p.master.txsync();
    out.push(...p.slave.recv());
    if (k === 0) break;
  }
  assertAudit(p.region);
  p.close();
  return out;
}

for (const len of [60, 61, 1514, 42]) {
  test(`a ${len}-byte frame: every header field and both checksums`, () => {
    const dp = new Datapath();
    const gen = new Generator(dp, { len, srcMac: '02:00:00:00:00:0a', dstMac: '02:00:00:00:00:0b', src: '192.168.1.7:4000', dst: '10.255.0.254:53' });
    const want = { sip: ip4('192.168.1.7'), dip: ip4('10.255.0.254'), sport: 4000, dport: 53 };
    checkFrame(gen.frame(), len, '02:00:00:00:00:0b', '02:00:00:00:00:0a', want);
    const got = throughPipe(dp, gen, 3);
    assert.equal(got.length, 3);
    for (const f of got) checkFrame(f, len, '02:00:00:00:00:0b', '02:00:00:00:00:0a', want);
    assert.deepEqual([gen.txPackets, gen.txBytes], [3n, BigInt(3 * len)]);
    gen.close();
  });
}

test('defaults: 60 bytes, 02:00:00:00:00:01 -> broadcast, 10.0.0.1:1234 -> 10.1.0.1:1234', () => {
  const dp = new Datapath();
  const gen = new Generator(dp);
  checkFrame(gen.frame(), 60, 'ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01', { sip: ip4('10.0.0.1'), dip: ip4('10.1.0.1'), sport: 1234, dport: 1234 });
});

test('ranges are walked in pkt-gen\'s order: source port, source IP, dest port, dest IP; every frame checksummed', () => {
  const dp = new Datapath();
  const gen = new Generator(dp, { len: 61, src: '10.0.0.1-10.0.0.3:1000-1001', dst: '10.1.0.1-10.1.0.2:2000-2001' });
  const cycle: Udp4[] = [];
  for (const dip of ['10.1.0.1', '10.1.0.2']) for (const dport of [2000, 2001]) {
    for (const sip of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) for (const sport of [1000, 1001]) {
      cycle.push({ sip: ip4(sip), dip: ip4(dip), sport, dport });
    }
  }
  assert.equal(cycle.length, 24);
  const frames = throughPipe(dp, gen, 53);
  assert.equal(frames.length, 53);
  frames.forEach((f, i) => checkFrame(f, 61, 'ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01', cycle[i % 24]));
  checkFrame(gen.frame(), 61, 'ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01', cycle[53 % 24]); // the next one
});

test('a source-only range: (10.0.0.1,1000) (10.0.0.1,1001) (10.0.0.2,1000) ... then it wraps', () => {
  const dp = new Datapath();
  const gen = new Generator(dp, { len: 1514, src: '10.0.0.1-10.0.0.3:1000-1001' });
  const frames = throughPipe(dp, gen, 8);
  const seen = frames.map((f) => checkFrame(f, 1514, 'ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01'));
  assert.deepEqual(seen.map((s) => `${s.sip & 255}:${s.sport}`), ['1:1000', '1:1001', '2:1000', '2:1001', '3:1000', '3:1001', '1:1000', '1:1001']);
  assert.ok(seen.every((s) => s.dip === ip4('10.1.0.1') && s.dport === 1234));
});

test('port ranges that reach 65535 and wide IP ranges keep valid checksums', () => {
  const dp = new Datapath();
  const gen = new Generator(dp, { len: 99, src: '255.255.255.250-255.255.255.255:65530-65535', dst: '0.0.0.0-0.0.1.0:0-3' });
  const frames = throughPipe(dp, gen, 120);
  assert.equal(frames.length, 120);
  const seen = frames.map((f) => checkFrame(f, 99, 'ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01'));
  assert.deepEqual(seen.slice(0, 7).map((s) => [s.sip & 255, s.sport]), [[250, 65530], [250, 65531], [250, 65532], [250, 65533], [250, 65534], [250, 65535], [251, 65530]]);
  assert.deepEqual([seen[36].sip & 255, seen[36].sport, seen[36].dport], [250, 65530, 1], 'after 6 x 6 the dest port steps');
});

test('count: the generator stops at its budget; a new budget lets it go on', () => {
  const dp = new Datapath();
  const p = new Pipe(dp, { slots: 64 });
  const gen = new Generator(dp, { count: 10 });
  assert.equal(gen.budget, 10);
  assert.equal(gen.fill(p.master.tx.kring), 10);
  assert.equal(gen.fill(p.master.tx.kring), 0);
  assert.equal(gen.budget, 0);
  assert.equal(p.master.txsync(), 10);
  gen.budget = 5;
  assert.equal(gen.fill(p.master.tx.kring, 3), 3, 'max bounds one call');
  assert.equal(gen.fill(p.master.tx.kring), 2);
  assert.equal(gen.fill(p.master.tx.kring), 0);
  assert.deepEqual([gen.txPackets, gen.txBytes, gen.budget], [15n, 900n, 0]);
  p.master.txsync();
  const sink = new Generator(dp);
  p.slave.rxsync();
  assert.equal(sink.drain(p.slave.rx.kring), 15);
  assert.deepEqual([sink.rxPackets, sink.rxBytes], [15n, 900n]);
  assert.equal(p.slave.rxsync(), 0, 'the sink released everything');
  const unlimited = new Generator(dp);
  assert.equal(unlimited.fill(p.master.tx.kring), 63, 'without a count: as many as the ring holds');
  assertAudit(p.region);
});

test('a sink counts a multi-slot frame once, with all its bytes', () => {
  const dp = new Datapath();
  const p = new Pipe(dp, { slots: 16, bufSize: 256 });
  sendFrags(p.master.tx, split(frame(station(2), station(1), 700, 0), [256, 256, 188]));
  p.master.send([frame(station(2), station(1), 60, 1)]);
  p.slave.rxsync();
  const sink = new Generator(dp);
  assert.equal(sink.drain(p.slave.rx.kring), 2);
  assert.deepEqual([sink.rxPackets, sink.rxBytes], [2n, 760n]);
  assert.equal(p.slave.rx.flags(0) & NS_MOREFRAG, NS_MOREFRAG);
  assertAudit(p.region);
});

test('rubbish mode (pkt-gen -r) sets lengths and never writes the buffers', () => {
  const dp = new Datapath();
  const gen = new Generator(dp, { len: 100, rubbish: true });
  const frames = throughPipe(dp, gen, 4);
  assert.deepEqual(frames.map((f) => f.length), [100, 100, 100, 100]);
  assert.ok(frames.every((f) => f.every((b) => b === 0)), 'fresh buffers stay zero');
  assert.equal(gen.txPackets, 4n);
});

test('generated frames cross the switch with checksums intact (1514 bytes, ranges)', () => {
  const dp = new Datapath();
  const sw = new Switch(dp, 'vale0');
  const a = sw.attach('a', { slots: 128 }), b = sw.attach('b', { slots: 128 });
  const gen = new Generator(dp, { len: 1514, srcMac: station(0xa), dstMac: station(0xb), src: '10.0.0.1-10.0.0.2:1-2', count: 20 });
  assert.equal(gen.fill(a.tx.kring), 20);
  assert.equal(sw.round(NOW), 20);
  const got = b.recv();
  assert.equal(got.length, 20);
  got.forEach((f, i) => checkFrame(f, 1514, station(0xb), station(0xa),
    { sip: ip4('10.0.0.1') + ((i >> 1) & 1), dip: ip4('10.1.0.1'), sport: 1 + (i & 1), dport: 1234 }));
  assertConserved(sw);
  sw.destroy();
});

test('slot flags from the generator reach the switch: NO_LEARN, explicit destination', () => {
  const dp = new Datapath();
  const sw = new Switch(dp, 'vale0');
  const a = sw.attach('a', { slots: 64 }), b = sw.attach('b', { slots: 64 }), c = sw.attach('c', { slots: 64 });
  const g1 = new Generator(dp, { srcMac: station(0xa), slotFlags: NS_NO_LEARN, count: 5 });
  g1.fill(a.tx.kring);
  sw.round(NOW);
  assert.equal(sw.stats().learned, 0n);
  assert.deepEqual([b.recv().length, c.recv().length], [5, 5]);
  const g2 = new Generator(dp, { srcMac: station(0xa), slotFlags: toPort(c.index), count: 7 });
  g2.fill(a.tx.kring);
  sw.round(NOW);
  assert.deepEqual([b.recv().length, c.recv().length], [0, 7]);
  assertConserved(sw);
});

test('TrafficPlan through a 2-port switch: after warm-up, received == sent and no drops', () => {
  const dp = new Datapath();
  const start = dp.allocated;
  const sw = new Switch(dp, 'vale0');
  const a = sw.attach('a'), b = sw.attach('b');
  const ga = new Generator(dp, { srcMac: station(0xa), dstMac: station(0xb), src: '10.0.0.1:1-100' });
  const gb = new Generator(dp, { srcMac: station(0xb), dstMac: station(0xa), len: 1514 });
  const sa = new Generator(dp), sb = new Generator(dp);
  const plan = new TrafficPlan(dp, sw.sw, [{ gen: ga, kring: a.tx.kring, burst: 64 }, { gen: gb, kring: b.tx.kring, burst: 32 }],
    [{ gen: sa, kring: a.rx.kring }, { gen: sb, kring: b.rx.kring }]);
  assert.equal(plan.run(1, NOW), 96, 'warm-up round');
  const sent0 = ga.txPackets + gb.txPackets;
  const got = plan.run(500, NOW);
  assert.equal(got, 500 * 96);
  assert.equal(ga.txPackets + gb.txPackets - sent0, BigInt(got));
  assert.deepEqual([sb.rxPackets, sa.rxPackets], [ga.txPackets, gb.txPackets]);
  assert.deepEqual([sb.rxBytes, sa.rxBytes], [ga.txBytes, gb.txBytes]);
  const s = sw.stats();
  assert.equal(totalDrops(s.ports), 0n);
  assert.deepEqual([s.floodExtra, s.learned, s.frames, s.rounds], [0n, 2n, 501n * 96n, 501n]);
  assert.deepEqual(pkts(portStats(sw, 'a')), { tx: 501 * 64, rx: 501 * 32 });
  const c = conservation(s);
  assert.deepEqual([c.ok, c.sent, c.received, c.drops], [true, 501n * 96n, 501n * 96n, 0n]);
  plan.close();
  for (const g of [ga, gb, sa, sb]) g.close();
  sw.destroy();
  assert.equal(dp.allocated, start);
});

test('TrafficPlan with counted generators stops at the count; a flood to 3 ports is counted in floodExtra', () => {
  const dp = new Datapath();
  const sw = new Switch(dp, 'vale0');
  const ports = ['a', 'b', 'c'].map((n) => sw.attach(n, { slots: 256 }));
  const gen = new Generator(dp, { count: 1000 }); // to broadcast
  const sinks = ports.map(() => new Generator(dp));
  const plan = new TrafficPlan(dp, sw.sw, [{ gen, kring: ports[0].tx.kring, burst: 64 }], sinks.map((g, i) => ({ gen: g, kring: ports[i].rx.kring })));
  assert.equal(plan.run(50, NOW), 2000);
  assert.equal(gen.txPackets, 1000n);
  assert.deepEqual(sinks.map((s) => s.rxPackets), [0n, 1000n, 1000n]);
  assert.equal(sw.stats().floodExtra, 1000n);
  assertConserved(sw);
});

test('parseMac: six hex bytes; anything else is EINVAL naming the input', () => {
  assert.deepEqual(parseMac('02:00:00:00:00:01'), Uint8Array.from([2, 0, 0, 0, 0, 1]));
  assert.deepEqual(parseMac('AA:bb:C:d:0:ff'), Uint8Array.from([0xaa, 0xbb, 0xc, 0xd, 0, 0xff]));
  for (const bad of ['', '02:00:00:00:00', '02:00:00:00:00:01:02', '02-00-00-00-00-01', '020:00:00:00:00:01', 'zz:00:00:00:00:01', '02:00:00:00:00:01 ', ':::::']) {
    assertWasmapError(() => parseMac(bad), 'EINVAL', `'${bad}'`);
  }
});

test('parseAddrRange: IP[-IP][:PORT[-PORT]] into inclusive host-order ranges', () => {
  assert.deepEqual(parseAddrRange('10.0.0.1'), { ip: [0x0a000001, 0x0a000001], port: [1234, 1234] });
  assert.deepEqual(parseAddrRange('10.0.0.1-10.0.0.3:1000-1001'), { ip: [0x0a000001, 0x0a000003], port: [1000, 1001] });
  assert.deepEqual(parseAddrRange('255.255.255.255:0'), { ip: [0xffffffff, 0xffffffff], port: [0, 0] });
  assert.deepEqual(parseAddrRange('1.2.3.4:65535'), { ip: [0x01020304, 0x01020304], port: [65535, 65535] });
});

test('parseAddrRange errors are EINVAL and quote the input', () => {
  for (const bad of ['', '10.0.0', '10.0.0.256', '10.0.0.1.2', 'a.b.c.d', '10.0.0.-1', ':80', '10.0.0.1:', '10.0.0.1:70000',
    '10.0.0.1:-1', '10.0.0.1:12ab', '10.0.0.1:1.5', '10.0.0.3-10.0.0.1', '10.0.0.1:5-3', '10.0.0.1-:80']) {
    assertWasmapError(() => parseAddrRange(bad), 'EINVAL', `'${bad}'`);
  }
});

test('parseAddrRange refuses extra range parts instead of ignoring them', () => {
  const bad = ['10.0.0.1-10.0.0.2-10.0.0.3', '10.0.0.1:1000-1001-1002', '10.0.0.1:80:90'];
  const outcome = (s: string) => { try { return JSON.stringify(parseAddrRange(s)); } catch (e) { return (e as { code?: string }).code; } };
  assert.deepEqual(bad.map((s) => [s, outcome(s)]), bad.map((s) => [s, 'EINVAL']));
  for (const s of bad) assertWasmapError(() => parseAddrRange(s), 'EINVAL', `'${s}'`);
});

test('Generator argument errors: frame length 42..9216, bad addresses; a refused generator allocates nothing', () => {
  const dp = new Datapath();
  for (const len of [41, 9217, 60.5, 0]) assertWasmapError(() => new Generator(dp, { len }), 'EINVAL', String(len));
  assert.equal(dp.allocated, 0);
  assertWasmapError(() => new Generator(dp, { srcMac: 'nope' }), 'EINVAL', 'nope');
  assertWasmapError(() => new Generator(dp, { dst: '10.0.0.1:99999' }), 'EINVAL', '10.0.0.1:99999');
  assert.equal(dp.allocated, 0, 'nothing leaked by the refused generators');
  const g = new Generator(dp, { len: 9216 });
  assert.equal(g.len, 9216);
  g.close();
  assert.equal(dp.allocated, 0);
});
