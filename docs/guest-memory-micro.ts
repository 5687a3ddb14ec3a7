// The per-frame cost of the window's translation, in one process (so other load on the machine
// hits both sides alike): the fake QEMU of the tests sends 64-byte (and 1514-byte) frames from
// guest TX to a virtual port and receives as many on guest RX, through a port that maps its
// guest whole and one that sees it through a window (chunks all mapped after the first pass:
// the steady state of a guest whose working set fits). Alternating rounds, median ns/frame.
// Run (root not needed; after npm run build):
//   npx esbuild docs/guest-memory-micro.ts --bundle --platform=node --format=esm --outfile=build/guest-memory-micro.mjs && node build/guest-memory-micro.mjs
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runner } from '../src/runner.js';
import { loadHost, type NativeHost } from '../src/host.js';
import { frame, station } from '../tests/unit/helpers.js';
import { FakeQemu } from '../tests/integration/vhost-frontend.js';

const host = loadHost() as NativeHost;
const dir = mkdtempSync(join(tmpdir(), 'wasmap-gmm-'));
const GMAC = '52:54:00:12:36:01', PMAC = station(0x181);

function rig(windowed: boolean) {
  const runner = new Runner(['valegm']);
  const path = join(dir, `${windowed ? 'w' : 'd'}.sock`);
  runner.attach('valegm', `vhost-user:${path}`, windowed ? { name: 'vm', directMax: 0 } : { name: 'vm' });
  runner.attach('valegm', 'p1');
  const g = new FakeQemu(host, path, () => runner.vhostService(), { name: `wasmap-gmm-${windowed ? 'w' : 'd'}` });
  g.start();
  const p1 = runner.vale.switch('valegm').port('p1')!;
  g.rx.addRx(8); g.rx.publish();
  p1.send([frame('ff:ff:ff:ff:ff:ff', PMAC, 60, 0)]);
  runner.step(); g.rx.receive();
  return { runner, g, p1 };
}

function round(r: ReturnType<typeof rig>, len: number, batches: number): number {
  const out = Array.from({ length: 64 }, (_, k) => frame(PMAC, GMAC, len, k));
  const inn = Array.from({ length: 64 }, (_, k) => frame(GMAC, PMAC, len, k));
  let t = 0, n = 0;
  for (let b = 0; b < batches; b++) {
    r.g.sendFrames(out);
    r.g.rx.addRx(64); r.g.rx.publish();
    r.p1.send(inn);
    const t0 = process.hrtime.bigint();
    r.runner.step();
    t += Number(process.hrtime.bigint() - t0);
    n += r.p1.recv().length + r.g.rx.receive().length;
    r.g.tx.reclaim();
  }
  return t / n;
}

const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
const whole = rig(false), win = rig(true);
for (const len of [60, 1514]) {
  const a: number[] = [], b: number[] = [];
  round(whole, len, 50); round(win, len, 50); // warm-up (the window maps its chunks here)
  for (let i = 0; i < 15; i++) { a.push(round(whole, len, 200)); b.push(round(win, len, 200)); }
  const ws = (win.runner.stats('valegm') as { ports: { name: string; window?: unknown }[] }[])[0].ports.find((p) => p.name === 'vm')!.window;
  console.log(`${len + 4}-byte frames: whole ${med(a).toFixed(0)} ns/frame, windowed ${med(b).toFixed(0)} ns/frame (${(med(a) / med(b)).toFixed(3)}× the rate), window ${JSON.stringify(ws)}`);
}
for (const r of [whole, win]) { r.g.close(); r.runner.close(); }
rmSync(dir, { recursive: true, force: true });
