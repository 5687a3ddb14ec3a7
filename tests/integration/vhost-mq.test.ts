// vhost-user multiqueue (issue #17): a front-end with several queue pairs, served. The fake QEMU
// of ./vhost-frontend.ts drives pair 0 as ever and a second pair (queues 2 and 3) set up here in
// the free part of its RAM. What is checked: MQ offered (protocol bit 0, GET_QUEUE_NUM, the
// virtio MQ bit), every TX queue drained into the one port (zero-copy frames from two queues in
// one pass returned to the right used ring), the rx ring spread over the RX queues by flow, a
// disabled queue not served, queues beyond the cap refused with the reason, kicks of every queue
// polled, a windowed guest with two pairs, and restarts leaving nothing behind.
// Needs the native host only; skipped without it unless WASMAP_REQUIRE_NET=1.
import { test, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runner } from '../../src/runner.js';
import { loadHost, hostMissingReason, type NativeHost } from '../../src/host.js';
import type { SwitchPort } from '../../src/switch.js';
import type { VhostUserPort } from '../../src/backends/vhost-user.js';
import { macBytes, station } from '../unit/helpers.js';
import { FakeQemu, REQ, NET_HDR, VirtQueue, vringState, vringAddr, vringFile, type GuestOptions } from './vhost-frontend.js';

const required = process.env.WASMAP_REQUIRE_NET === '1';
const loaded = loadHost();
const why = loaded ? '' : `native host unavailable: ${hostMissingReason()}`;
const skip = why && !required ? why : false;
if (why && required) test('vhost-user multiqueue test prerequisites', () => assert.fail(`WASMAP_REQUIRE_NET=1 but ${why}`));
const host = loaded as NativeHost;

const SW = 'valemq';
const GMAC = '52:54:00:12:35:01', PMAC = station(0x201);
const PROTO_MQ = 1n << 0n, VIRTIO_NET_F_MQ = 1n << 22n;
let dir = '';
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });
let seq = 0;
const sockPath = (what: string) => join(dir ||= mkdtempSync(join(tmpdir(), `wasmap-mq-${process.pid}-`)), `${what}-${++seq}.sock`);

interface Q { frames: number; chains: number; kicks: number; dropBig: number; dropBad: number; stalls: number; broken: string | null }
interface Pair { rx: Q; tx: Q; enabled: boolean }
interface VStats { name: string; down: string | null; connected: boolean; txPackets: number; rxPackets: number; dropFull: number; downDrops: number; guestMappedBytes: number;
  queues: { rx: Q; tx: Q; pairs: Pair[] }; queuePairsAsked?: number; queuePairsServed?: number; queuePairsEnabled?: number; queuePairsRefused?: string; events: string[]; window?: { misses: number } }
const stats = (r: Runner, name = 'vm1') => (r.stats(SW) as { ports: VStats[] }[])[0].ports.find((p) => p.name === name)!;
const listed = (r: Runner) => (r.list(SW) as (VStats & { name: string })[]).find((x) => x.name === `${SW}:vm1`)!;
const vhostPort = (r: Runner) => (r as unknown as { backends: Map<string, VhostUserPort> }).backends.get(`${SW}:vm1`)!;

// pair 1 in the fake guest's spare RAM (0x340000–0x400000), 64 entries a queue
const N1 = 64;
const L1 = {
  rx: { desc: 0x340000, avail: 0x341000, used: 0x342000, buf: (i: number) => 0x350000 + i * 2048, bufSize: 2048 },
  tx: { desc: 0x343000, avail: 0x344000, used: 0x345000, buf: (i: number) => 0x370000 + i * 2048, bufSize: 2048 },
};

interface MqRig { runner: Runner; g: FakeQemu; p1: SwitchPort; rx1: VirtQueue; tx1: VirtQueue; fds: number[][]; startPair1(enable?: boolean): void }
const openFds = () => readdirSync('/proc/self/fd').length;

/** A runner with vhost-user port vm1 and a virtual port p1; a fake QEMU whose guest has pair 0
 *  (FakeQemu's queues 0, 1) and pair 1 (queues 2, 3, here). */
function rig(t: TestContext, attach: Record<string, unknown> = {}, o: GuestOptions = {}): MqRig {
  const runner = new Runner([SW]);
  const path = sockPath('vm1');
  runner.attach(SW, `vhost-user:${path}`, { name: 'vm1', ...attach });
  runner.attach(SW, 'p1');
  const g = new FakeQemu(host, path, () => runner.vhostService(), { name: `wasmap-mq-${process.pid}-${seq}`, ...o });
  const rx1 = new VirtQueue(g.ram, 2, N1, L1.rx), tx1 = new VirtQueue(g.ram, 3, N1, L1.tx);
  const fds: number[][] = [[-1, -1], [-1, -1]]; // [kick, call] of queues 2 and 3
  const closeFds = () => { for (const f of fds) for (let k = 0; k < 2; k++) if (f[k] >= 0) { host.closeFd(f[k]); f[k] = -1; } };
  t.after(() => { closeFds(); g.close(); runner.close(); });
  const startPair1 = (enable = true) => {
    closeFds();
    rx1.reset(); tx1.reset();
    [rx1, tx1].forEach((vq, j) => {
      const i = vq.index, r = g.ram, q = g.q;
      fds[j] = [host.eventfdCreate(), host.eventfdCreate()];
      q.call(REQ.SET_VRING_NUM, vringState(i, vq.num));
      q.call(REQ.SET_VRING_BASE, vringState(i, 0));
      q.call(REQ.SET_VRING_ADDR, vringAddr(i, r.uva(vq.l.desc), r.uva(vq.l.used), r.uva(vq.l.avail)));
      q.call(REQ.SET_VRING_KICK, vringFile(i), [fds[j][0]]);
      q.call(REQ.SET_VRING_CALL, vringFile(i), [fds[j][1]]);
      if (enable) q.call(REQ.SET_VRING_ENABLE, vringState(i, 1));
    });
  };
  return { runner, g, p1: runner.vale.switch(SW).port('p1')!, rx1, tx1, fds, startPair1 };
}

/** An IPv4/UDP frame from `sport` with a sequence number at 42 (after the UDP header). */
function udp(dst: string, src: string, sport: number, n: number, len = 100): Uint8Array {
  const f = new Uint8Array(len), dv = new DataView(f.buffer);
  f.set(macBytes(dst), 0); f.set(macBytes(src), 6); dv.setUint16(12, 0x0800);
  f[14] = 0x45; dv.setUint16(16, len - 14); f[22] = 64; f[23] = 17;
  f.set([10, 0, 0, 1], 26); f.set([10, 0, 0, 2], 30);
  dv.setUint16(34, sport); dv.setUint16(36, 9); dv.setUint16(38, len - 34);
  dv.setUint32(42, n);
  for (let i = 46; i < len; i++) f[i] = (i * 7 + n * 13) & 255;
  return f;
}
const useq = (f: Uint8Array) => new DataView(f.buffer, f.byteOffset).getUint32(42);
const usport = (f: Uint8Array) => new DataView(f.buffer, f.byteOffset).getUint16(34);
const withHdr = (f: Uint8Array) => { const b = new Uint8Array(NET_HDR + f.length); b.set(f, NET_HDR); return b; };

test('multiqueue offered: protocol MQ, GET_QUEUE_NUM 8, VIRTIO_NET_F_MQ; pair 1 served once enabled, not before; ctl list counts the pairs', { skip }, (t) => {
  const { runner, g, p1, tx1, startPair1 } = rig(t);
  g.start();
  assert.equal(g.offeredProtocol & PROTO_MQ, PROTO_MQ, 'VHOST_USER_PROTOCOL_F_MQ offered');
  assert.equal(g.offered & VIRTIO_NET_F_MQ, VIRTIO_NET_F_MQ, 'VIRTIO_NET_F_MQ offered');
  assert.equal(g.q.call(REQ.GET_QUEUE_NUM)!.readBigUInt64LE(0), 8n, 'eight queue pairs');
  assert.equal(listed(runner).down, null, 'pair 0 up: the port is up');
  startPair1(false);
  assert.equal(listed(runner).queuePairsAsked, 2);
  assert.equal(listed(runner).queuePairsEnabled, 1, 'pair 1 set up, not enabled');
  tx1.addTx(withHdr(udp(PMAC, GMAC, 1000, 7))); tx1.publish();
  runner.step();
  assert.equal(p1.recv().length, 0, 'a queue not enabled is not read');
  assert.equal(tx1.usedIdx, 0);
  g.q.call(REQ.SET_VRING_ENABLE, vringState(3, 1));
  g.q.call(REQ.SET_VRING_ENABLE, vringState(2, 1));
  assert.equal(listed(runner).queuePairsEnabled, 2);
  runner.step();
  const got = p1.recv();
  assert.deepEqual(got.map(useq), [7], 'enabled: the frame on TX queue 3 is taken');
  assert.deepEqual(tx1.reclaim().length, 1, 'and its chain used on queue 3');
  const s = stats(runner);
  assert.equal(s.queues.pairs.length, 2);
  assert.equal(s.queues.pairs[1].tx.frames, 1, 'per-pair stats');
  assert.equal(s.queues.tx.frames, 1, 'totals over the pairs');
});

test('TX: both queues drained into the one port, fairly; zero-copy frames of two queues in one pass go back to their own used rings, intact', { skip }, (t) => {
  const { runner, g, p1, tx1, startPair1 } = rig(t);
  g.start();
  startPair1();
  // long frames (zero-copy candidates: the rest past the prefix stays in guest memory) and
  // short ones on both queues, interleaved
  const sent: Uint8Array[] = [];
  const ids0: number[] = [], ids1: number[] = [];
  for (let k = 0; k < 24; k++) {
    const f0 = udp(PMAC, GMAC, 2000 + (k % 3), k, k % 2 ? 1400 : 90), f1 = udp(PMAC, GMAC, 3000 + (k % 3), 1000 + k, k % 2 ? 90 : 1400);
    ids0.push(g.tx.addTx(withHdr(f0))); ids1.push(tx1.addTx(withHdr(f1)));
    sent.push(f0, f1);
  }
  g.tx.publish(); tx1.publish();
  for (let k = 0; k < 4; k++) runner.step();
  const got = p1.recv();
  const key = (f: Uint8Array) => useq(f);
  assert.equal(got.length, sent.length, 'every frame of both queues reached p1');
  const byKey = new Map(sent.map((f) => [key(f), f]));
  for (const f of got) assert.deepEqual(Buffer.from(f), Buffer.from(byKey.get(key(f))!), `frame ${key(f)} intact`);
  // per queue, in order
  assert.deepEqual(got.map(useq).filter((n) => n < 1000), [...Array(24).keys()], 'queue 1 frames in order');
  assert.deepEqual(got.map(useq).filter((n) => n >= 1000), [...Array(24).keys()].map((k) => 1000 + k), 'queue 3 frames in order');
  // every chain back on its own queue's used ring (a chain id of the other queue would be
  // refused by reclaim: "not a chain the driver offered"), none twice, none missing
  const u0 = g.tx.reclaim().map((e) => e.id), u1 = tx1.reclaim().map((e) => e.id);
  assert.deepEqual([...u0].sort((a, b) => a - b), [...ids0].sort((a, b) => a - b), 'queue 1 got back exactly its chains');
  assert.deepEqual([...u1].sort((a, b) => a - b), [...ids1].sort((a, b) => a - b), 'queue 3 got back exactly its chains');
  const s = stats(runner);
  assert.equal(s.queues.pairs[0].tx.frames, 24); assert.equal(s.queues.pairs[1].tx.frames, 24);
  // fairness: with both queues full of work, one pass (budget 256) takes from both
  for (let k = 0; k < 60; k++) { g.tx.addTx(withHdr(udp(PMAC, GMAC, 1, 5000 + k))); tx1.addTx(withHdr(udp(PMAC, GMAC, 2, 6000 + k))); }
  g.tx.publish(); tx1.publish();
  vhostPort(runner).pull(64);
  const st = stats(runner);
  assert.equal(st.queues.pairs[0].tx.frames - 24, 32, 'a budget of 64: 32 from queue 1');
  assert.equal(st.queues.pairs[1].tx.frames - 24, 32, 'and 32 from queue 3');
});

test('RX: frames spread over the enabled RX queues by flow (one flow, one queue, in order); a disabled queue gets none; only pair 0: everything there', { skip }, (t) => {
  const { runner, g, p1, rx1, startPair1 } = rig(t);
  g.start();
  startPair1();
  g.rx.addRx(128); g.rx.publish(); rx1.addRx(64); rx1.publish();
  const send = (from: number, n: number) => { const fs = Array.from({ length: n }, (_, k) => udp(GMAC, PMAC, 4000 + (k % 16), from + k)); assert.equal(p1.send(fs), n); return fs; };
  const sent = send(0, 64);
  runner.step();
  const r0 = g.rx.receive().map((x) => x.frame), r1 = rx1.receive().map((x) => x.frame);
  assert.equal(r0.length + r1.length, 64, 'every frame delivered');
  assert.ok(r0.length > 0 && r1.length > 0, `both RX queues used (${r0.length} on queue 0, ${r1.length} on queue 2)`);
  const on0 = new Set(r0.map(usport)), on1 = new Set(r1.map(usport));
  for (const p of on0) assert.ok(!on1.has(p), `flow ${p} on one queue only`);
  for (const r of [r0, r1]) for (const p of new Set(r.map(usport))) {
    const q = r.filter((f) => usport(f) === p).map(useq);
    assert.deepEqual(q, [...q].sort((a, b) => a - b), `flow ${p} in order`);
  }
  const all = new Map(sent.map((f) => [useq(f), f]));
  for (const f of [...r0, ...r1]) assert.deepEqual(Buffer.from(f), Buffer.from(all.get(useq(f))!), 'intact');
  const s = stats(runner);
  assert.equal(s.queues.pairs[0].rx.frames, r0.length); assert.equal(s.queues.pairs[1].rx.frames, r1.length);
  // the guest takes pair 1 away (as the control queue's MQ_VQ_PAIRS_SET 1 does): all to queue 0
  g.q.call(REQ.SET_VRING_ENABLE, vringState(2, 0));
  g.q.call(REQ.SET_VRING_ENABLE, vringState(3, 0));
  send(100, 32);
  runner.step();
  assert.equal(g.rx.receive().length, 32, 'pair 1 disabled: every frame on queue 0');
  assert.equal(rx1.receive().length, 0);
  // a queue that has no buffers holds its flows (and, in ring order, those behind them) until it has
  g.q.call(REQ.SET_VRING_ENABLE, vringState(2, 1));
  g.q.call(REQ.SET_VRING_ENABLE, vringState(3, 1));
  const before = stats(runner);
  send(200, 16);
  runner.step();
  const a = g.rx.receive().length, b = rx1.receive().length;
  assert.equal(a + b, 16, `${a} + ${b} delivered`);
  assert.equal(stats(runner).dropFull, before.dropFull);
});

test('a front-end with more queue pairs than served: pairs beyond 8 answered and not served, the reason in ctl list; the session and pairs 0..7 go on', { skip }, (t) => {
  const { runner, g, p1 } = rig(t);
  g.start();
  const fdsBefore = openFds();
  // queues 16..31 (pairs 8..15), as DPDK's virtio-user with queues=16 sets them up
  for (let i = 31; i >= 16; i--) {
    const e = host.eventfdCreate();
    g.q.call(REQ.SET_VRING_CALL, vringFile(i), [e]);
    host.closeFd(e);
    g.q.call(REQ.SET_VRING_NUM, vringState(i, 256));
    g.q.call(REQ.SET_VRING_ENABLE, vringState(i, i === 16 ? 1 : 0));
  }
  assert.equal(g.q.call(REQ.GET_VRING_BASE, vringState(17, 0))!.readUInt32LE(4), 0, 'GET_VRING_BASE answered');
  assert.ok(g.conn && !g.q.closedByPeer(0), 'the session goes on');
  assert.equal(openFds(), fdsBefore, 'their fds closed, none held');
  const l = listed(runner);
  assert.equal(l.queuePairsAsked, 16);
  assert.equal(l.queuePairsServed, 8);
  assert.match(l.queuePairsRefused ?? '', /at most 8 are served .*pairs 8\.\.15 are not.*enabled 1 of their queues/);
  assert.equal(l.down, null);
  g.sendFrames([udp(PMAC, GMAC, 1, 42)]);
  runner.step();
  assert.deepEqual(p1.recv().map(useq), [42], 'pair 0 forwards');
  // a queue index past any range stays a protocol error
  g.q.send(REQ.SET_VRING_NUM, vringState(300, 256));
  runner.vhostService();
  assert.match(stats(runner).events.join('\n'), /queue 300: beyond any queue index/);
});

test('kicks of every queue are polled: sleepFds gives pair 1\'s kick fds, a kick on TX queue 3 wakes the loop and is counted', { skip }, (t) => {
  const { runner, g, tx1, fds, startPair1 } = rig(t);
  g.start();
  startPair1();
  const vp = vhostPort(runner);
  const polled: number[] = [];
  assert.equal(vp.sleepFds(polled), 'sleep');
  assert.equal(polled.length, 2 + 4, 'listen, connection, and the kick fds of queues 0..3');
  tx1.addTx(withHdr(udp(PMAC, GMAC, 1, 1))); tx1.publish();
  assert.equal(vp.sleepFds([]), 'work', 'work on queue 3 found while arming');
  runner.step();
  host.eventfdSignal(fds[1][0]);
  const fds2: number[] = [];
  vp.sleepFds(fds2);
  vp.woke(fds2, fds2.map(() => 1));
  assert.ok(stats(runner).queues.pairs[1].tx.kicks >= 1, 'the kick on queue 3 counted on pair 1');
});

test('a windowed guest (every chunk on demand) with two queue pairs: rings of both pinned, frames both ways on both pairs', { skip }, (t) => {
  const { runner, g, p1, rx1, tx1, startPair1 } = rig(t, { directMax: 0, chunkShift: 16, window: 24 });
  g.start();
  startPair1();
  assert.ok(stats(runner).window, 'windowed');
  assert.equal(listed(runner).queuePairsEnabled, 2, 'both pairs run (their rings pinned)');
  for (let k = 0; k < 20; k++) { g.tx.addTx(withHdr(udp(PMAC, GMAC, 1, k, 600))); tx1.addTx(withHdr(udp(PMAC, GMAC, 2, 100 + k, 600))); }
  g.tx.publish(); tx1.publish();
  for (let k = 0; k < 10; k++) runner.step();
  const got = p1.recv().map(useq).sort((a, b) => a - b);
  assert.deepEqual(got, [...[...Array(20).keys()], ...[...Array(20).keys()].map((k) => 100 + k)], 'both TX queues through the window');
  g.rx.addRx(64); g.rx.publish(); rx1.addRx(64); rx1.publish();
  p1.send(Array.from({ length: 48 }, (_, k) => udp(GMAC, PMAC, 5000 + k, k, 300)));
  for (let k = 0; k < 10; k++) runner.step();
  const a = g.rx.receive(), b = rx1.receive();
  assert.equal(a.length + b.length, 48, 'every frame delivered through the window');
  assert.ok(a.length && b.length, 'on both RX queues');
  assert.ok(stats(runner).window!.misses > 0, 'chunks were missed and mapped');
});

test('restarts with two queue pairs: 10 sessions, each forwarding on both pairs; no fd or guest memory left', { skip }, (t) => {
  const { runner, g, p1, tx1, startPair1 } = rig(t);
  let fds1 = 0, alloc1 = 0;
  const allocated = () => runner.memory().allocated;
  for (let i = 0; i < 10; i++) {
    g.start();
    startPair1();
    g.sendFrames([udp(PMAC, GMAC, 1, i)]);
    tx1.addTx(withHdr(udp(PMAC, GMAC, 2, 100 + i))); tx1.publish();
    runner.step();
    assert.deepEqual(p1.recv().map(useq).sort((a, b) => a - b), [i, 100 + i], `session ${i}: both pairs forward`);
    g.disconnect();
    runner.vhostService();
    assert.equal(stats(runner).connected, false);
    if (i === 0) { fds1 = openFds(); alloc1 = allocated(); }
  }
  assert.equal(stats(runner).guestMappedBytes, 0);
  assert.equal(openFds(), fds1, 'as many fds open after 10 sessions as after the first');
  assert.equal(allocated(), alloc1, 'as much linear memory allocated');
});
