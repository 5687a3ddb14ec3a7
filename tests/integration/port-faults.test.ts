// Per-port fault isolation in the forwarding loop (#15: "a fault in one port's work takes that
// port down with a reason"): a backend whose work throws is taken down alone, shows why in
// list and stats, has the frames sent to it counted, and the other ports keep forwarding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runner } from '../../src/runner.js';
import { PtGuest } from '../../src/guest.js';
import { conservation } from '../../src/switch.js';
import { loadHost, hostMissingReason } from '../../src/host.js';

const skip = loadHost() ? false : (hostMissingReason() ?? 'no native host');
const mac = (id: number) => [2, 0, 0, 0, 0, id];
function frame(to: number, from: number, seq: number, len = 120): Uint8Array {
  const f = new Uint8Array(len);
  f.set(to === 255 ? [255, 255, 255, 255, 255, 255] : mac(to), 0); f.set(mac(from), 6); f[12] = 0x88; f[13] = 0xb5;
  new DataView(f.buffer).setUint32(14, seq, true);
  for (let i = 18; i < len; i++) f[i] = (seq + i * 3) & 255;
  return f;
}
const intact = (f: Uint8Array, seq: number) => {
  if (new DataView(f.buffer, f.byteOffset).getUint32(14, true) !== seq) return false;
  for (let i = 18; i < f.length; i++) if (f[i] !== ((seq + i * 3) & 255)) return false;
  return true;
};
type PortRow = { name: string; down: string | null; faultDrops?: number };
// the runner's own maps, for injecting a fault into one backend (a test hook, nothing else)
const internals = (r: Runner) => r as unknown as { backends: Map<string, { pull: () => number; push: () => number; drainKicks: () => void }>; captures: Map<string, { frames: () => void }> };

/** Bystanders a and b exchange `n` frames each way through runner `r`; returns what b and a got intact. */
function bystanders(r: Runner, sw: string, n: number, seq0 = 0): { ab: number; ba: number } {
  const s = r.vale.switch(sw), a = s.port('a')!, b = s.port('b')!;
  let ab = 0, ba = 0;
  for (let i = 0; i < n; i += 16) {
    const k = Math.min(16, n - i);
    assert.equal(a.send(Array.from({ length: k }, (_, j) => frame(2, 1, seq0 + i + j))), k);
    assert.equal(b.send(Array.from({ length: k }, (_, j) => frame(1, 2, seq0 + i + j))), k);
    r.step();
    b.recv().forEach((f, j) => { if (intact(f, seq0 + i + j)) ab++; });
    a.recv().forEach((f, j) => { if (intact(f, seq0 + i + j)) ba++; });
  }
  return { ab, ba };
}

test('a vhost-user port whose pull throws is taken down alone: the pair next to it keeps delivering, the reason is listed, frames to it are counted', { skip, timeout: 30000 }, () => {
  const r = new Runner(['vale0']);
  const tmp = mkdtempSync(join(tmpdir(), 'wasmap-fault-'));
  try {
    r.attach('vale0', 'a'); r.attach('vale0', 'b');
    const vh = r.attach('vale0', `vhost-user:${join(tmp, 'vh.sock')}`) as { name: string; index: number };
    // make both MACs known (the first frames flood, to the vhost port as well)
    bystanders(r, 'vale0', 16);
    internals(r).backends.get(vh.name)!.pull = () => { throw new Error('injected: backend state corrupted'); };
    let got = { ab: 0, ba: 0 };
    assert.doesNotThrow(() => { got = bystanders(r, 'vale0', 512, 1000); }, 'one port\'s throw does not end the pass');
    assert.deepEqual(got, { ab: 512, ba: 512 }, 'every bystander frame delivered intact');
    const row = (r.list('vale0') as PortRow[]).find((p) => p.name === vh.name)!;
    assert.match(row.down ?? '', /fault in pull: injected: backend state corrupted/);
    // frames aimed at the faulted port are taken off its ring and counted
    const a = r.vale.switch('vale0').port('a')!;
    assert.equal(a.send(Array.from({ length: 8 }, (_, j) => frame(255, 1, j)), 0), 8); // broadcast: b and the faulted port
    r.step(); r.step(); r.vale.switch('vale0').port('b')!.recv();
    const st = (r.stats('vale0') as { ports: PortRow[] }[])[0].ports.find((p) => p.name === 'vh')!;
    assert.equal(st.faultDrops, 8 + 0, 'the 8 broadcast copies to the faulted port counted as its drops');
    assert.match(st.down ?? '', /injected/);
    assert.ok(conservation(r.vale.switch('vale0').stats()).ok, 'conservation');
    assert.equal(r.memory().guestMapped, 0, 'the faulted port released its guest memory');
    const d = r.handle({ verb: 'detach', args: { switch: 'vale0', port: 'vh' } });
    assert.ok(d.ok, JSON.stringify(d));
    assert.match(String((d.result as { fault: string }).fault), /injected/);
    assert.deepEqual(bystanders(r, 'vale0', 64, 5000), { ab: 64, ba: 64 });
  } finally { r.close(); rmSync(tmp, { recursive: true, force: true }); }
});

test('a capture whose file fails stops with its reason; the port it watched and the others go on', { skip, timeout: 30000 }, () => {
  const r = new Runner(['vale1']);
  const tmp = mkdtempSync(join(tmpdir(), 'wasmap-fault-'));
  try {
    r.attach('vale1', 'a'); r.attach('vale1', 'b');
    bystanders(r, 'vale1', 16);
    r.capture('vale1', 'a', join(tmp, 'a.pcap'), 0);
    bystanders(r, 'vale1', 32, 100);
    internals(r).captures.get('vale1:a')!.frames = () => { throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }); };
    assert.deepEqual(bystanders(r, 'vale1', 256, 200), { ab: 256, ba: 256 });
    const cs = r.captureStatus('vale1', 'a') as { active: boolean; stopped: string };
    assert.equal(cs.active, false);
    assert.match(cs.stopped, /ENOSPC/);
    assert.ok(readFileSync(join(tmp, 'a.pcap')).length > 24 + 64 * 100, 'what was captured before the fault is kept');
    assert.equal((r.list('vale1') as PortRow[]).find((p) => p.name === 'vale1:a')!.down, null, 'the port itself is not down');
  } finally { r.close(); rmSync(tmp, { recursive: true, force: true }); }
});

test('a passthrough port whose kick handling throws is reclaimed with the reason; the pair next to it keeps delivering', { skip, timeout: 30000 }, () => {
  const r = new Runner(['vale2']);
  try {
    r.attach('vale2', 'a'); r.attach('vale2', 'b');
    const pt = r.ptOpen('vale2', 'g', 'worker', { slots: 64 });
    const g = PtGuest.fromWorker(pt.workerInfo());
    bystanders(r, 'vale2', 16);
    internals(r).backends.get('vale2:g')!.drainKicks = () => { throw new Error('injected: eventfd gone'); };
    assert.doesNotThrow(() => { for (let i = 0; i < 5; i++) r.stepOrSleep(1, 0); }, 'the sleep path survives the fault');
    assert.deepEqual(bystanders(r, 'vale2', 256, 300), { ab: 256, ba: 256 });
    const gone = (r.stats('vale2') as { guestsGone: { name: string; reason: string; audit: string[] }[] }[])[0].guestsGone;
    assert.equal(gone.length, 1);
    assert.equal(gone[0].name, 'vale2:g');
    assert.match(gone[0].reason, /fault in kick drain: injected: eventfd gone/);
    assert.deepEqual(gone[0].audit, []);
    assert.equal((r.list('vale2') as PortRow[]).some((p) => p.name === 'vale2:g'), false);
    void g;
  } finally { r.close(); }
});
