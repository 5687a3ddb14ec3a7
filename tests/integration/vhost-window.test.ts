// Guest memory through the window (docs/guest-memory.md), with the fake QEMU of
// tests/integration/vhost-frontend.ts: its 4 MiB guest is seen through 64 KiB chunks and a
// window of 8 slots (attach options directMax 0, chunkShift 16, window 8), so its buffers span
// far more chunks than the window holds and misses, evictions and pinned rings happen at every
// step. Frames must still arrive whole and in order both ways, nothing outside the guest's
// regions written; a chain needing more chunks at once than the window holds breaks its queue
// with the reason instead of spinning. Needs only the native host.
import { test, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runner } from '../../src/runner.js';
import { loadHost, hostMissingReason, type NativeHost } from '../../src/host.js';
import { conservation } from '../../src/switch.js';
import { frame, seqOf, station, BCAST } from '../unit/helpers.js';
import { same } from '../frames.js';
import { FakeQemu, LAYOUT } from './vhost-frontend.js';

const required = process.env.WASMAP_REQUIRE_NET === '1';
const loaded = loadHost();
const why = loaded ? '' : `native host unavailable: ${hostMissingReason()}`;
const skip = why && !required ? why : false;
const host = loaded as NativeHost;
const SW = 'valevw';
const GMAC = '52:54:00:12:35:01';
const PMAC = station(0x171);
let dir = '';
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

type Win = { slots: number; mapped: number; misses: number; maps: number; evictions: number; waits: number };
type VS = { down: string | null; window?: Win; guestMappedBytes: number; queues: { tx: { frames: number; broken: string | null }; rx: { frames: number } } };

function rig(t: TestContext) {
  const runner = new Runner([SW]);
  dir ||= mkdtempSync(join(tmpdir(), `wasmap-vw-${process.pid}-`));
  const path = join(dir, `vm-${Math.random().toString(36).slice(2)}.sock`);
  runner.attach(SW, `vhost-user:${path}`, { name: 'vm', directMax: 0, chunkShift: 16, window: 8 });
  runner.attach(SW, 'p1');
  const g = new FakeQemu(host, path, () => runner.vhostService(), { name: `wasmap-vw-${process.pid}` });
  t.after(() => { g.close(); runner.close(); });
  const vm = () => (runner.stats(SW) as { ports: (VS & { name: string })[] }[])[0].ports.find((p) => p.name === 'vm')!;
  return { runner, g, p1: runner.vale.switch(SW).port('p1')!, vm };
}

test('a windowed guest (64 chunks, 8 slots): frames both ways arrive whole and in order while chunks are missed and evicted', { skip }, (t) => {
  const { runner, g, p1, vm } = rig(t);
  g.start();
  const w0 = vm().window;
  assert.ok(w0, 'the guest is seen through a window');
  assert.equal(w0.slots, 8);
  // p1 makes its MAC known, so the guest's unicasts go to it
  g.rx.addRx(8); g.rx.publish();
  p1.send([frame(BCAST, PMAC, 60, 999)]);
  for (let i = 0; i < 8; i++) runner.step();
  assert.deepEqual(g.rx.receive().map((x) => seqOf(x.frame)), [999]);
  // TX buffers alternate between 0x10000+ and 0x200000+ (2 KiB apart): 64 frames touch ~32 chunks
  const sent = Array.from({ length: 200 }, (_, k) => frame(PMAC, GMAC, 60 + ((k * 37) % 1455), k));
  const got: Uint8Array[] = [];
  for (let i = 0; i < sent.length; i += 50) {
    g.sendFrames(sent.slice(i, i + 50), (k) => k % 3 === 1);
    for (let s = 0; s < 400 && g.tx.usedIdx < i + 50; s++) { runner.step(); got.push(...p1.recv()); }
    got.push(...p1.recv());
    g.tx.reclaim();
  }
  assert.equal(got.length, sent.length, 'every frame reached p1');
  got.forEach((f, k) => assert.ok(same(f, sent[k]), `frame ${k} intact, in order`));
  // RX: frames into buffers at 0x100000+ (their chunks missed and mapped while others are evicted)
  const back = Array.from({ length: 120 }, (_, k) => frame(GMAC, PMAC, 60 + ((k * 53) % 1455), 5000 + k));
  const rcv: number[] = [];
  for (let i = 0; i < back.length; i += 30) {
    g.rx.addRx(30); g.rx.publish();
    p1.send(back.slice(i, i + 30));
    for (let s = 0; s < 400 && rcv.length < i + 30; s++) {
      runner.step();
      for (const x of g.rx.receive()) { assert.ok(same(x.frame, back[rcv.length]), `rx frame ${rcv.length} intact`); rcv.push(seqOf(x.frame)); }
    }
  }
  assert.deepEqual(rcv, back.map((_, k) => 5000 + k), 'every frame reached the guest, in order');
  const s = vm();
  assert.ok(s.window!.evictions > 0 && s.window!.misses > s.window!.slots, `chunks were missed and evicted: ${JSON.stringify(s.window)}`);
  assert.ok(s.guestMappedBytes <= 8 * 2 * 65536, `at most the window is mapped (${s.guestMappedBytes})`);
  assert.equal(s.down, null);
  assert.equal(g.ram.guardDamage(), null, 'nothing outside the guest\'s regions written');
  const c = conservation(runner.vale.switch(SW).stats());
  assert.ok(c.ok, `conservation: ${JSON.stringify(c, (_, v) => (typeof v === 'bigint' ? Number(v) : v))}`);
});

test('a TX chain needing more chunks at once than the window holds breaks its queue with the reason, instead of spinning', { skip }, (t) => {
  const { runner, g, vm } = rig(t);
  g.start();
  // 12 pieces of one frame, each in its own 64 KiB chunk (52..63): 8 slots, 2 pinned by the rings
  const D = 200;
  for (let i = 0; i < 12; i++) g.tx.desc(D + i, LAYOUT.spare + i * 0x10000, i === 0 ? 12 : 20, i < 11 ? 1 : 0, D + i + 1);
  g.tx.offer(D); g.tx.publish();
  for (let s = 0; s < 200 && vm().queues.tx.broken === null; s++) runner.step();
  const st = vm();
  assert.match(st.queues.tx.broken ?? 'healthy', /spans more guest memory chunks than the window holds/);
  assert.match(st.down ?? 'up', /TX queue broken by the guest: .*window/);
  assert.equal(g.tx.usedIdx, 0, 'the chain was never consumed');
  assert.equal(st.queues.tx.frames, 0);
});
