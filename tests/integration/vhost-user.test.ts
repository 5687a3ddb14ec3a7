// vhost-user ports (src/backends/vhost-user.ts over assembly/virtio/vring.ts) against a fake
// QEMU in this process (./vhost-frontend.ts): real unix sockets, fds passed with SCM_RIGHTS,
// guest RAM in a memfd that both sides map, eventfds for kicks and calls — but the front-end
// and the guest driver are TypeScript, so every test runs in milliseconds and can write the
// exact rings (and broken rings) it needs. Everything runs in one thread: the test sends, the
// runner serves (vhostService) or forwards (step), the test reads.
//
// Needs the native host only (memfds, eventfds, unix sockets and mmap need no privilege, so
// unlike the TAP tests this one does not ask for root); skipped without it unless
// WASMAP_REQUIRE_NET=1, which turns the missing prerequisite into a failure.
import { test, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runner } from '../../src/runner.js';
import { loadHost, hostMissingReason, type NativeHost } from '../../src/host.js';
import { conservation, type SwitchPort } from '../../src/switch.js';
import type { VhostUserPort } from '../../src/backends/vhost-user.js';
import { frame, seqOf, station, BCAST } from '../unit/helpers.js';
import { same } from '../frames.js';
import {
  FakeQemu, Frontend, REQ, FLAG, FEAT, PROTO_REPLY_ACK, GUEST_FEATURES, HOLE, LOW, LAYOUT, DESC_NEXT, DESC_WRITE, DESC_INDIRECT, NET_HDR,
  message, memTable, u64, vringState, vringFile, type GuestOptions,
} from './vhost-frontend.js';

const required = process.env.WASMAP_REQUIRE_NET === '1';
const loaded = loadHost();
const why = loaded ? '' : `native host unavailable: ${hostMissingReason()}`;
const skip = why && !required ? why : false;
if (why && required) test('vhost-user test prerequisites', () => assert.fail(`WASMAP_REQUIRE_NET=1 but ${why}`));
const host = loaded as NativeHost;

const SW = 'valevu';
const GMAC = '52:54:00:12:34:01', GMAC2 = '52:54:00:12:34:02'; // the guests
const PMAC = station(0x101); // virtual port p1
const run = `${process.pid}`;
let dir = '';
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });
let seq = 0;
const sockPath = (what: string) => join(dir ||= mkdtempSync(join(tmpdir(), `wasmap-vu-${run}-`)), `${what}-${++seq}.sock`);

// ---- views of the runner -------------------------------------------------------------------
interface QStats { frames: number; bytes: number; chains: number; dropBig: number; dropBad: number; stalls: number; calls: number; kicks: number; broken: string | null }
interface VStats {
  name: string; kind: string; down: string | null; connected: boolean; sessions: number; refusedConnections: number; features: string;
  downDrops: number; guestMappedBytes: number; queues: { rx: QStats; tx: QStats }; events: string[];
  txPackets: number; rxPackets: number; dropFull: number; dropBroken: number; dropNoDst: number; dropLookup: number; dropSize: number; dropHdr: number;
}
const portStats = (r: Runner, name: string): VStats => {
  const s = (r.stats(SW) as { ports: VStats[] }[])[0].ports.find((p) => p.name === name);
  assert.ok(s, `port ${name} in stats`);
  return s;
};
const listed = (r: Runner, name: string) => {
  const e = (r.list(SW) as { name: string; kind: string; down: string | null; connected?: boolean; sessions?: number }[]).find((x) => x.name === `${SW}:${name}`);
  assert.ok(e, `port ${name} in list`);
  return e;
};
/** Drops of every kind, every port of the switch. */
const switchDrops = (r: Runner) => (r.stats(SW) as { ports: VStats[] }[])[0].ports.reduce((n, p) => n + p.dropFull + p.dropBroken + p.dropNoDst + p.dropLookup + p.dropSize + p.dropHdr, 0);
/** Mappings of a memfd in this process (the guest's own and the back-end's). */
const mappingsOf = (name: string) => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(`/memfd:${name} `)).length;

interface Rig { runner: Runner; p1: SwitchPort; p2: SwitchPort; g: FakeQemu; path: string; vm(name?: string): VStats }
let guests = 0;
/** A runner with a vhost-user port vm1 (socket per test), virtual ports p1 and p2, and a fake QEMU
 *  for vm1 (not connected yet). Everything is closed when the test ends, also when it fails. */
function rig(t: TestContext, o: GuestOptions = {}): Rig {
  const runner = new Runner([SW]);
  const made: FakeQemu[] = [];
  t.after(() => { for (const g of made) g.close(); runner.close(); });
  const path = sockPath('vm1');
  runner.attach(SW, `vhost-user:${path}`, { name: 'vm1' });
  runner.attach(SW, 'p1');
  runner.attach(SW, 'p2');
  const g = new FakeQemu(host, path, () => runner.vhostService(), { name: `wasmap-vu-${run}-${++guests}`, ...o });
  made.push(g);
  const s = runner.vale.switch(SW);
  return { runner, g, path, p1: s.port('p1')!, p2: s.port('p2')!, vm: (name = 'vm1') => portStats(runner, name) };
}

/** The port object behind vm1 (white box: sleepFds' verdict is not visible through Runner). */
const vhostPort = (r: Runner, name: string) => {
  const vp = (r as unknown as { backends: Map<string, VhostUserPort> }).backends.get(`${SW}:${name}`);
  assert.ok(vp, `test bug: Runner keeps its backends in backends (${name})`);
  return vp;
};

/** Guest frames: Ethernet with a sequence number at 14 and a pattern after it. */
const gframe = (dst: string, n: number, len = 60, src = GMAC) => frame(dst, src, len, n);
const seqs = (fs: Uint8Array[]) => fs.map(seqOf);

// ---- the handshake --------------------------------------------------------------------------

test('handshake as QEMU does it: features, protocol features with REPLY_ACK, owner, memory table, both queues, enable → the port is up', { skip }, (t) => {
  const { runner, g, p1, vm } = rig(t);
  assert.match(listed(runner, 'vm1').down!, /waiting for QEMU to connect/);
  assert.equal(listed(runner, 'vm1').kind, 'vhost-user');
  const q = g.connect();
  runner.vhostService();
  assert.equal(vm().connected, true);
  assert.equal(vm().sessions, 1);
  g.negotiate();
  for (const [name, bit] of Object.entries(FEAT)) assert.equal(g.offered & bit, bit, `GET_FEATURES offers ${name}`);
  assert.equal(g.offeredProtocol & PROTO_REPLY_ACK, PROTO_REPLY_ACK, 'REPLY_ACK offered');
  assert.ok(q.replyAck, 'REPLY_ACK negotiated: every later request carried need_reply and was acked with 0');
  assert.equal(vm().features, `0x${(GUEST_FEATURES & g.offered).toString(16)}`);
  assert.equal(q.recv(0), null, 'no message beyond the replies asked for');

  g.setMemTable();
  assert.equal(vm().guestMappedBytes, 4 * 1024 * 1024 - HOLE.size, 'both regions mapped, the hole not');
  g.rx.reset(); g.tx.reset();
  g.startQueue(0);
  assert.notEqual(listed(runner, 'vm1').down, null, 'one queue started: still down');
  g.startQueue(1, 0, { enable: false });
  assert.match(listed(runner, 'vm1').down!, /not started both queues/, 'PROTOCOL_FEATURES negotiated: rings start disabled until SET_VRING_ENABLE');
  q.call(REQ.SET_VRING_ENABLE, vringState(1, 1));
  assert.equal(listed(runner, 'vm1').down, null, 'both queues started and enabled: up');
  // GET_QUEUE_NUM: the queue pairs served (MQ); an ack'd no-op (SET_VRING_ERR without fd) keeps the session
  assert.equal(q.call(REQ.GET_QUEUE_NUM)!.readBigUInt64LE(0), 8n);
  q.call(REQ.SET_VRING_ERR, vringFile(0, true));
  assert.equal(q.recv(0), null);
  assert.equal(listed(runner, 'vm1').down, null);
  // SET_VRING_ENABLE 0: the queue is left alone (and the port down) until enabled again
  q.call(REQ.SET_VRING_ENABLE, vringState(1, 0));
  assert.match(listed(runner, 'vm1').down!, /not started both queues/, 'a disabled queue: down');
  g.sendFrames([gframe(PMAC, 1)]);
  runner.step();
  assert.equal(p1.recv().length, 0, 'a disabled queue is not read');
  assert.equal(g.tx.usedIdx, 0);
  q.call(REQ.SET_VRING_ENABLE, vringState(1, 1));
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [1], 'enabled again: the frame is taken');
  const ev = vm().events.join('\n');
  assert.match(ev, /QEMU connected \(session 1\)/);
  assert.match(ev, /memory table: 2 regions/);
  assert.equal(g.ram.guardDamage(), null);
});

// ---- guest TX -------------------------------------------------------------------------------

test('guest TX → switch: frames in one or two descriptors (header apart) or an indirect table reach p1 exactly, in order; used ring and counters agree', { skip }, (t) => {
  const { runner, g, p1, p2, vm } = rig(t);
  g.start();
  // p1 makes its MAC known (the guest gets that broadcast), so the guest's unicasts are learned
  g.rx.addRx(8); g.rx.publish();
  p1.send([frame(BCAST, PMAC, 60, 999)]);
  runner.step();
  const hello = g.rx.receive();
  assert.deepEqual(hello.map((x) => seqOf(x.frame)), [999], 'the broadcast reached the guest');
  p2.recv();

  const N = 40;
  const sent = Array.from({ length: N }, (_, k) => gframe(k % 10 === 9 ? BCAST : PMAC, k, 60 + ((k * 37) % 1455)));
  g.sendFrames(sent, (k) => (k % 4 === 3 ? 'indirect' : k % 2 === 1));
  const callsBefore = g.calls(1);
  assert.equal(callsBefore, 0);
  runner.step();
  const got = p1.recv();
  assert.equal(got.length, N, 'every frame reached p1');
  got.forEach((f, k) => assert.ok(same(f, sent[k]), `frame ${k} intact (header stripped for the header-less port), in order`));
  assert.deepEqual(seqs(p2.recv()), [9, 19, 29, 39], 'p2 got only the broadcasts: unicasts went to the learned port');
  assert.equal(g.tx.usedIdx, N, 'used->idx: every chain consumed');
  const used = g.tx.reclaim();
  assert.equal(used.length, N);
  assert.ok(used.every((u) => u.len === 0), 'TX used elements carry length 0 (nothing written)');
  assert.equal(g.tx.freeDescs, g.tx.num, 'every descriptor back with the driver');
  assert.ok(g.calls(1) > 0, 'the TX call eventfd was signalled');
  const s = vm();
  assert.equal(s.queues.tx.frames, N);
  assert.equal(s.queues.tx.chains, N);
  assert.equal(s.queues.tx.bytes, sent.reduce((n, f) => n + f.length, 0), 'bytes without the virtio-net header');
  assert.equal(s.queues.tx.dropBad + s.queues.tx.dropBig, 0);
  assert.equal(s.txPackets, N, 'the switch took N frames from the port');
  assert.equal(portStats(runner, 'p1').rxPackets, N + 0);
  assert.equal(g.ram.guardDamage(), null);
  const c = conservation(runner.vale.switch(SW).stats());
  assert.ok(c.ok, `conservation: ${JSON.stringify(c, (_, v) => (typeof v === 'bigint' ? Number(v) : v))}`);

  // nothing new: a step moves nothing and the used ring stays
  assert.equal(runner.step(), 0);
  assert.equal(g.tx.usedIdx, N);
});

// ---- guest RX -------------------------------------------------------------------------------

test('switch → guest RX with mergeable buffers: frames land in posted buffers, a 4000-byte one over two with num_buffers 2; the call eventfd fires; a frame waits for buffers', { skip }, (t) => {
  const { runner, g, p1, vm } = rig(t);
  g.start();
  assert.ok(g.features & FEAT.MRG_RXBUF);
  g.rx.addRx(16); g.rx.publish();
  const sent = [frame(GMAC, PMAC, 60, 1), frame(GMAC, PMAC, 1514, 2), frame(GMAC, PMAC, 4000, 3), frame(BCAST, PMAC, 100, 4)];
  assert.equal(p1.send(sent), sent.length);
  runner.step();
  assert.equal(g.rx.usedIdx, 5, 'used->idx advanced by the buffers used (1 + 1 + 2 + 1)');
  const got = g.rx.receive();
  assert.deepEqual(got.map((x) => x.buffers), [1, 1, 2, 1], 'num_buffers of each frame');
  assert.deepEqual(got[2].lens, [2048, 4000 + NET_HDR - 2048], 'the large frame filled its first buffer whole');
  got.forEach((x, k) => {
    assert.ok(same(x.frame, sent[k]), `frame ${k} intact`);
    assert.ok(x.hdr.subarray(0, 10).every((b) => b === 0), `frame ${k}: no offload asked for in its header`);
  });
  assert.ok(g.calls(0) > 0, 'the RX call eventfd was signalled');
  let s = vm();
  assert.equal(s.queues.rx.frames, 4);
  assert.equal(s.queues.rx.chains, 5);
  assert.equal(s.queues.rx.bytes, sent.reduce((n, f) => n + f.length, 0));
  assert.equal(s.rxPackets, 4);

  // 11 buffers left: three 4000-byte frames take 6, two 3000-byte ones 4; the next needs 2 and
  // waits (with the small frame behind it, in order)
  const more = [4000, 4000, 4000, 3000, 3000, 3000, 60].map((len, k) => frame(GMAC, PMAC, len, 5 + k));
  p1.send(more);
  runner.step();
  const got2 = g.rx.receive();
  assert.deepEqual(got2.map((x) => seqOf(x.frame)), [5, 6, 7, 8, 9], '11 buffers: 2 + 2 + 2 + 2 + 2, then the 6th frame waits');
  s = vm();
  assert.ok(s.queues.rx.stalls >= 1, 'a stall counted');
  assert.equal(g.calls(0), 1);
  g.rx.addRx(8); g.rx.publish();
  runner.step();
  assert.deepEqual(g.rx.receive().map((x) => seqOf(x.frame)), [10, 11], 'the waiting frames delivered once buffers came, none lost');
  s = vm();
  assert.equal(s.queues.rx.frames, 11);
  assert.equal(s.queues.rx.dropBig + s.queues.rx.dropBad, 0);
  assert.equal(s.rxPackets, 11);
  assert.equal(g.ram.guardDamage(), null);
});

// ---- notifications: EVENT_IDX, kicks, interrupts --------------------------------------------

test('EVENT_IDX: before sleeping the back-end sets avail_event = last_avail (RX only when frames wait for buffers); a kick wakes it; used_event suppresses interrupts', { skip }, (t) => {
  const { runner, g, p1, vm } = rig(t);
  g.start();
  assert.ok(g.features & FEAT.EVENT_IDX);
  g.sendFrames([gframe(PMAC, 1), gframe(PMAC, 2), gframe(PMAC, 3)]);
  runner.step();
  assert.equal(p1.recv().length, 3);
  g.tx.reclaim();
  // values the back-end never wrote: only the back-end, before it sleeps, puts last_avail back
  g.tx.availEvent = 0xbeef; g.rx.availEvent = 0xbeef;
  let t0 = performance.now();
  runner.stepOrSleep(40, 0);
  let dt = performance.now() - t0;
  assert.equal(g.tx.availEvent, 3, 'TX avail_event = last_avail (3 chains taken)');
  assert.equal(g.rx.availEvent, 0xbeef, 'RX: no kick asked for while no frame waits for RX buffers');
  assert.ok(dt >= 30, `the idle loop slept in poll (${dt.toFixed(1)} ms of 40)`);

  // ask, then look: a buffer published after the last pass (here: before any pass looked)
  // makes the port refuse to sleep, else it sleeps on the kick eventfds
  const vp = vhostPort(runner, 'vm1');
  const fds: number[] = [];
  assert.equal(vp.sleepFds(fds), 'sleep');
  assert.ok(fds.length === 4, `listening socket, connection, two kick eventfds: ${fds.length} fds`);
  g.sendFrames([gframe(PMAC, 100)]);
  assert.equal(vp.sleepFds([]), 'work', 'a buffer came after the last pass: no sleep');
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [100]);
  assert.equal(g.tx.availEvent, 3, 'not moved while running (that would ask for a kick after every pass)');

  // a kick (the guest writes the kick eventfd) wakes it at once
  host.eventfdSignal(g.kick[1]);
  t0 = performance.now();
  runner.stepOrSleep(3000, 0);
  dt = performance.now() - t0;
  assert.ok(dt < 1000, `woken by the kick after ${dt.toFixed(1)} ms`);
  assert.equal(vm().queues.tx.kicks, 1, 'the kick was drained and counted');
  // frames posted with a kick are taken by the next pass
  g.sendFrames([gframe(PMAC, 4), gframe(PMAC, 5)]);
  host.eventfdSignal(g.kick[1]);
  t0 = performance.now();
  assert.ok(runner.stepOrSleep(3000, 0) > 0, 'work: no sleep');
  assert.ok(performance.now() - t0 < 1000);
  assert.deepEqual(seqs(p1.recv()), [4, 5]);

  // used_event: the guest asks for an interrupt only once used->idx passes it
  g.rx.addRx(8); g.rx.publish();
  p1.send([frame(GMAC, PMAC, 60, 10)]);
  runner.step();
  assert.equal(g.calls(0), 1, 'the first completion interrupts');
  g.rx.usedEvent = g.rx.usedIdx + 1; // "interrupt me after the second buffer from now"
  p1.send([frame(GMAC, PMAC, 60, 11)]);
  runner.step();
  assert.equal(g.calls(0), 0, 'used->idx reached used_event, not past it: no interrupt');
  p1.send([frame(GMAC, PMAC, 60, 12)]);
  runner.step();
  assert.equal(g.calls(0), 1, 'past used_event: interrupt');
  assert.deepEqual(g.rx.receive().map((x) => seqOf(x.frame)), [10, 11, 12]);
});

test('without EVENT_IDX: VRING_USED_F_NO_NOTIFY while the back-end runs, cleared before it sleeps', { skip }, (t) => {
  const { runner, g, p1 } = rig(t, { features: GUEST_FEATURES & ~FEAT.EVENT_IDX });
  g.start();
  assert.equal(g.features & FEAT.EVENT_IDX, 0n);
  g.sendFrames([gframe(PMAC, 1)]);
  runner.step();
  assert.equal(p1.recv().length, 1);
  assert.equal(g.tx.usedFlags, 1, 'NO_NOTIFY: the guest need not kick while the back-end polls');
  runner.stepOrSleep(5, 0);
  assert.equal(g.tx.usedFlags, 0, 'cleared before the sleep: the guest kicks again');
  // avail flags NO_INTERRUPT: no call
  g.tx.availFlags = 1;
  g.calls(1);
  g.sendFrames([gframe(PMAC, 2)]);
  runner.step();
  assert.equal(p1.recv().length, 1);
  assert.equal(g.calls(1), 0, 'VRING_AVAIL_F_NO_INTERRUPT honoured');
});

// ---- stopping and restarting rings, tables and features mid-run -----------------------------

test('GET_VRING_BASE answers the chains consumed and stops the queue; restarting at that base resumes there', { skip }, (t) => {
  const { runner, g, p1, vm } = rig(t);
  g.start();
  g.sendFrames([1, 2, 3, 4, 5].map((n) => gframe(PMAC, n)));
  runner.step();
  assert.equal(p1.recv().length, 5);
  g.tx.reclaim();
  const rep = g.q.call(REQ.GET_VRING_BASE, vringState(1, 0))!;
  assert.equal(rep.length, 8);
  assert.equal(rep.readUInt32LE(0), 1, 'the queue index');
  assert.equal(rep.readUInt32LE(4), 5, 'last_avail: 5 chains consumed');
  assert.notEqual(listed(runner, 'vm1').down, null, 'a stopped queue: the port is down');
  g.sendFrames([6, 7, 8].map((n) => gframe(PMAC, n)));
  runner.step(); runner.step();
  assert.equal(p1.recv().length, 0, 'a stopped queue is not read');
  assert.equal(g.tx.usedIdx, 5);
  assert.equal(vm().queues.tx.chains, 5);
  // RX stopped too: frames for the guest are counted as down drops
  const rrep = g.q.call(REQ.GET_VRING_BASE, vringState(0, 0))!;
  assert.equal(rrep.readUInt32LE(4), 0);
  p1.send([frame(GMAC, PMAC, 60, 50)]);
  runner.step();
  assert.equal(vm().downDrops, 1);
  // the guest driver starts again where it was (QEMU: NUM, BASE, ADDR, KICK, CALL, ENABLE)
  g.startQueue(1, 5);
  g.startQueue(0, 0);
  assert.equal(listed(runner, 'vm1').down, null);
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [6, 7, 8], 'resumed at 5: the three frames posted meanwhile');
  assert.equal(g.tx.usedIdx, 8);
  assert.deepEqual(g.tx.reclaim().length, 3);
  assert.equal(vm().queues.tx.chains, 8);
  g.rx.addRx(2); g.rx.publish();
  p1.send([frame(GMAC, PMAC, 60, 51)]);
  runner.step();
  assert.deepEqual(g.rx.receive().map((x) => seqOf(x.frame)), [51]);
});

test('SET_MEM_TABLE again while the queues run (QEMU does on memory hotplug): the rings keep their place, the old mappings go; a table without the rings breaks them', { skip }, (t) => {
  const { runner, g, p1 } = rig(t);
  g.start();
  g.sendFrames([1, 2, 3].map((n) => gframe(PMAC, n)));
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [1, 2, 3]);
  g.tx.reclaim();
  const mem = runner.memory(), maps = mappingsOf(g.o.name!);
  g.setMemTable();
  assert.deepEqual(runner.memory(), mem, 'the old mappings were released, the new ones take their place');
  assert.equal(mappingsOf(g.o.name!), maps);
  assert.equal(listed(runner, 'vm1').down, null);
  g.sendFrames([4, 5].map((n) => gframe(PMAC, n)));
  g.rx.addRx(4); g.rx.publish();
  p1.send([frame(GMAC, PMAC, 60, 6)]);
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [4, 5], 'TX resumed where it was');
  assert.equal(g.tx.usedIdx, 5);
  assert.deepEqual(g.rx.receive().map((x) => seqOf(x.frame)), [6], 'RX works through the new mappings');
  // a table with only the high region: the TX rings (low region) are no longer in guest memory
  g.q.call(REQ.SET_MEM_TABLE, memTable([g.ram.regions()[1]]), [g.ram.fd]);
  assert.match(listed(runner, 'vm1').down ?? 'up', /TX queue broken by the guest: a ring not inside guest memory/);
  g.sendFrames([gframe(PMAC, 7)]);
  runner.step();
  assert.equal(p1.recv().length, 0);
  assert.equal(g.ram.guardDamage(), null);
});

// Bug (src/backends/vhost-user.ts, SET_FEATURES): every queue is set up again from q.base, the
// base QEMU gave before the ring ran, so a running ring rewinds and its chains are taken again.
test('SET_FEATURES again while the queues run (same bits) takes no chain twice', { skip }, (t) => {
  const { runner, g, p1 } = rig(t);
  g.start();
  g.sendFrames([1, 2, 3].map((n) => gframe(PMAC, n)));
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [1, 2, 3]);
  g.q.call(REQ.SET_FEATURES, u64(g.features));
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [], 'no frame sent twice');
  g.sendFrames([gframe(PMAC, 4)]);
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [4]);
  assert.equal(g.tx.usedIdx, 4);
});

// ---- a guest that breaks its rings ----------------------------------------------------------

test('malformed descriptors (outside the memory table, a NEXT loop, nested indirect tables, a writable TX buffer, a read-only RX buffer) break only that port; the other guest and the switch go on; guard bytes untouched', { skip }, (t) => {
  const { runner, g, p1, vm } = rig(t);
  const path2 = sockPath('vm2');
  runner.attach(SW, `vhost-user:${path2}`, { name: 'vm2' });
  const g2 = new FakeQemu(host, path2, () => runner.vhostService(), { name: `wasmap-vu-${run}-${++guests}` });
  t.after(() => g2.close());
  g2.start();
  g2.rx.addRx(64); g2.rx.publish();
  // p1 and guest 2 make their MACs known first: no frame of this test is flooded to vm1
  p1.send([frame(BCAST, PMAC, 60, 90)]);
  g2.sendFrames([gframe(PMAC, 91, 60, GMAC2)]);
  runner.step();
  assert.deepEqual(g2.rx.receive().map((x) => seqOf(x.frame)), [90]);
  assert.deepEqual(seqs(p1.recv()), [91]);
  g2.tx.reclaim();
  const D = 250; // descriptors the test writes by hand (the allocator hands out low ones first)
  const cases: { name: string; reason: RegExp; queue: 'tx' | 'rx'; bad(): void }[] = [
    { name: 'a buffer in the hole between the regions', queue: 'tx', reason: /TX queue broken by the guest: a buffer or indirect table outside the guest memory/, bad: () => { g.tx.desc(D, HOLE.gpa + 0x100, 100, 0); g.tx.offer(D); } },
    { name: 'a buffer crossing from the low region into the hole', queue: 'tx', reason: /outside the guest memory/, bad: () => { g.tx.desc(D, LOW.size - 50, 100, 0); g.tx.offer(D); } },
    { name: 'a buffer past the end of guest RAM', queue: 'tx', reason: /outside the guest memory/, bad: () => { g.tx.desc(D, 4 * 1024 * 1024 - 16, 64, 0); g.tx.offer(D); } },
    { name: 'a huge address (wraps past 2^64)', queue: 'tx', reason: /outside the guest memory/, bad: () => { g.tx.desc(D, 0xffffffffffffff00n, 0x200, 0); g.tx.offer(D); } },
    { name: 'a NEXT loop', queue: 'tx', reason: /loops/, bad: () => { g.tx.desc(D, LAYOUT.spare, 12, DESC_NEXT, D + 1); g.tx.desc(D + 1, LAYOUT.spare + 64, 60, DESC_NEXT, D); g.tx.offer(D); } },
    { name: 'an indirect table inside an indirect table', queue: 'tx', reason: /an indirect descriptor inside an indirect table/, bad: () => {
      g.ram.writeDesc(LAYOUT.spare, LAYOUT.spare + 0x100, 32, DESC_INDIRECT); // the table's one entry is itself a table
      g.tx.desc(D, LAYOUT.spare, 16, DESC_INDIRECT); g.tx.offer(D);
    } },
    { name: 'a device-writable descriptor in TX', queue: 'tx', reason: /device-writable descriptor in a TX chain/, bad: () => { g.tx.desc(D, LAYOUT.spare, 72, DESC_WRITE); g.tx.offer(D); } },
    { name: 'a device-readable descriptor in RX', queue: 'rx', reason: /RX queue broken by the guest: a device-readable descriptor in an RX chain/, bad: () => { g.rx.desc(D, LAYOUT.spare, 2048, 0); g.rx.offer(D); } },
  ];
  let k = 0;
  for (const c of cases) {
    g.start();
    assert.equal(listed(runner, 'vm1').down, null, `${c.name}: up before`);
    if (c.queue === 'tx') {
      g.sendFrames([gframe(PMAC, ++k)]); // a good chain, the bad one, a good one
      c.bad();
      g.sendFrames([gframe(PMAC, 1000 + k)]);
    } else {
      g.rx.addRx(1); c.bad(); g.rx.addRx(1); g.rx.publish();
      p1.send([frame(GMAC, PMAC, 60, ++k), frame(GMAC, PMAC, 60, 1000 + k), frame(GMAC, PMAC, 60, 2000 + k)]);
    }
    runner.step(); runner.step();
    if (c.queue === 'tx') {
      assert.deepEqual(seqs(p1.recv()), [k], `${c.name}: the chain before the bad one was delivered, nothing after`);
      assert.equal(g.tx.usedIdx, 1, `${c.name}: only the good chain completed`);
    } else {
      assert.deepEqual(g.rx.receive().map((x) => seqOf(x.frame)), [k], `${c.name}: the frame before the bad chain was delivered`);
    }
    const s = vm();
    assert.match(listed(runner, 'vm1').down ?? 'up', c.reason, `${c.name}: list() says why`);
    assert.match(s.down ?? 'up', c.reason, `${c.name}: stats() says why`);
    assert.notEqual(s.queues[c.queue].broken, null, `${c.name}: the queue is marked broken`);
    assert.equal(s.queues[c.queue === 'tx' ? 'rx' : 'tx'].broken, null, `${c.name}: the other queue is not`);
    assert.ok(s.events.some((e) => c.reason.test(e)), `${c.name}: logged`);
    // the other guest and the switch go on: vm2 → p1 and p1 → vm2
    g2.sendFrames([gframe(PMAC, 5000 + k, 200, GMAC2)]);
    p1.send([frame(GMAC2, PMAC, 300, 6000 + k)]);
    runner.step(); runner.step();
    assert.deepEqual(seqs(p1.recv()), [5000 + k], `${c.name}: vm2 still sends`);
    assert.deepEqual(g2.rx.receive().map((x) => seqOf(x.frame)), [6000 + k], `${c.name}: vm2 still receives`);
    g2.tx.reclaim();
    assert.equal(listed(runner, 'vm2').down, null);
    assert.equal(g.ram.guardDamage(), null, `${c.name}: guard bytes of guest 1`);
    assert.equal(g2.ram.guardDamage(), null, `${c.name}: guard bytes of guest 2`);
    // QEMU would reset the device: here a new session
    g.disconnect();
    runner.vhostService();
    assert.match(listed(runner, 'vm1').down!, /QEMU disconnected/);
  }
  // after all that, guest 1 works again
  g.start();
  g.sendFrames([gframe(PMAC, 7777)]);
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [7777]);
  const c = conservation(runner.vale.switch(SW).stats());
  assert.ok(c.ok, `conservation: ${JSON.stringify(c, (_, v) => (typeof v === 'bigint' ? Number(v) : v))}`);
});

// Bug (src/backends/vhost-user.ts): pull()/push() look at vq_error only when the call moved
// nothing, so a queue that breaks after delivering frames in the same call reads as up
// (down === null) until the next pass. See the report for the patch.
test('the pass in which a queue breaks already reports it', { skip }, (t) => {
  const { runner, g, p1 } = rig(t);
  g.start();
  g.sendFrames([gframe(PMAC, 1)]);
  g.tx.desc(250, HOLE.gpa, 64, 0); g.tx.offer(250); g.tx.publish();
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [1]);
  assert.notEqual(vhostPort(runner, 'vm1').queueStats().tx.broken, null, 'the queue is broken');
  assert.match(listed(runner, 'vm1').down ?? 'up', /outside the guest memory/, 'and the port says so in the same pass');
});

// Bug (src/backends/vhost-user.ts): endSession leaves VQ_BROKEN set in the queue records, so the
// next session reports the last one's break (and logs it again) until SET_VRING_ADDR.
test('a queue broken in one session does not show as broken in the next before the guest sets its rings up', { skip }, (t) => {
  const { runner, g, p1 } = rig(t);
  g.start();
  g.tx.desc(250, HOLE.gpa, 64, 0); g.tx.offer(250); g.tx.publish();
  runner.step(); runner.step();
  assert.match(listed(runner, 'vm1').down!, /outside the guest memory/);
  g.disconnect();
  runner.vhostService();
  g.connect();
  g.negotiate(); // SET_FEATURES: the queues are looked at again, not set up yet
  runner.step();
  const down = listed(runner, 'vm1').down!;
  assert.doesNotMatch(down, /broken/, `a new session starts clean, not with the last one's break: ${down}`);
  g.setMemTable(); g.rx.reset(); g.tx.reset(); g.startQueue(0); g.startQueue(1);
  assert.equal(listed(runner, 'vm1').down, null);
  g.sendFrames([gframe(PMAC, 1)]);
  runner.step();
  assert.equal(p1.recv().length, 1);
});

// ---- protocol abuse -------------------------------------------------------------------------

test('protocol abuse ends the session cleanly (socket closed, reason in stats, no fd or memory left), never crashes; the next connection works', { skip }, (t) => {
  const { runner, g, p1, vm } = rig(t);
  const memfd = g.ram.fd;
  const regions = g.ram.regions();
  const before = runner.memory();
  const cases: { name: string; reason: RegExp; abuse(q: Frontend): void }[] = [
    { name: 'payload size 5000', reason: /5000-byte payload \(at most 4096\)/, abuse: (q) => q.sendRaw(message(REQ.SET_OWNER, new Uint8Array(0), FLAG.VERSION, 5000)) },
    { name: 'version 2', reason: /message version 2, expected 1/, abuse: (q) => q.sendRaw(message(REQ.GET_FEATURES, new Uint8Array(0), 0x2)) },
    { name: 'version 0', reason: /message version 0, expected 1/, abuse: (q) => q.sendRaw(message(REQ.GET_FEATURES, new Uint8Array(0), 0x0)) },
    { name: 'SET_MEM_TABLE: 1 region, 2 fds', reason: /came with 2 fds/, abuse: (q) => q.send(REQ.SET_MEM_TABLE, memTable([regions[0]]), [memfd, memfd]) },
    { name: 'SET_MEM_TABLE: 2 regions, 1 fd', reason: /2 regions came with 1 fds/, abuse: (q) => q.send(REQ.SET_MEM_TABLE, memTable(regions), [memfd]) },
    { name: 'SET_MEM_TABLE: unaligned mmap offset', reason: /mmap offset \d+ \(must be > 0 and page-aligned\)|page-aligned/, abuse: (q) => q.send(REQ.SET_MEM_TABLE, memTable([{ ...regions[0], mmapOffset: regions[0].mmapOffset + 100n }]), [memfd]) },
    { name: 'SET_MEM_TABLE: 0 regions', reason: /0 regions/, abuse: (q) => q.send(REQ.SET_MEM_TABLE, memTable([], 0)) },
    { name: 'SET_MEM_TABLE: regions overlapping', reason: /overlaps/, abuse: (q) => q.send(REQ.SET_MEM_TABLE, memTable([regions[1], { ...regions[1], uva: regions[1].uva + 0x10000000n }]), [memfd, memfd]) },
    { name: 'SET_MEM_TABLE: a region larger than its memfd', reason: /region 1/, abuse: (q) => q.send(REQ.SET_MEM_TABLE, memTable([regions[0], { ...regions[1], size: 64n << 20n }]), [memfd, memfd]) },
    { name: 'SET_MEM_TABLE: payload shorter than its regions', reason: /2 regions need 72 bytes/, abuse: (q) => q.send(REQ.SET_MEM_TABLE, memTable([regions[0]], 2), [memfd, memfd]) },
    // queues 2..255 a front-end may set up (DPDK with queues=N does before it learns there is no
    // MQ): noted and ignored (tests/integration/vhost-dpdk.test.ts); beyond any device's range: abuse
    { name: 'SET_VRING_NUM for queue 300', reason: /queue 300/, abuse: (q) => q.send(REQ.SET_VRING_NUM, vringState(300, 256)) },
    { name: 'SET_VRING_KICK for queue 5 with 2 fds', reason: /came with 2 fds/, abuse: (q) => { const e = host.eventfdCreate(); try { q.send(REQ.SET_VRING_KICK, vringFile(5), [e, e]); } finally { host.closeFd(e); } } },
    { name: 'SET_VRING_CALL with 2 fds', reason: /came with 2 fds/, abuse: (q) => { const e = host.eventfdCreate(); try { q.send(REQ.SET_VRING_CALL, vringFile(0), [e, e]); } finally { host.closeFd(e); } } },
    { name: 'SET_VRING_NUM with a 4-byte payload', reason: /payload of 4 bytes, expected 8/, abuse: (q) => q.send(REQ.SET_VRING_NUM, Buffer.alloc(4)) },
    { name: 'SET_FEATURES with bits never offered', reason: /did not offer/, abuse: (q) => q.send(REQ.SET_FEATURES, u64(FEAT.VERSION_1 | (1n << 40n))) },
  ];
  let k = 0;
  for (const c of cases) {
    g.start();
    assert.equal(listed(runner, 'vm1').down, null, `${c.name}: up before`);
    c.abuse(g.q);
    runner.vhostService();
    const s = vm();
    assert.equal(s.connected, false, `${c.name}: session ended`);
    assert.match(s.down ?? 'up', /protocol error/, `${c.name}: down says protocol error`);
    assert.match(s.down ?? 'up', c.reason, `${c.name}: down says why`);
    assert.ok(s.events.some((e) => c.reason.test(e)), `${c.name}: the reason is in events`);
    assert.ok(g.q.closedByPeer(500), `${c.name}: the back-end closed the socket`);
    assert.equal(s.guestMappedBytes, 0);
    g.disconnect();
    assert.deepEqual(runner.memory(), before, `${c.name}: memory, fds and sockets as before the session`);
    assert.equal(g.ram.guardDamage(), null);
    k++;
  }
  // a request the back-end refuses (not a protocol error): need_reply gets a non-zero ack, the session stays
  g.start();
  g.q.send(99, new Uint8Array(0), [], FLAG.VERSION | FLAG.NEED_REPLY);
  runner.vhostService();
  const m = g.q.recv(500);
  assert.ok(m && m.req === 99 && m.payload.readBigUInt64LE(0) !== 0n, 'an unknown request is refused with a failure ack');
  // a message split over two writes (header, then payload) is put back together
  const msg = message(REQ.SET_VRING_ENABLE, vringState(1, 1), FLAG.VERSION | FLAG.NEED_REPLY);
  g.q.sendRaw(msg.subarray(0, 7));
  runner.vhostService();
  g.q.sendRaw(msg.subarray(7, 15));
  runner.vhostService();
  assert.equal(g.q.recv(0), null, 'nothing answered before the message is whole');
  g.q.sendRaw(msg.subarray(15));
  runner.vhostService();
  const ack = g.q.recv(500);
  assert.ok(ack && ack.req === REQ.SET_VRING_ENABLE && ack.payload.readBigUInt64LE(0) === 0n, 'the split message was acked');
  assert.equal(vm().connected, true);
  g.sendFrames([gframe(PMAC, 42)]);
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [42], 'the session after all the abuse passes traffic');
  assert.equal(vm().sessions, k + 1);
});

// Bug (host-native/src/fdpass.c, recv_fds): when more fds arrive than the control buffer holds
// (MSG_CTRUNC), it throws without closing the 8 it did receive: every such message leaks 8 fds
// in the switch. host.sendFds sends at most 8, so python3 sends the 9.
const noPython = spawnSync('python3', ['-c', 'import socket, os; socket.send_fds; os.memfd_create'], { encoding: 'utf8' }).status === 0 ? '' : 'python3 ≥ 3.9 not found (it sends the 9-fd message)';
test('a message carrying 9 fds (more than one recvmsg takes) ends the session and leaks none of them', { skip: skip || noPython || false }, (t) => {
  const { runner, g, p1, vm, path } = rig(t);
  t.after(() => { // whatever the back-end kept of them goes, also while the bug stands
    for (const f of readdirSync('/proc/self/fd')) {
      try { if (readlinkSync(`/proc/self/fd/${f}`).startsWith('/memfd:wasmap-vu-nine')) host.closeFd(Number(f)); } catch { /* gone */ }
    }
  });
  const before = runner.memory();
  const py = [
    'import socket, os, struct, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1])',
    "fds = [os.memfd_create('wasmap-vu-nine') for i in range(9)]",
    'socket.send_fds(s, [struct.pack("<IIIII", 5, 1, 8, 9, 0)], fds)', // SET_MEM_TABLE, 9 regions claimed
    's.close()',
  ].join('\n');
  const r = spawnSync('python3', ['-c', py, path], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, r.stderr);
  runner.vhostService();
  assert.equal(vm().connected, false, 'the session ended');
  assert.match(vm().down ?? 'up', /fds/);
  assert.deepEqual(runner.memory(), before, 'no fd of the message left in the switch');
  g.start();
  g.sendFrames([gframe(PMAC, 1)]);
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [1], 'the next connection works');
});

// ---- issue #15: what a hostile front-end can make the switch hold or touch -------------------

/** fds of this process (all kinds: a leak of any shows). */
const allFds = () => readdirSync('/proc/self/fd').length;

// Finding 2: the memfd's size was checked only when SET_MEM_TABLE mapped it; a front-end that
// ftruncates it afterwards made the switch's next touch raise SIGBUS and the process died.
test('#15-2 a front-end truncating unsealable guest RAM (memfd without MFD_ALLOW_SEALING, as seal=off or a file) takes only its port down: SIGBUS fenced, reason given, the bystander forwards, nothing left mapped', { skip }, (t) => {
  const { runner, g, p1, p2, vm } = rig(t, { memfd: 'plain' });
  const base = { mem: runner.memory(), fences: host.fenceStats().fences };
  g.start();
  assert.ok(vm().events.some((e) => /cannot be sealed.*SIGBUS fence/.test(e)), 'the back-end says the region is fenced, not sealed');
  g.sendFrames([gframe(PMAC, 1)]);
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [1], 'up and forwarding before the truncate');
  p2.recv(); // flooded there too: p1 has not been learned yet
  const faultsBefore = host.fenceStats().faults;
  g.ram.truncate(0); // every page the switch maps is now past the end of the file
  g.sendFrames([gframe(PMAC, 2)]); // the guest's writes read zeros now: frames the switch sees are junk
  runner.step(); // the switch touches the rings: SIGBUS, mended by the fence
  assert.ok(host.fenceStats().faults > faultsBefore, 'the SIGBUS was taken by the fence');
  const s = vm();
  assert.equal(s.connected, false, 'the session ended');
  assert.match(s.down ?? 'up', /guest memory shrank under the switch/);
  assert.equal(s.guestMappedBytes, 0);
  assert.equal((vhostPort(runner, 'vm1') as unknown as { refused: { memoryFaults: number } }).refused.memoryFaults, 1);
  assert.ok(g.q.closedByPeer(500), 'the back-end hung up');
  // the bystanders forward as before
  p1.send([frame(station(0x102), PMAC, 60, 7)]);
  runner.step();
  assert.deepEqual(seqs(p2.recv()), [7], 'p1 → p2 still forwards');
  g.disconnect();
  assert.deepEqual(runner.memory(), base.mem, 'memory, fds and mappings back to before the session');
  assert.equal(host.fenceStats().fences, base.fences, 'the switch\'s fences went with its mappings');
  g.close();
  // a new guest on the same port works
  const g2 = new FakeQemu(host, g.path, () => runner.vhostService(), { name: `wasmap-vu-${run}-${++guests}` });
  t.after(() => g2.close());
  g2.start();
  g2.sendFrames([gframe(PMAC, 3)]);
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [3], 'the next session forwards');
  const c = conservation(runner.vale.switch(SW).stats());
  assert.ok(c.ok, 'conservation');
});

test('#15-2 sealable guest RAM is sealed against shrinking by the back-end: the front-end\'s ftruncate fails (EPERM), the port keeps running; QEMU\'s default sealed memfd is taken as it is', { skip }, (t) => {
  for (const kind of ['sealable', 'sealed'] as const) {
    const { runner, g, p1, vm } = rig(t, { memfd: kind });
    g.start();
    assert.equal(listed(runner, 'vm1').down, null, `${kind}: up`);
    assert.ok(vm().events.some((e) => /sealed against shrinking/.test(e)), `${kind}: sealed`);
    assert.throws(() => g.ram.truncate(0), (e: NodeJS.ErrnoException) => e.code === 'EPERM', `${kind}: ftruncate refused by the seal`);
    if (kind === 'sealable') g.ram.truncate(g.ram.memfdLen * 2); // growing is harmless: we seal against shrinking only
    g.sendFrames([gframe(PMAC, 11)]);
    runner.step();
    assert.deepEqual(seqs(p1.recv()), [11], `${kind}: still forwarding`);
    g.disconnect(); runner.vhostService();
  }
});

// Finding 9: fds waited in pendingFds until their message completed: a front-end dripping one
// byte with 8 SCM_RIGHTS fds per send grew the switch's fd table by 8 per byte.
test('#15-9 fds a front-end can make the switch hold are bounded: a drip of 1 byte + 8 fds, extra fds on messages that take none or fewer, all end the session with a reason, are counted and closed', { skip }, (t) => {
  const { runner, g, p1, vm } = rig(t);
  const refused = () => (vhostPort(runner, 'vm1') as unknown as { refused: { fds: number; bytes: number } }).refused;
  const base = allFds();
  const memfds = Array.from({ length: 8 }, () => host.memfdCreate(`wasmap-vu-drip-${run}`, 4096));
  t.after(() => { for (const f of memfds) host.closeFd(f); });
  const baseWith = allFds();
  assert.equal(baseWith, base + 8);
  // the drip: a SET_MEM_TABLE header claiming a 4000-byte payload, sent one byte at a time with 8 fds each
  g.connect();
  runner.vhostService();
  const msg = message(REQ.SET_MEM_TABLE, Buffer.alloc(4000));
  let maxHeld = 0;
  for (let i = 0; i < 40 && vm().connected; i++) {
    try { g.q.sendRaw(msg.subarray(i, i + 1), memfds); } catch { break; } // the back-end hung up
    runner.vhostService();
    maxHeld = Math.max(maxHeld, allFds() - baseWith);
  }
  assert.equal(vm().connected, false, 'the session ended');
  assert.match(vm().down ?? 'up', /fds waiting for messages not yet complete \(at most 8\)/);
  assert.ok(maxHeld <= 8 + 2, `the switch held at most 8 of the front-end's fds (plus its socket), held ${maxHeld}`);
  assert.ok(refused().fds > 8, 'the refused fds are counted');
  g.disconnect(); runner.vhostService();
  assert.equal(allFds(), baseWith, 'every fd closed');
  // extra fds on whole messages: none allowed, one allowed, n regions allowed
  const cases: [string, () => void, RegExp][] = [
    ['SET_OWNER with 3 fds', () => g.q.send(REQ.SET_OWNER, new Uint8Array(0), memfds.slice(0, 3)), /SET_OWNER came with 3 fds, at most 0/],
    ['GET_FEATURES with 1 fd', () => g.q.send(REQ.GET_FEATURES, new Uint8Array(0), memfds.slice(0, 1)), /GET_FEATURES came with 1 fds, at most 0/],
    ['SET_VRING_KICK "no fd" with 1 fd', () => g.q.send(REQ.SET_VRING_KICK, vringFile(0, true), memfds.slice(0, 1)), /SET_VRING_KICK came with 1 fds, at most 0/],
    ['SET_VRING_CALL with 8 fds', () => g.q.send(REQ.SET_VRING_CALL, vringFile(0), memfds), /SET_VRING_CALL came with 8 fds, at most 1/],
    ['SET_MEM_TABLE of 1 region with 8 fds', () => g.q.send(REQ.SET_MEM_TABLE, memTable([g.ram.regions()[0]]), memfds), /SET_MEM_TABLE came with 8 fds, at most 1/],
  ];
  for (const [name, abuse, reason] of cases) {
    g.start();
    const before = refused().fds;
    abuse();
    runner.vhostService();
    assert.equal(vm().connected, false, `${name}: session ended`);
    assert.match(vm().down ?? 'up', reason, name);
    assert.ok(refused().fds > before, `${name}: counted`);
    g.disconnect(); runner.vhostService();
    assert.equal(allFds(), baseWith, `${name}: every fd closed`);
  }
  g.start();
  g.sendFrames([gframe(PMAC, 5)]);
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [5], 'the next session works');
});

// Found while fixing #15-9: replies were sent with a blocking sendmsg, so a front-end that asks
// (GET_FEATURES, need_reply) and never reads filled its socket and then held the forwarding
// thread — every port's traffic — in sendmsg for good.
test('#15 a front-end that asks and never reads its replies cannot block the switch: its session ends, the bystanders forward', { skip }, (t) => {
  const { runner, g, p1, p2, vm } = rig(t);
  const before = runner.memory();
  g.start();
  const ask = Buffer.concat(Array.from({ length: 200 }, () => message(REQ.GET_FEATURES)));
  let rounds = 0;
  const t0 = Date.now();
  while (vm().connected && rounds < 2000) {
    try { g.q.sendRaw(ask); } catch { break; }
    runner.vhostService();
    rounds++;
  }
  assert.equal(vm().connected, false, `the session ended (after ${rounds} batches of 200 requests)`);
  assert.match(vm().down ?? 'up', /reply to GET_FEATURES failed: .*does not read/);
  assert.ok(Date.now() - t0 < 20000, 'and quickly');
  p1.send([frame(station(0x102), PMAC, 60, 1)]); p2.send([frame(PMAC, station(0x102), 60, 2)]);
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [2]);
  g.disconnect(); runner.vhostService();
  assert.deepEqual(runner.memory(), before, 'fds, sockets and memory back');
});

// Found with the fuzz suite's protocol flood: service() handled every message that 64 reads of
// 64 KiB brought, so one front-end's flood of requests held the forwarding thread (every port)
// for as long as it took to handle ~350 000 of them.
test('#15 a flood of control messages is handled at most 256 per service call; all of them in the end, in order; the bystanders forward between', { skip }, (t) => {
  const { runner, g, p1, p2, vm } = rig(t);
  g.start();
  const vp = vhostPort(runner, 'vm1');
  const flood = Buffer.concat(Array.from({ length: 4000 }, (_, k) => message(REQ.SET_VRING_ENABLE, vringState(k & 1, 1))));
  g.q.sendRaw(flood);
  g.q.send(REQ.GET_QUEUE_NUM); // answered only after all 4000
  let most = 0, calls = 0, reply = null;
  while (!reply && calls < 1000) {
    const before = vp.messages;
    runner.vhostService();
    most = Math.max(most, vp.messages - before);
    calls++;
    reply = g.q.recv(0);
    p1.send([frame(station(0x102), PMAC, 60, calls)]);
    runner.step();
    assert.deepEqual(seqs(p2.recv()), [calls], 'the bystanders forward between the calls');
  }
  assert.ok(reply && reply.req === REQ.GET_QUEUE_NUM, 'every message was handled, the last one answered');
  assert.ok(most <= 256, `at most 256 messages per call, saw ${most}`);
  assert.ok(calls >= 4001 / 256, `${calls} calls`);
  assert.equal(vm().connected, true);
  assert.equal(listed(runner, 'vm1').down, null, 'still up');
});

// ---- sessions: reconnects, a second QEMU, detach --------------------------------------------

test('disconnect and reconnect 20 times: down while gone (frames counted as downDrops), memory, fds, sockets and mappings back each time', { skip }, (t) => {
  const { runner, g, p1, p2, vm } = rig(t);
  const before = runner.memory();
  assert.equal(before.guestMapped, 0);
  const maps = mappingsOf(g.o.name!);
  assert.equal(maps, 1, 'only the guest maps its RAM before QEMU connects');
  let p1sent = 0, delivered = 0, dropsWhileDown = 0, n = 0;
  for (let i = 0; i < 20; i++) {
    g.start();
    assert.equal(listed(runner, 'vm1').down, null);
    assert.ok(mappingsOf(g.o.name!) >= 3, 'the back-end mapped both regions');
    g.rx.addRx(8); g.rx.publish();
    g.sendFrames([gframe(PMAC, n++), gframe(PMAC, n++, 1000), gframe(BCAST, n++, 70)], (k) => k === 1);
    p1.send([frame(GMAC, PMAC, 60, 100 * i), frame(GMAC, PMAC, 3000, 100 * i + 1)]);
    p1sent += 2;
    runner.step();
    assert.equal(p1.recv().length, 3, `cycle ${i}: guest → p1`);
    p2.recv();
    const got = g.rx.receive();
    assert.deepEqual(got.map((x) => seqOf(x.frame)), [100 * i, 100 * i + 1], `cycle ${i}: p1 → guest`);
    delivered += 2;
    g.disconnect();
    runner.vhostService();
    assert.match(listed(runner, 'vm1').down!, /QEMU disconnected/);
    assert.equal(vm().connected, false);
    // frames for the guest while it is gone: counted, not queued
    p1.send([frame(GMAC, PMAC, 60, 100 * i + 50)]);
    p1sent++; dropsWhileDown++;
    runner.step();
    assert.equal(vm().downDrops, dropsWhileDown);
    assert.deepEqual(runner.memory(), before, `cycle ${i}: allocated, fds, sockets and guest mappings as before`);
    assert.equal(mappingsOf(g.o.name!), maps, `cycle ${i}: the back-end's mappings of guest RAM are gone`);
    assert.equal(g.ram.guardDamage(), null);
  }
  // and once more with traffic after the last reconnect
  g.start();
  g.rx.addRx(4); g.rx.publish();
  p1.send([frame(GMAC, PMAC, 60, 9999)]); p1sent++; delivered++;
  runner.step();
  assert.deepEqual(g.rx.receive().map((x) => seqOf(x.frame)), [9999]);
  const s = vm();
  assert.equal(s.sessions, 21);
  assert.equal(portStats(runner, 'p1').txPackets, p1sent);
  assert.equal(s.queues.rx.frames, delivered);
  assert.equal(s.downDrops, dropsWhileDown);
  assert.equal(p1sent, s.queues.rx.frames + s.downDrops + switchDrops(runner), 'every frame p1 sent was delivered to the guest, dropped while down, or dropped by the switch');
  assert.equal(s.rxPackets, s.queues.rx.frames + s.downDrops, 'what the switch gave the port = delivered + dropped while down');
  const c = conservation(runner.vale.switch(SW).stats());
  assert.ok(c.ok, `conservation: ${JSON.stringify(c, (_, v) => (typeof v === 'bigint' ? Number(v) : v))}`);
});

test('a second simultaneous connection is refused and counted; the first keeps working; after the first leaves a new one is taken', { skip }, (t) => {
  const { runner, g, p1, vm, path } = rig(t);
  g.start();
  const before = runner.memory();
  const second = new Frontend(host, path, () => runner.vhostService());
  t.after(() => second.close());
  runner.vhostService();
  assert.equal(vm().refusedConnections, 1);
  assert.ok(second.closedByPeer(500), 'the back-end closed the second connection');
  assert.match(vm().events.join('\n'), /refused a second connection/);
  second.close();
  assert.deepEqual(runner.memory(), before, 'the refused connection left no socket behind');
  assert.equal(vm().sessions, 1);
  assert.equal(listed(runner, 'vm1').down, null);
  g.sendFrames([gframe(PMAC, 1)]);
  g.rx.addRx(2); g.rx.publish();
  p1.send([frame(GMAC, PMAC, 60, 2)]);
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [1], 'the first session still sends');
  assert.deepEqual(g.rx.receive().map((x) => seqOf(x.frame)), [2], 'and receives');
  g.disconnect();
  runner.vhostService();
  g.start();
  assert.equal(vm().sessions, 2);
  assert.equal(vm().refusedConnections, 1);
  g.sendFrames([gframe(PMAC, 3)]);
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [3]);
});

test('detach while QEMU is connected: the back-end hangs up, the socket file goes, memory and fds are as before the attach', { skip }, (t) => {
  const { runner, p1 } = rig(t);
  const path = sockPath('vm3');
  const g = new FakeQemu(host, path, () => runner.vhostService(), { name: `wasmap-vu-${run}-${++guests}` });
  t.after(() => g.close());
  const before = runner.memory(); // the guest's memfd included
  const r = runner.attach(SW, `vhost-user:${path}`, { name: 'vm3' }) as { name: string; kind: string; vnetHdr: number };
  assert.deepEqual([r.name, r.kind, r.vnetHdr], [`${SW}:vm3`, 'vhost-user', 12]);
  assert.ok(existsSync(path), 'the socket file exists');
  g.start();
  g.sendFrames([gframe(PMAC, 1, 60, GMAC2)]);
  runner.step();
  assert.deepEqual(seqs(p1.recv()), [1]);
  runner.detach(SW, `vhost-user:${path}`);
  assert.ok(g.q.closedByPeer(500), 'the back-end closed the connection');
  assert.ok(!existsSync(path), 'the socket file was removed');
  assert.ok(!(runner.list(SW) as { name: string }[]).some((e) => e.name === `${SW}:vm3`), 'the port is gone');
  g.disconnect();
  assert.deepEqual(runner.memory(), before, 'allocated memory, fds, sockets and guest mappings as before the attach');
  assert.equal(mappingsOf(g.o.name!), 1, 'only the guest maps its RAM');
  // the path can be served again
  runner.attach(SW, `vhost-user:${path}`, { name: 'vm3' });
  g.start();
  assert.equal(listed(runner, 'vm3').down, null);
});

// ---- messages glued together by the kernel --------------------------------------------------

test('messages written back to back (NUM, BASE, ADDR, KICK, CALL in the socket before the back-end reads) keep their fds', { skip }, (t) => {
  // the kernel hands a reader everything up to and including the next message with fds in one
  // recvmsg (unix stream sockets glue fd-less data in front of an SCM_RIGHTS skb), so the
  // back-end must give the fds to the last message of the chunk, not the first
  const { runner, g, p1, vm } = rig(t);
  g.connect();
  g.negotiate();
  g.setMemTable();
  g.rx.reset(); g.tx.reset();
  for (const i of [0, 1]) {
    g.startQueue(i, 0, { pumpEach: false, enable: false });
    const s = vm();
    assert.equal(s.connected, true, `queue ${i}: the session survived: ${s.events.at(-1)}`);
  }
  for (const i of [0, 1]) g.q.call(REQ.SET_VRING_ENABLE, vringState(i, 1));
  assert.equal(listed(runner, 'vm1').down, null);
  g.sendFrames([gframe(PMAC, 1)]);
  runner.step();
  assert.equal(p1.recv().length, 1);
  assert.ok(g.calls(1) > 0, 'the call fd reached SET_VRING_CALL');
  host.eventfdSignal(g.kick[1]);
  runner.stepOrSleep(3000, 0);
  assert.equal(vm().queues.tx.kicks, 1, 'the kick fd reached SET_VRING_KICK');
});
