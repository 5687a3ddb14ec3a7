// Guests larger than the wasm memory (issue #17 item 5; docs/guest-memory.md): DPDK virtio-user
// front-ends with 8 GiB and 4 × 2 GiB of memory — 16 GiB of guest RAM, four times what a wasm32
// memory can address — attach to one switch and forward, every port seen through its window of
// 2 MiB chunks. testpmd runs with --no-mlockall so the guest RAM (one memfd each) is touched
// lazily: it costs neither process real memory beyond what is used. Frames are checked end to
// end (a capture: every IPv4 header intact; each receiving testpmd got exactly what the switch
// put in its queue), and a windowed front-end restarted 20 times leaves no fd, socket, wasm
// allocation or mapping behind.
// Needs root and dpdk-testpmd (apt-get install dpdk-dev librte-net-virtio23
// librte-mempool-ring23); skipped without them unless WASMAP_REQUIRE_NET=1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { startDaemonProcess, exited } from './daemon-proc.js';
import { ctlRequest, CtlConnection } from '../../src/ctl/client.js';
import { prerequisites } from './net-harness.js';
import { testpmd, until, sleep, restartTwenty } from './dpdk-harness.js';

const why = process.getuid?.() !== 0 ? 'needs root'
  : spawnSync('sh', ['-c', 'command -v dpdk-testpmd']).status !== 0 ? 'needs dpdk-testpmd (apt-get install dpdk-dev librte-net-virtio23 librte-mempool-ring23)' : null;
const skip = prerequisites('vhost-user big-guest test', why ?? '');

const P = `bv${process.pid % 10000}`;
const GiB = 1024;

// --no-mlockall: testpmd locks (faults in) all its memory otherwise; --no-flush-rx: it drains its
// RX queues before forwarding starts, uncounted, and frames the switch delivered before then
// would be missing from its totals
const bigTestpmd = (prefix: string, mib: number, vdev: string, extra: string[]) =>
  testpmd(prefix, ['--no-huge', '-m', String(mib), '--iova-mode=va'], vdev, ['--no-mlockall', '--no-flush-rx', ...extra]);
/** testpmd's totals at exit. */
function totals(out: string): { rx: number; tx: number } {
  const t = out.slice(out.lastIndexOf('Accumulated forward statistics for all ports'));
  const rx = /RX-packets:\s+(\d+)/.exec(t), tx = /TX-packets:\s+(\d+)/.exec(t);
  assert.ok(rx && tx, `testpmd printed its totals: ${out.slice(-600)}`);
  return { rx: Number(rx![1]), tx: Number(tx![1]) };
}
type Win = { slots: number; mapped: number; misses: number; maps: number; evictions: number };
type Port = { name: string; down: string | null; txPackets: number; guestMappedBytes: number; window?: Win; queues: { rx: { frames: number }; tx: { broken: string | null } }; events: string[] };

/** IPv4 frames in a pcap whose header checksum does not add up (or that are cut short). */
function badIpv4(file: string): { frames: number; ipv4: number; bad: number } {
  const b = readFileSync(file);
  let o = 24, frames = 0, ipv4 = 0, bad = 0;
  while (o + 16 <= b.length) {
    const cap = b.readUInt32LE(o + 8), f = b.subarray(o + 16, o + 16 + cap);
    o += 16 + cap;
    frames++;
    if (f.length < 34 || f.readUInt16BE(12) !== 0x0800) continue;
    ipv4++;
    const ihl = (f[14] & 15) * 4;
    let s = 0;
    for (let i = 0; i < ihl; i += 2) s += f.readUInt16BE(14 + i);
    while (s > 0xffff) s = (s & 0xffff) + (s >> 16);
    if (s !== 0xffff || f[14] >> 4 !== 4 || 14 + f.readUInt16BE(16) > f.length) bad++;
  }
  return { frames, ipv4, bad };
}

test('an 8 GiB and four 2 GiB DPDK front-ends attach to one switch and forward through their windows; frames intact, every receiver got what the switch delivered', { skip, timeout: 180000 }, async (t) => {
  const sock = `/tmp/${P}-ctl.sock`, pcap = `/tmp/${P}-big.pcap`;
  const names = ['big', 'g1', 'g2', 'g3', 'g4'];
  const path = (n: string) => `/tmp/${P}-${n}.sock`;
  const mac = (i: number) => `02:00:00:00:17:0${i}`;
  const procs: ChildProcess[] = [];
  t.after(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) { p.kill('SIGKILL'); await exited(p); }
    for (const f of [sock, pcap, ...names.map(path)]) rmSync(f, { force: true });
  });
  const d = await startDaemonProcess(['vale0', '--socket', sock]);
  procs.push(d);
  for (const n of names) await ctlRequest(sock, 'attach', { switch: 'vale0', port: `vhost-user:${path(n)}`, name: n });
  const ports = async (): Promise<Port[]> => ((await ctlRequest(sock, 'stats', { switch: 'vale0' })) as { ports: Port[] }[])[0].ports;
  const port = async (n: string) => (await ports()).find((p) => p.name === n)!;
  // g1 receives what big sends it; g2..g4 send to big, which receives (flowgen discards what it gets)
  const fe: Record<string, ChildProcess & { out: () => string }> = {};
  fe.g1 = bigTestpmd(`${P}g1`, 2 * GiB, `net_virtio_user0,path=${path('g1')},queues=1,mac=${mac(1)}`, ['--forward-mode=rxonly']);
  for (const i of [2, 3, 4]) fe[`g${i}`] = bigTestpmd(`${P}g${i}`, 2 * GiB, `net_virtio_user0,path=${path(`g${i}`)},queues=1,mac=${mac(i)}`, ['--forward-mode=txonly', '--txpkts', '60', '--eth-peer', `0,${mac(0)}`]);
  fe.big = bigTestpmd(`${P}big`, 8 * GiB, `net_virtio_user0,path=${path('big')},queues=1,mac=${mac(0)}`, ['--forward-mode=flowgen', '--txpkts', '1514', '--eth-peer', `0,${mac(1)}`]);
  procs.push(...Object.values(fe));
  await until('all five front-ends to come up', async () => (await ports()).every((p) => p.down === null), 60000);
  // both ways go through its window. A capture lives as long as the connection that started it:
  // this one stays open until the frames are counted
  const capConn = await CtlConnection.open(sock);
  await capConn.request('capture', { switch: 'vale0', port: 'big', file: pcap, count: 200 });
  await until('frames through every window', async () => {
    const s = await ports();
    return s.find((p) => p.name === 'g1')!.queues.rx.frames > 20000 && s.find((p) => p.name === 'big')!.queues.rx.frames > 20000 &&
      ['g2', 'g3', 'g4', 'big'].every((n) => s.find((p) => p.name === n)!.txPackets > 5000);
  }, 60000);
  for (const p of await ports()) {
    assert.ok(p.window, `${p.name} is seen through a window (${p.events.at(-1)})`);
    assert.ok(p.events.some((e) => new RegExp(`${p.name === 'big' ? 8192 : 2048} MiB .*window`).test(e)), `${p.name}: memory table of its size: ${p.events.join(' | ')}`);
    assert.ok(p.guestMappedBytes <= p.window!.slots * 4 * 2 ** 20, `${p.name} maps at most its window (${p.guestMappedBytes} bytes)`);
    assert.equal(p.queues.tx.broken, null);
  }
  // stop the senders into big, then big (the sender into g1), then g1: each receiver's count is
  // final. A receiver is stopped only once what the switch put in its queue has stayed the same
  // for a second (on a loaded machine its polling lcore may take a while to drain the queue)
  const settled = async (n: string) => {
    let last = -1, same = 0;
    while (same < 10) { const f = (await port(n)).queues.rx.frames; same = f === last ? same + 1 : 0; last = f; await sleep(100); }
    await sleep(500);
  };
  for (const n of ['g2', 'g3', 'g4', 'big', 'g1']) {
    if (n === 'big' || n === 'g1') await settled(n); else await sleep(500);
    fe[n].kill('SIGINT');
    assert.equal(await exited(fe[n]), 0, `${n} ended cleanly: ${fe[n].out().slice(-400)}`);
  }
  const s = await ports(), by = (n: string) => s.find((p) => p.name === n)!;
  assert.equal(totals(fe.g1.out()).rx, by('g1').queues.rx.frames, 'the 2 GiB receiver got exactly what the switch put in its queue');
  assert.equal(totals(fe.big.out()).rx, by('big').queues.rx.frames, 'the 8 GiB receiver got exactly what the switch put in its queue');
  for (const n of ['g2', 'g3', 'g4', 'big']) {
    const sent = totals(fe[n].out()).tx;
    assert.ok(by(n).txPackets > 0 && by(n).txPackets <= sent, `${n}: the switch took ${by(n).txPackets} of the ${sent} frames it sent`);
  }
  capConn.close();
  const c = badIpv4(pcap);
  assert.ok(c.ipv4 >= 100, `captured IPv4 frames on big: ${JSON.stringify(c)}`);
  assert.equal(c.bad, 0, `every captured IPv4 header intact: ${JSON.stringify(c)}`);
  d.kill('SIGTERM');
  await exited(d);
});

test('a 2 GiB (windowed) DPDK front-end restarted 20 times: each session moves frames; no fd, socket, allocation or mapping left behind', { skip, timeout: 240000 }, async (t) => {
  await restartTwenty(t, P, (i, path) => bigTestpmd(`${P}x${i}`, 2 * GiB, `net_virtio_user0,path=${path},queues=1`, ['--forward-mode=txonly']), {},
    (port, i) => assert.ok(port.window, `session ${i} is windowed`), 30000);
});
