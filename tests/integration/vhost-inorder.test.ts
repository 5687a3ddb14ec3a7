// VIRTIO_F_IN_ORDER on vhost-user ports (issue #17 item 3): the device offers it, and a guest
// that takes it gets every buffer back in the order it made them available — the driver may
// then free descriptors by counting used->idx without reading the used entries' ids (DPDK's
// in-order paths do; its virtio-user front-end asks for in_order by default). Zero-copy TX
// completes its chains after the round, after later copied ones, so a queue with IN_ORDER
// copies every frame at the pull. Checked with the fake QEMU of vhost-frontend.ts.
import { test, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runner } from '../../src/runner.js';
import { loadHost, hostMissingReason, type NativeHost } from '../../src/host.js';
import { conservation } from '../../src/switch.js';
import type { VhostUserPort } from '../../src/backends/vhost-user.js';
import { frame, station, BCAST } from '../unit/helpers.js';
import { same } from '../frames.js';
import { FakeQemu, GUEST_FEATURES } from './vhost-frontend.js';

const required = process.env.WASMAP_REQUIRE_NET === '1';
const loaded = loadHost();
const why = loaded ? '' : `native host unavailable: ${hostMissingReason()}`;
const skip = why && !required ? why : false;
if (why && required) test('vhost in-order test prerequisites', () => assert.fail(`WASMAP_REQUIRE_NET=1 but ${why}`));
const host = loaded as NativeHost;

const IN_ORDER = 1n << 35n; // VIRTIO_F_IN_ORDER
const SW = 'valeio';
const GMAC = '52:54:00:12:36:01';
const PMAC = station(0x161);
const run = `${process.pid}`;
let dir = '';
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });
let seq = 0;
const sockPath = () => join(dir ||= mkdtempSync(join(tmpdir(), `wasmap-io-${run}-`)), `vm-${++seq}.sock`);

function rig(t: TestContext, features: bigint, learn = true) {
  const runner = new Runner([SW]);
  const path = sockPath();
  runner.attach(SW, `vhost-user:${path}`, { name: 'vm1' });
  runner.attach(SW, 'p1');
  const g = new FakeQemu(host, path, () => runner.vhostService(), { name: `wasmap-io-${run}-${seq}`, features });
  t.after(() => { g.close(); runner.close(); });
  const vp = (runner as unknown as { backends: Map<string, VhostUserPort> }).backends.get(`${SW}:vm1`)!;
  const p1 = runner.vale.switch(SW).port('p1')!;
  g.start();
  if (learn) { // p1's MAC learned: the guest's unicasts go to p1
    g.rx.addRx(1); g.rx.publish();
    p1.send([frame(BCAST, PMAC, 60, 999)]);
    runner.step();
    assert.equal(g.rx.receive().length, 1);
  }
  return { runner, g, vp, p1 };
}

// long frames (zero-copy candidates: more than 256 bytes past the 108-byte prefix) between short
// ones, in every descriptor shape
const SHAPES: [number, boolean | 'indirect'][] = [[1514, false], [60, false], [1000, true], [300, 'indirect'], [1400, 'indirect'], [64, true]];

test('IN_ORDER: offered; with it every TX chain is used at the pull, in the order it was made available (long frames copied, not left in guest memory)', { skip }, (t) => {
  const r = rig(t, GUEST_FEATURES | IN_ORDER);
  assert.ok(r.g.offered & IN_ORDER, 'the device offers VIRTIO_F_IN_ORDER');
  assert.ok(r.g.features & IN_ORDER, 'and the guest negotiated it');
  const sent = SHAPES.map(([len], k) => frame(PMAC, GMAC, len, k + 1));
  const heads: number[] = [];
  const from = r.g.tx.nextAvail;
  r.g.sendFrames(sent, (k) => SHAPES[k][1]);
  for (let a = from; a < r.g.tx.nextAvail; a++) heads.push(r.g.ram.dv.getUint16(r.g.ram.at(r.g.tx.l.avail + 4 + 2 * (a % r.g.tx.num)), true));
  assert.equal(r.vp.pull(), sent.length);
  assert.equal(r.g.tx.usedIdx, sent.length, 'every chain is used at the pull: none waits for the round after a later one was used');
  assert.deepEqual(Array.from({ length: sent.length }, (_, k) => r.g.tx.used(k).id), heads, 'used ids in avail order');
  r.g.ram.u8.fill(0xee, r.g.ram.at(r.g.tx.l.buf(0)), r.g.ram.at(r.g.tx.l.buf(r.g.tx.num - 1)) + r.g.tx.l.bufSize); // the guest reuses its buffers at once
  r.runner.vale.rounds(Math.floor(Date.now() / 1000));
  r.vp.push();
  const got = r.p1.recv();
  assert.equal(got.length, sent.length);
  got.forEach((f, k) => assert.ok(same(f, sent[k]), `frame ${k + 1} (${sent[k].length} bytes) intact: copied at the pull`));
  assert.equal(r.g.tx.reclaim().length, sent.length);
  const c = conservation(r.runner.vale.switch(SW).stats());
  assert.ok(c.ok, `conservation: ${JSON.stringify(c, (_, v) => (typeof v === 'bigint' ? Number(v) : v))}`);
  assert.equal(r.g.ram.guardDamage(), null);
});

test('IN_ORDER: RX buffers are used in avail order too, frames across mergeable buffers included', { skip }, (t) => {
  const r = rig(t, GUEST_FEATURES | IN_ORDER, false);
  const from = r.g.rx.nextAvail;
  r.g.rx.addRx(16, 1024); r.g.rx.publish(); // 1024-byte buffers: a 1514-byte frame takes two
  const heads: number[] = [];
  for (let a = from; a < r.g.rx.nextAvail; a++) heads.push(r.g.ram.dv.getUint16(r.g.ram.at(r.g.rx.l.avail + 4 + 2 * (a % r.g.rx.num)), true));
  const base = r.g.rx.usedIdx;
  const sent = [1514, 60, 1514, 900].map((len, k) => frame(GMAC, PMAC, len, k + 1));
  r.p1.send(sent);
  r.runner.step();
  const n = (r.g.rx.usedIdx - base) & 0xffff;
  assert.equal(n, 6, 'six buffers used (2 + 1 + 2 + 1)');
  assert.deepEqual(Array.from({ length: n }, (_, k) => r.g.rx.used(base + k).id), heads.slice(0, n), 'used ids in avail order');
  const got = r.g.rx.receive();
  assert.equal(got.length, sent.length);
  got.forEach((f, k) => assert.ok(same(f.frame, sent[k]), `frame ${k + 1} intact`));
});

test('without IN_ORDER a long frame still waits in guest memory for the round (zero-copy TX unchanged)', { skip }, (t) => {
  const r = rig(t, GUEST_FEATURES);
  assert.equal(r.g.features & IN_ORDER, 0n);
  r.g.sendFrames([frame(PMAC, GMAC, 1514, 1), frame(PMAC, GMAC, 60, 2)]);
  assert.equal(r.vp.pull(), 2);
  assert.equal(r.g.tx.usedIdx, 1, 'the short frame is used at the pull, the long one after the round: out of order, which IN_ORDER forbids');
  r.runner.vale.rounds(Math.floor(Date.now() / 1000));
  r.vp.push();
  assert.equal(r.g.tx.usedIdx, 2);
  assert.equal(r.p1.recv().length, 2);
});
