// Zero-copy TX of vhost-user ports (issue #17; assembly/virtio/vring.ts, VQ_ZC_PREFIX): a guest
// frame whose last buffer holds more than VQ_ZC_MIN bytes past the prefix is not copied into
// the port's tx ring; the ring's slot describes the guest's buffer and the switch copies from
// it straight into the receiver. The prefix (virtio-net header and the first FN_HDR_MAX bytes:
// all that decisions read) is copied at the pull, so what was decided on cannot change; the
// chain goes on the used ring only after the switch has copied the rest. Checked here with the
// fake QEMU of vhost-frontend.ts: what is delivered, when chains complete, and that no slot
// still refers to guest memory once a pass is over — also when no round ran after the pull,
// or when the memory table is replaced in between.
import { test, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runner } from '../../src/runner.js';
import { loadHost, hostMissingReason, type NativeHost } from '../../src/host.js';
import { conservation, type SwitchPort } from '../../src/switch.js';
import type { VhostUserPort } from '../../src/backends/vhost-user.js';
import { frame, seqOf, station, BCAST } from '../unit/helpers.js';
import { same } from '../frames.js';
import { FakeQemu, LAYOUT, NET_HDR, DESC_NEXT, DESC_INDIRECT } from './vhost-frontend.js';

const required = process.env.WASMAP_REQUIRE_NET === '1';
const loaded = loadHost();
const why = loaded ? '' : `native host unavailable: ${hostMissingReason()}`;
const skip = why && !required ? why : false;
if (why && required) test('vhost zero-copy test prerequisites', () => assert.fail(`WASMAP_REQUIRE_NET=1 but ${why}`));
const host = loaded as NativeHost;

const SW = 'valezc';
const GMAC = '52:54:00:12:35:01';
const PMAC = station(0x151);
const run = `${process.pid}`;
let dir = '';
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });
let seq = 0;
const sockPath = () => join(dir ||= mkdtempSync(join(tmpdir(), `wasmap-zc-${run}-`)), `vm-${++seq}.sock`);

interface Rig { runner: Runner; g: FakeQemu; p1: SwitchPort; p2: SwitchPort; vp: VhostUserPort }
function rig(t: TestContext): Rig {
  const runner = new Runner([SW]);
  const path = sockPath();
  runner.attach(SW, `vhost-user:${path}`, { name: 'vm1' });
  runner.attach(SW, 'p1');
  runner.attach(SW, 'p2');
  const g = new FakeQemu(host, path, () => runner.vhostService(), { name: `wasmap-zc-${run}-${seq}` });
  t.after(() => { g.close(); runner.close(); });
  const vp = (runner as unknown as { backends: Map<string, VhostUserPort> }).backends.get(`${SW}:vm1`);
  assert.ok(vp, 'test bug: Runner keeps its backends in backends');
  const s = runner.vale.switch(SW);
  const p1 = s.port('p1')!;
  g.start();
  // p1 makes its MAC known, so the guest's unicasts to it are forwarded to p1 alone
  g.rx.addRx(8); g.rx.publish();
  p1.send([frame(BCAST, PMAC, 60, 999)]);
  runner.step();
  assert.equal(g.rx.receive().length, 1);
  s.port('p2')!.recv();
  return { runner, g, p1: s.port('p1')!, p2: s.port('p2')!, vp };
}

// lengths (frame without the virtio-net header) and how each is sent: one descriptor, the
// header apart, an indirect table. 60 and 300 are copied (rest past the 108-byte prefix ≤ 256
// bytes); 1000, 400 and 1514 stay in guest memory until the switch copies them
const SHAPES: [number, boolean | 'indirect'][] = [[60, false], [1000, false], [300, true], [400, 'indirect'], [1514, true]];
const COPIED = 2; // the 60- and 300-byte ones
const PREFIX = 96; // frame bytes in the prefix (VQ_ZC_PREFIX - the 12-byte header)

function send(g: FakeQemu): Uint8Array[] {
  const sent = SHAPES.map(([len], k) => frame(PMAC, GMAC, len, k + 1));
  g.sendFrames(sent, (k) => SHAPES[k][1]);
  return sent;
}

/** Overwrite every buffer of every chain the guest offered on its TX queue (the driver's view:
 *  descriptor table, indirect tables) with 0xEE — a guest reusing its buffers early. */
function scribble(g: FakeQemu): void {
  const { ram } = g, dv = ram.dv, num = g.tx.num;
  const desc = (tab: number, i: number) => {
    const at = ram.at(tab + 16 * i);
    return { addr: Number(dv.getBigUint64(at, true)), len: dv.getUint32(at + 8, true), flags: dv.getUint16(at + 12, true), next: dv.getUint16(at + 14, true) };
  };
  for (let a = 0; a < g.tx.nextAvail; a++) {
    let d = desc(LAYOUT.tx.desc, dv.getUint16(ram.at(LAYOUT.tx.avail + 4 + 2 * (a % num)), true));
    let tab: number = LAYOUT.tx.desc;
    for (let hops = 0; hops < 8; hops++) {
      if (d.flags & DESC_INDIRECT) { tab = d.addr; d = desc(tab, 0); continue; }
      ram.u8.fill(0xee, ram.at(d.addr), ram.at(d.addr) + d.len);
      if (!(d.flags & DESC_NEXT)) break;
      d = desc(tab, d.next);
    }
  }
}

function intactAfter(t: TestContext, r: Rig, sent: Uint8Array[]): void {
  const got = r.p1.recv();
  assert.equal(got.length, sent.length, 'every frame reached p1');
  got.forEach((f, k) => assert.ok(same(f, sent[k]), `frame ${k + 1} (${sent[k].length} bytes) intact: copied before the guest rewrote its buffers`));
  assert.equal(r.p2.recv().length, 0);
  assert.equal(r.g.tx.pendingUsed, sent.length, 'every chain on the used ring');
  assert.equal(r.g.tx.reclaim().length, sent.length);
  assert.equal(r.g.tx.freeDescs, r.g.tx.num, 'every descriptor back with the driver');
  const c = conservation(r.runner.vale.switch(SW).stats());
  assert.ok(c.ok, `conservation: ${JSON.stringify(c, (_, v) => (typeof v === 'bigint' ? Number(v) : v))}`);
  assert.equal(r.g.ram.guardDamage(), null);
  void t;
}

test('zero-copy TX: long frames go from the guest buffer to the receiver in one copy; chains are used only after the round; the decision and the first bytes are those read at the pull', { skip }, (t) => {
  const r = rig(t);
  const sent = send(r.g);
  assert.equal(r.vp.pull(), sent.length);
  assert.equal(r.g.tx.usedIdx, COPIED, 'after the pull only the copied frames are used: the others are still read from guest memory');
  // the guest rewrites its buffers now (a broken or hostile driver): its header and MACs were
  // decided on already; the rest of a zero-copy frame is read when the switch copies it
  scribble(r.g);
  r.runner.vale.rounds(Math.floor(Date.now() / 1000));
  r.vp.push(); // the pass's end: the switch is done with the guest's buffers, their chains go back
  assert.equal(r.g.tx.usedIdx, sent.length, 'after the round every chain is used');
  const got = r.p1.recv();
  assert.equal(got.length, sent.length, 'every frame to p1 (decided on the MACs read at the pull)');
  assert.equal(r.p2.recv().length, 0, 'nothing flooded: the scribbled destination was never looked at');
  got.forEach((f, k) => {
    assert.equal(f.length, sent[k].length, `frame ${k + 1}: length as pulled`);
    if (k === 0 || k === 2) assert.ok(same(f, sent[k]), `frame ${k + 1}: copied at the pull, intact`);
    else {
      assert.ok(same(f.subarray(0, PREFIX), sent[k].subarray(0, PREFIX)), `frame ${k + 1}: its first ${PREFIX} bytes as pulled`);
      assert.ok(f.subarray(PREFIX).every((b) => b === 0xee), `frame ${k + 1}: the rest read from guest memory by the switch (one copy)`);
    }
  });
  assert.equal(seqOf(got[4]), 5);
  assert.equal(r.g.tx.reclaim().length, sent.length);
  assert.equal(r.g.tx.freeDescs, r.g.tx.num);
  const c = conservation(r.runner.vale.switch(SW).stats());
  assert.ok(c.ok, `conservation: ${JSON.stringify(c, (_, v) => (typeof v === 'bigint' ? Number(v) : v))}`);
  // and in the ordinary loop: the same frames, undisturbed, arrive whole
  const again = send(r.g);
  r.runner.step();
  intactAfter(t, r, again);
});

test('zero-copy TX: a pull that no round followed (two pulls in a row) settles its frames into the port\'s own buffers first; nothing refers to guest memory after it', { skip }, (t) => {
  const r = rig(t);
  const sent = send(r.g);
  assert.equal(r.vp.pull(), sent.length);
  assert.equal(r.vp.pull(), 0, 'nothing new');
  assert.equal(r.g.tx.usedIdx, sent.length, 'the second pull completed the waiting chains');
  scribble(r.g); // the guest owns those buffers again and reuses them
  r.runner.step();
  intactAfter(t, r, sent);
});

test('zero-copy TX: a memory table replaced between the pull and the round settles the frames first (no slot points at memory being unmapped)', { skip }, (t) => {
  const r = rig(t);
  const sent = send(r.g);
  assert.equal(r.vp.pull(), sent.length);
  r.g.setMemTable(); // the same RAM again: every region unmapped and mapped anew
  assert.equal(r.g.tx.usedIdx, sent.length, 'the chains were completed before the old mappings went');
  scribble(r.g);
  r.runner.step();
  intactAfter(t, r, sent);
});

test('zero-copy TX off (WASMAP_VHOST_ZEROCOPY=0 at attach): every frame copied at the pull, its chain used at once', { skip }, (t) => {
  const old = process.env.WASMAP_VHOST_ZEROCOPY;
  process.env.WASMAP_VHOST_ZEROCOPY = '0';
  let r: Rig;
  try { r = rig(t); } finally { if (old === undefined) delete process.env.WASMAP_VHOST_ZEROCOPY; else process.env.WASMAP_VHOST_ZEROCOPY = old; }
  const sent = send(r.g);
  assert.equal(r.vp.pull(), sent.length);
  assert.equal(r.g.tx.usedIdx, sent.length);
  scribble(r.g);
  r.runner.vale.rounds(Math.floor(Date.now() / 1000));
  r.vp.push();
  intactAfter(t, r, sent);
  assert.equal(NET_HDR, 12);
});
