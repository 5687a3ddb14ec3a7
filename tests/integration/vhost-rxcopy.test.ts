// Direct receive of vhost-user ports (issue #17; assembly/virtio/vring.ts "direct receive",
// assembly/switch/forward.ts rx_direct): a frame for a guest whose RX queue runs is written by
// the switch straight into the guest's RX buffer — from the sending guest's buffer (zero-copy
// TX) that is one copy guest to guest — instead of into the port's rx ring buffer for vq_push
// to copy again. Checked with two fake QEMUs (vhost-frontend.ts): the bytes reach guest B's
// buffers while the port's own rx buffers stay untouched, used.len and num_buffers are right
// (also spread over small buffers with MRG_RXBUF), buffers not filled stay the guest's, order
// is kept when a frame has to wait for buffers, frames too long for a guest without MRG_RXBUF
// are counted, a capture still sees the bytes, nothing refers to guest memory after a pass,
// and WASMAP_VHOST_ZEROCOPY=0 keeps the old path.
import { test, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runner } from '../../src/runner.js';
import { loadHost, hostMissingReason, type NativeHost } from '../../src/host.js';
import { conservation, type SwitchPort } from '../../src/switch.js';
import type { VhostUserPort } from '../../src/backends/vhost-user.js';
import { frame, seqOf, BCAST } from '../unit/helpers.js';
import { same } from '../frames.js';
import { FakeQemu, GUEST_FEATURES, FEAT, LAYOUT, NET_HDR, DESC_WRITE, DESC_NEXT } from './vhost-frontend.js';

const required = process.env.WASMAP_REQUIRE_NET === '1';
const loaded = loadHost();
const why = loaded ? '' : `native host unavailable: ${hostMissingReason()}`;
const skip = why && !required ? why : false;
if (why && required) test('vhost direct receive test prerequisites', () => assert.fail(`WASMAP_REQUIRE_NET=1 but ${why}`));
const host = loaded as NativeHost;

const SW = 'valerx';
const AMAC = '52:54:00:12:36:01';
const BMAC = '52:54:00:12:36:02';
const run = `${process.pid}`;
let dir = '';
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });
let seq = 0;
const sockPath = () => join(dir ||= mkdtempSync(join(tmpdir(), `wasmap-rx-${run}-`)), `vm-${++seq}.sock`);

interface Rig { runner: Runner; a: FakeQemu; b: FakeQemu; va: VhostUserPort; vb: VhostUserPort; pb: SwitchPort; p1: SwitchPort }
function rig(t: TestContext, o: { featuresB?: bigint } = {}): Rig {
  const runner = new Runner([SW]);
  const pa = sockPath(), pbPath = sockPath();
  runner.attach(SW, `vhost-user:${pa}`, { name: 'vma' });
  runner.attach(SW, `vhost-user:${pbPath}`, { name: 'vmb' });
  runner.attach(SW, 'p1');
  const a = new FakeQemu(host, pa, () => runner.vhostService(), { name: `wasmap-rx-${run}-${seq}a` });
  const b = new FakeQemu(host, pbPath, () => runner.vhostService(), { name: `wasmap-rx-${run}-${seq}b`, features: o.featuresB });
  t.after(() => { a.close(); b.close(); runner.close(); });
  const backends = (runner as unknown as { backends: Map<string, VhostUserPort> }).backends;
  const va = backends.get(`${SW}:vma`)!, vb = backends.get(`${SW}:vmb`)!;
  assert.ok(va && vb, 'test bug: Runner keeps its backends in backends');
  a.start(); b.start();
  // both MACs learned: each guest broadcasts once (the other guest and p1 get it)
  a.rx.addRx(1); a.rx.publish(); // exactly one each: the tests count the buffers they post
  b.rx.addRx(1); b.rx.publish();
  a.sendFrames([frame(BCAST, AMAC, 60, 900)]);
  b.sendFrames([frame(BCAST, BMAC, 60, 901)]);
  runner.step();
  assert.equal(a.rx.receive().length, 1);
  assert.equal(b.rx.receive().length, 1);
  a.tx.reclaim(); b.tx.reclaim();
  const s = runner.vale.switch(SW);
  s.port('p1')!.recv();
  return { runner, a, b, va, vb, pb: s.port('vmb')!, p1: s.port('p1')! };
}

type Q = { frames: number; direct?: number; dropBig: number; stalls: number; broken: string | null };
const rxq = (v: VhostUserPort): Q => (v.stats() as { queues: { rx: Q } }).queues.rx;

/** The port's own rx ring buffers (one per slot), filled with 0xEE: a frame copied through
 *  them shows. */
function poisonRing(r: Rig): () => boolean {
  const dp = r.runner.dp, a = dp.abi, k = r.pb.rx.kring;
  const n = dp.u32(k + a.KR_NSLOTS), ring = dp.u32(k + a.KR_RING), base = dp.u32(k + a.KR_BUF_BASE), bs = dp.u32(k + a.KR_BUF_SIZE);
  const bufs = Array.from({ length: n }, (_, i) => base + dp.u32(ring + a.RING_SLOTS + a.SLOT_SIZE * i + a.SLOT_BUF_IDX) * bs);
  for (const b of bufs) dp.u8.fill(0xee, b, b + bs);
  return () => bufs.every((b) => dp.u8.subarray(b, b + bs).every((x) => x === 0xee));
}

/** Nothing in the rx kring's private array refers to guest memory (after a pass). */
function noEntries(r: Rig): boolean {
  const dp = r.runner.dp, a = dp.abi, k = r.pb.rx.kring;
  const ptrs = dp.u32(k + a.KR_PTRS), n = dp.u32(k + a.KR_NSLOTS);
  assert.ok(ptrs, 'the rx kring has its KR_PTRS array');
  for (let i = 0; i < n; i++) if (dp.u32(ptrs + a.VQ_PTR_SIZE * i) !== 0) return false;
  return true;
}

function balanced(r: Rig): void {
  const c = conservation(r.runner.vale.switch(SW).stats());
  assert.ok(c.ok, `conservation: ${JSON.stringify(c, (_, v) => (typeof v === 'bigint' ? Number(v) : v))}`);
  assert.equal(r.a.ram.guardDamage(), null);
  assert.equal(r.b.ram.guardDamage(), null);
}

test('one copy guest to guest: frames land in guest B\'s RX buffers without passing the port\'s rx ring buffers; used.len and num_buffers right; buffers not filled stay the guest\'s', { skip }, (t) => {
  const r = rig(t);
  const clean = poisonRing(r);
  r.b.rx.addRx(8); r.b.rx.publish();
  const d0 = rxq(r.vb).direct ?? 0;
  const lens = [60, 1000, 1514]; // 1000 and 1514: zero-copy TX too (rest left in A's buffer)
  const sent = lens.map((l, k) => frame(BMAC, AMAC, l, k + 1));
  r.a.sendFrames(sent, (k) => k === 2); // the last one with its header in a descriptor of its own
  r.runner.step();
  const got = r.b.rx.receive();
  assert.equal(got.length, 3, 'all three frames reached B');
  got.forEach((g, k) => {
    assert.ok(same(g.frame, sent[k]), `frame ${k + 1} (${lens[k]} bytes) intact`);
    assert.equal(g.buffers, 1, 'num_buffers 1: each fits one 2 KiB buffer');
    assert.deepEqual(g.lens, [lens[k] + NET_HDR], 'used.len = header + frame');
  });
  assert.equal((rxq(r.vb).direct ?? 0) - d0, 3, 'counted as written straight into the guest (queues.rx.direct)');
  assert.ok(clean(), 'the port\'s own rx ring buffers were never written: one copy, from A\'s buffer (or the switch\'s snapshot) to B\'s');
  assert.ok(noEntries(r), 'no rx slot refers to guest memory after the pass');
  assert.equal(r.b.rx.usedIdx, r.b.rx.lastUsed, 'nothing more on the used ring');
  assert.equal((r.b.rx.availIdx - r.b.rx.usedIdx) & 0xffff, 5, 'the five buffers not filled are still available to the device');
  // they are used next, in the order offered; then a frame with no buffer waits in the ring and
  // is delivered before the frames after it once the guest posts more
  const more = [4, 5, 6, 7, 8, 9].map((s) => frame(BMAC, AMAC, 100 + s, s));
  r.a.sendFrames(more);
  r.runner.step();
  assert.deepEqual(r.b.rx.receive().map((g) => seqOf(g.frame)), [4, 5, 6, 7, 8], 'the five buffers left took the first five frames');
  assert.ok(rxq(r.vb).stalls > 0, 'the sixth waits for a buffer (a stall)');
  r.a.tx.reclaim();
  r.b.rx.addRx(8); r.b.rx.publish();
  const late = frame(BMAC, AMAC, 300, 10);
  r.a.sendFrames([late]);
  r.runner.step();
  const after2 = r.b.rx.receive();
  assert.deepEqual(after2.map((g) => seqOf(g.frame)), [9, 10], 'the waiting frame first, then the new one: order kept');
  assert.ok(same(after2[1].frame, late));
  assert.ok(noEntries(r));
  r.a.tx.reclaim();
  balanced(r);
  // both ways at once, many passes: every frame intact, all of them direct
  const clean2 = poisonRing(r); // (the frame that waited went through them)
  const d1 = rxq(r.va).direct ?? 0, d2 = rxq(r.vb).direct ?? 0;
  let n = 0;
  for (let pass = 0; pass < 20; pass++) {
    r.a.rx.addRx(4); r.a.rx.publish(); r.b.rx.addRx(4); r.b.rx.publish();
    const fa = [0, 1, 2, 3].map((k) => frame(BMAC, AMAC, 60 + 97 * ((pass + k) % 15), 1000 + 4 * pass + k));
    const fb = [0, 1, 2, 3].map((k) => frame(AMAC, BMAC, 1514 - 89 * ((pass + k) % 15), 2000 + 4 * pass + k));
    r.a.sendFrames(fa); r.b.sendFrames(fb);
    r.runner.step();
    const ga = r.a.rx.receive(), gb = r.b.rx.receive();
    assert.equal(gb.length, 4); assert.equal(ga.length, 4);
    gb.forEach((g, k) => assert.ok(same(g.frame, fa[k]), `A→B pass ${pass} frame ${k}`));
    ga.forEach((g, k) => assert.ok(same(g.frame, fb[k]), `B→A pass ${pass} frame ${k}`));
    r.a.tx.reclaim(); r.b.tx.reclaim();
    n += 4;
  }
  assert.equal((rxq(r.va).direct ?? 0) - d1, n);
  assert.equal((rxq(r.vb).direct ?? 0) - d2, n);
  assert.ok(clean2());
  balanced(r);
});

test('direct receive with MRG_RXBUF into small buffers: a frame spreads over several, num_buffers and each used.len right', { skip }, (t) => {
  const r = rig(t);
  const clean = poisonRing(r);
  r.b.rx.addRx(8, 512); r.b.rx.publish();
  const sent = [frame(BMAC, AMAC, 1514, 1), frame(BMAC, AMAC, 200, 2), frame(BMAC, AMAC, 600, 3)];
  const d0 = rxq(r.vb).direct ?? 0;
  r.a.sendFrames(sent);
  r.runner.step();
  const got = r.b.rx.receive();
  assert.equal(got.length, 3);
  assert.deepEqual(got.map((g) => g.buffers), [3, 1, 2]);
  assert.deepEqual(got[0].lens, [512, 512, 1514 + NET_HDR - 1024]);
  assert.deepEqual(got[1].lens, [200 + NET_HDR]);
  assert.deepEqual(got[2].lens, [512, 600 + NET_HDR - 512]);
  got.forEach((g, k) => assert.ok(same(g.frame, sent[k]), `frame ${k + 1} intact`));
  assert.equal((rxq(r.vb).direct ?? 0) - d0, 3);
  assert.ok(clean(), 'not through the port\'s rx buffers');
  assert.ok(noEntries(r));
  assert.equal((r.b.rx.availIdx - r.b.rx.usedIdx) & 0xffff, 2, 'two of eight buffers left');
  r.a.tx.reclaim();
  balanced(r);
});

test('direct receive without MRG_RXBUF: a frame larger than the guest\'s buffer is dropped and counted, the buffer kept; the short one after it arrives', { skip }, (t) => {
  const r = rig(t, { featuresB: GUEST_FEATURES & ~FEAT.MRG_RXBUF });
  r.b.rx.addRx(4, 512); r.b.rx.publish();
  const big0 = rxq(r.vb).dropBig;
  const sent = [frame(BMAC, AMAC, 1000, 1), frame(BMAC, AMAC, 60, 2)];
  r.a.sendFrames(sent);
  r.runner.step();
  const got = r.b.rx.receive();
  assert.deepEqual(got.map((g) => seqOf(g.frame)), [2], 'the short one arrives');
  assert.ok(same(got[0].frame, sent[1]));
  assert.equal(got[0].buffers, 1);
  assert.equal(rxq(r.vb).dropBig - big0, 1, 'the long one: dropped, counted');
  assert.ok(noEntries(r));
  r.a.tx.reclaim();
  balanced(r);
});

test('direct receive: a chain of two descriptors (header apart) is not taken directly; the old walk fills it, the frames after it keep their order', { skip }, (t) => {
  const r = rig(t);
  const q = r.b.rx, d = 200, e = 201;
  const hdrAt = LAYOUT.spare, bufAt = LAYOUT.spare + 0x1000;
  q.desc(d, hdrAt, NET_HDR, DESC_WRITE | DESC_NEXT, e);
  q.desc(e, bufAt, 2048, DESC_WRITE);
  q.offer(d);
  q.addRx(2, 2048);
  q.publish();
  const d0 = rxq(r.vb).direct ?? 0;
  const f2 = [frame(BMAC, AMAC, 700, 3), frame(BMAC, AMAC, 80, 4)];
  r.a.sendFrames(f2);
  r.runner.step();
  assert.equal(q.pendingUsed, 2);
  const u0 = q.used(q.lastUsed), u1 = q.used(q.lastUsed + 1);
  assert.equal(u0.id, d, 'the two-descriptor chain first');
  assert.equal(u0.len, 700 + NET_HDR);
  const mem = r.b.ram;
  const whole = Buffer.concat([mem.u8.slice(mem.at(hdrAt), mem.at(hdrAt) + NET_HDR), mem.u8.slice(mem.at(bufAt), mem.at(bufAt) + 700)]);
  assert.ok(same(whole.subarray(NET_HDR), f2[0]), 'the frame across header and buffer descriptors');
  assert.equal(u1.len, 80 + NET_HDR);
  assert.equal((rxq(r.vb).direct ?? 0) - d0, 0, 'both through the ring (order kept behind the first)');
  assert.ok(noEntries(r));
});

test('direct receive: a capture of the receiving port records the frames written into guest memory', { skip }, (t) => {
  const r = rig(t);
  const file = join(dir, `cap-${run}.pcap`);
  r.runner.capture(SW, 'vmb', file, 0);
  r.b.rx.addRx(8); r.b.rx.publish();
  const sent = [frame(BMAC, AMAC, 60, 1), frame(BMAC, AMAC, 1514, 2)];
  const d0 = rxq(r.vb).direct ?? 0;
  r.a.sendFrames(sent);
  r.runner.step();
  r.runner.captureStop(SW, 'vmb');
  assert.equal(r.b.rx.receive().length, 2);
  assert.equal((rxq(r.vb).direct ?? 0) - d0, 2);
  const pcap = readFileSync(file);
  const recs: Buffer[] = [];
  for (let o = 24; o + 16 <= pcap.length;) { const l = pcap.readUInt32LE(o + 8); recs.push(pcap.subarray(o + 16, o + 16 + l)); o += 16 + l; }
  assert.equal(recs.length, 2, 'both frames captured');
  recs.forEach((f, k) => assert.ok(same(f, sent[k]), `captured frame ${k + 1} as delivered`));
});

test('direct receive: a guest\'s RX buffer outside its memory still breaks the queue (the old walk decides); the port\'s direct path is off once the guest goes', { skip }, (t) => {
  const r = rig(t);
  const q = r.b.rx;
  q.desc(210, 0x7fff0000, 2048, DESC_WRITE); // past the guest's RAM
  q.offer(210); q.publish();
  r.a.sendFrames([frame(BMAC, AMAC, 60, 1)]);
  r.runner.step();
  assert.match(rxq(r.vb).broken ?? '', /region|memory/i, 'broken by the old walk, with its reason');
  assert.ok(noEntries(r));
  const dp = r.runner.dp, k = r.pb.rx.kring;
  r.b.disconnect();
  for (let i = 0; i < 3; i++) { r.runner.vhostService(); r.runner.step(); }
  assert.equal(dp.u32(k + dp.abi.KR_RXVQ), 0, 'no virtqueue behind the rx kring once the guest is gone');
  assert.equal(dp.u32(k + dp.abi.KR_RXMT), 0);
});

test('WASMAP_VHOST_ZEROCOPY=0: frames go through the port\'s rx ring buffers as before, intact', { skip }, (t) => {
  const was = process.env.WASMAP_VHOST_ZEROCOPY;
  process.env.WASMAP_VHOST_ZEROCOPY = '0';
  let r: Rig;
  try { r = rig(t); } finally { if (was === undefined) delete process.env.WASMAP_VHOST_ZEROCOPY; else process.env.WASMAP_VHOST_ZEROCOPY = was; }
  const clean = poisonRing(r);
  r.b.rx.addRx(8); r.b.rx.publish();
  const sent = [frame(BMAC, AMAC, 60, 1), frame(BMAC, AMAC, 1514, 2)];
  r.a.sendFrames(sent);
  r.runner.step();
  const got = r.b.rx.receive();
  got.forEach((g, k) => assert.ok(same(g.frame, sent[k])));
  assert.equal(rxq(r.vb).direct ?? 0, 0);
  assert.ok(!clean(), 'through the ring buffers');
  r.a.tx.reclaim();
  balanced(r);
});
