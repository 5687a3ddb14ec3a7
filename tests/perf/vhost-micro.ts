// In-process micro-benchmark of the vhost-user guest-to-guest datapath (not a test): two
// fake guests (tests/integration/vhost-frontend.ts for the protocol, then raw ring writes the
// way DPDK's virtio PMD does them: one descriptor per TX frame with the header in front, one
// writable 2 KiB buffer per RX chain, interrupts off) send to each other through one switch.
// Only runner.step() is timed: ns per delivered frame is the backend's cost alone.
//   node build/tests/perf/vhost-micro.mjs [frame=64] [seconds=3] [burst=32] [cold=0]
// cold=MB: before each step, sweep MB MiB of other memory so the guests' rings and buffers are
// out of the caches, as they are for a switch whose guests run on another core (every ring
// entry and buffer a miss); untimed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runner } from '../../src/runner.js';
import { loadHost, type NativeHost } from '../../src/host.js';
import { FakeQemu, FEAT, NET_HDR, LAYOUT, DESC_WRITE } from '../integration/vhost-frontend.js';

const host = loadHost() as NativeHost;
const FRAME = Number(process.argv[2] ?? 64) - 4, SECONDS = Number(process.argv[3] ?? 3), BURST = Number(process.argv[4] ?? 32), COLD = Number(process.argv[5] ?? 0);
const sweep = new Int32Array(COLD * 262144);
let sunk = 0;
function evict(): void { for (let i = 0; i < sweep.length; i += 16) sunk += sweep[i]++; }
const dir = mkdtempSync(join(tmpdir(), 'wasmap-vhmicro-'));
const runner = new Runner(['valemicro']);
const macs = ['02:00:00:00:0a:01', '02:00:00:00:0a:02'];
const guests: FakeQemu[] = [];
const features = FEAT.VERSION_1 | FEAT.MRG_RXBUF | FEAT.INDIRECT_DESC | FEAT.PROTOCOL_FEATURES | FEAT.CSUM;
for (let i = 0; i < 2; i++) {
  const path = join(dir, `v${i}.sock`);
  runner.attach('valemicro', `vhost-user:${path}`, { name: `v${i}` });
  const g = new FakeQemu(host, path, () => runner.vhostService(), { name: `vhmicro-${i}`, features });
  g.start();
  guests.push(g);
}
const mac = (s: string) => s.split(':').map((h) => parseInt(h, 16));
interface G { g: FakeQemu; num: number; txAvail: number; rxAvail: number; txUsedSeen: number; rxUsedSeen: number; got: number }
const st: G[] = guests.map((g) => ({ g, num: g.tx.num, txAvail: 0, rxAvail: 0, txUsedSeen: 0, rxUsedSeen: 0, got: 0 }));
for (let i = 0; i < 2; i++) {
  const { g } = st[i], ram = g.ram, num = g.tx.num;
  const f = new Uint8Array(NET_HDR + FRAME);
  f.set(mac(macs[1 - i]), NET_HDR); f.set(mac(macs[i]), NET_HDR + 6); f[NET_HDR + 12] = 0x08; f[NET_HDR + 13] = 0x00;
  for (let d = 0; d < num; d++) {
    ram.u8.set(f, ram.at(LAYOUT.tx.buf(d)));
    ram.writeDesc(LAYOUT.tx.desc + 16 * d, LAYOUT.tx.buf(d), f.length, 0);
    ram.writeDesc(LAYOUT.rx.desc + 16 * d, LAYOUT.rx.buf(d), 2048, DESC_WRITE);
  }
  ram.dv.setUint16(ram.at(LAYOUT.tx.avail), 1, true); // VRING_AVAIL_F_NO_INTERRUPT
  ram.dv.setUint16(ram.at(LAYOUT.rx.avail), 1, true);
}
function guestWork(s: G): void {
  const ram = s.g.ram, dv = ram.dv, num = s.num;
  // RX: count what arrived, give the buffers back
  const rxUsed = dv.getUint16(ram.at(LAYOUT.rx.used + 2), true);
  s.got += (rxUsed - s.rxUsedSeen) & 0xffff; s.rxUsedSeen = rxUsed;
  while (((s.rxAvail - rxUsed) & 0xffff) < num) { dv.setUint16(ram.at(LAYOUT.rx.avail + 4 + 2 * (s.rxAvail % num)), s.rxAvail % num, true); s.rxAvail = (s.rxAvail + 1) & 0xffff; }
  dv.setUint16(ram.at(LAYOUT.rx.avail + 2), s.rxAvail, true);
  // TX: a burst when there is room (chains complete in order: head = avail index mod num)
  const txUsed = dv.getUint16(ram.at(LAYOUT.tx.used + 2), true);
  for (let k = 0; k < BURST && ((s.txAvail - txUsed) & 0xffff) < num; k++) { dv.setUint16(ram.at(LAYOUT.tx.avail + 4 + 2 * (s.txAvail % num)), s.txAvail % num, true); s.txAvail = (s.txAvail + 1) & 0xffff; }
  dv.setUint16(ram.at(LAYOUT.tx.avail + 2), s.txAvail, true);
}
let spent = 0, steps = 0;
const per: number[] = []; // ns per frame of each step: the median shrugs off preemption by other load
const end = performance.now() + SECONDS * 1000;
let warm = true, cpu0 = process.cpuUsage();
const lastUsed = [0, 0];
const w0 = performance.now();
while (true) {
  for (const s of st) guestWork(s);
  if (COLD) evict();
  const t0 = performance.now();
  runner.step();
  const t1 = performance.now();
  if (warm && t1 - w0 > 500) { warm = false; spent = 0; steps = 0; for (const s of st) s.got = 0; cpu0 = process.cpuUsage(); }
  spent += t1 - t0; steps++;
  let moved = 0;
  for (let i = 0; i < 2; i++) { const u = st[i].g.ram.dv.getUint16(st[i].g.ram.at(LAYOUT.rx.used + 2), true); moved += (u - lastUsed[i]) & 0xffff; lastUsed[i] = u; }
  if (!warm && moved > 0) per.push((t1 - t0) * 1e6 / moved);
  if (t1 > end) break;
}
const got = st[0].got + st[1].got;
const cpu = process.cpuUsage(cpu0); // CPU time, guests' work included: steadier than the clock on a shared machine
const stats = (runner.stats('valemicro') as { ports: { name: string; dropFull: number; queues: { rx: { stalls: number; frames: number }; tx: { frames: number } } }[] }[])[0].ports;
per.sort((a, b) => a - b);
console.log(JSON.stringify({ frame: FRAME + 4, burst: BURST, cold_mib: COLD, sunk: sunk & 1, median_ns_per_frame: +per[per.length >> 1].toFixed(1), cpu_ns_per_frame: +((cpu.user + cpu.system) * 1000 / got).toFixed(1), p25_ns_per_frame: +per[per.length >> 2].toFixed(1), frames: got, ns_per_frame: +(spent * 1e6 / got).toFixed(1), frames_per_step: +(got / steps).toFixed(1), ns_per_step: +(spent * 1e6 / steps).toFixed(0),
  mpps_backend_only: +(got / spent / 1000).toFixed(2), dropFull: stats.map((p) => p.dropFull), stalls: stats.map((p) => p.queues.rx.stalls) }));
for (const g of guests) g.close();
runner.close();
rmSync(dir, { recursive: true, force: true });
