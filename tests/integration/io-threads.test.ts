// TAP ports whose kernel I/O runs in I/O threads (`wasmap switch --io-threads N`): ping and
// iperf3 TCP both ways through two TAP ports with 1 and 2 threads; a detach while traffic runs;
// a TAP that vanishes takes only its port down; an I/O thread that dies takes its ports down
// with the reason (counted) and the switch goes on; and a runner that closes leaves no thread,
// fd or memory behind. Per-run prefix, everything removed afterwards (also on failure).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { loadHost } from '../../src/host.js';
import { Runner } from '../../src/runner.js';
import { startDaemonProcess, exited } from './daemon-proc.js';
import { prerequisites, sh, inNs, ctlOf } from './net-harness.js';

const tools = ['ip', 'ping', 'iperf3'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
const why = process.getuid?.() !== 0 ? 'needs root (network namespaces, TAP)' : !existsSync('/dev/net/tun') ? 'no /dev/net/tun'
  : !loadHost() ? 'native host not built' : tools.length ? `missing tools: ${tools.join(', ')} (apt-get install iproute2 iputils-ping iperf3)` : '';
const skip = prerequisites('io-thread test', why);

const P = `wt${(process.pid % 9000) + 1000}`;
const nsA = `${P}A`, nsB = `${P}B`, sock = `/tmp/wasmap-test-${P}.sock`;
let daemon: (ChildProcess & { output: () => string }) | null = null;

const ctl = ctlOf(sock);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const links = (ns: string) => inNs(ns, `ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^${P}' || true`, false).split('\n').filter(Boolean);

function cleanup(): void {
  if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
  for (const ns of [nsA, nsB]) sh(`ip netns del ${ns} 2>/dev/null`, false);
  for (const l of sh(`ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^${P}' || true`, false).split('\n').filter(Boolean)) sh(`ip link del ${l} 2>/dev/null`, false);
  sh(`rm -f ${sock}`, false);
}

async function startDaemon(args: string[], env?: Record<string, string>): Promise<void> {
  daemon = await startDaemonProcess(['vale0', '--socket', sock, ...args], { env });
}
async function stopDaemon(): Promise<void> {
  if (!daemon) return;
  daemon.kill('SIGTERM');
  await exited(daemon);
  daemon = null;
  for (const ns of [nsA, nsB]) for (const l of links(ns)) inNs(ns, `ip link del ${l}`, false);
}

/** Two TAP ports t1 (in A, 10.99.0.1) and t2 (in B, 10.99.0.2). */
async function twoTaps(tag: string, args: Record<string, unknown> = {}): Promise<[string, string]> {
  const t1 = `${P}${tag}1`, t2 = `${P}${tag}2`;
  await ctl('attach', { port: `tap:${t1}`, ...args });
  await ctl('attach', { port: `tap:${t2}`, ...args });
  for (const [n, d, ip] of [[nsA, t1, '10.99.0.1'], [nsB, t2, '10.99.0.2']]) {
    sh(`ip link set ${d} netns ${n}`); inNs(n, `ip addr add ${ip}/24 dev ${d}`); inNs(n, `ip link set ${d} up`); inNs(n, 'ip link set lo up');
  }
  return [t1, t2];
}

interface Port { name: string; txPackets: number; rxPackets: number; dropFull: number; kernelRx: number; kernelTx: number; kernelDrops: number; down: string | null; ioThread?: number }
interface Sw { ioThreads?: { index: number; tid: number; ports: number; down: string | null }[]; ioThreadDeaths?: number; ports: Port[] }
const stats = async () => ((await ctl('stats')) as Sw[])[0];

async function iperf(port: number, reverse: boolean, secs = 3): Promise<number> {
  inNs(nsB, `iperf3 -s -1 -D -p ${port}`);
  await sleep(300);
  const j = JSON.parse(inNs(nsA, `iperf3 -c 10.99.0.2 -p ${port} -t ${secs} ${reverse ? '-R' : ''} -J`)) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e9;
}

before(() => {
  if (skip) return;
  cleanup();
  sh(`ip netns add ${nsA}`); sh(`ip netns add ${nsB}`);
  // every port is on one switch: a namespace must answer ARP only on the interface that has
  // the address (B's extra TAP would answer for 10.99.0.2 and draw the pings to itself)
  for (const n of [nsA, nsB]) inNs(n, 'sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1');
});
after(() => { if (!skip) cleanup(); });

for (const n of [1, 2]) {
  test(`--io-threads ${n}: ping and iperf3 TCP both ways through two TAP ports; counters match; detach while traffic runs`, { skip, timeout: 90000 }, async () => {
    await startDaemon(['--io-threads', String(n)]);
    try {
      const [t1, t2] = await twoTaps(`i${n}`);
      assert.match(inNs(nsA, 'ping -c 20 -i 0.01 -W 2 10.99.0.2'), /20 received/);
      assert.match(inNs(nsB, 'ping -c 5 -i 0.05 -W 2 10.99.0.1'), /5 received/);
      let s = await stats();
      assert.equal(s.ioThreads?.length, n, `${n} I/O threads run: ${JSON.stringify(s.ioThreads)}`);
      assert.deepEqual(s.ports.map((p) => p.ioThread).sort(), n === 1 ? [0, 0] : [0, 1], 'each TAP port has its I/O thread (the least loaded)');
      const fwd = await iperf(5401, false), rev = await iperf(5402, true);
      console.log(`# --io-threads ${n}: TCP A->B ${fwd.toFixed(2)} Gbit/s, B->A ${rev.toFixed(2)} Gbit/s`);
      assert.ok(fwd > 0.05 && rev > 0.05, `TCP moves both ways: ${fwd.toFixed(2)} / ${rev.toFixed(2)} Gbit/s`);
      await sleep(300);
      s = await stats();
      const k = (ns: string, dev: string) => (JSON.parse(inNs(ns, `ip -s -j link show ${dev}`)) as { stats64: { rx: { packets: number }; tx: { packets: number } } }[])[0].stats64;
      for (const [ns, dev] of [[nsA, t1], [nsB, t2]]) {
        const p = s.ports.find((x) => x.name === dev)!, kk = k(ns, dev);
        assert.equal(p.kernelRx, kk.tx.packets, `${dev}: frames the I/O thread read = the TAP's tx count`);
        assert.equal(p.kernelTx + p.kernelDrops, kk.rx.packets + p.kernelDrops, `${dev}: frames written`);
        assert.equal(p.kernelTx, kk.rx.packets, `${dev}: frames the I/O thread wrote = the TAP's rx count`);
        assert.equal(p.down, null);
      }
      const a = s.ports.find((x) => x.name === t1)!, b = s.ports.find((x) => x.name === t2)!;
      assert.equal(a.txPackets + b.txPackets, a.rxPackets + b.rxPackets + a.dropFull + b.dropFull, 'sent = received + drops');
      // detach t2 while TCP runs toward it: the client stalls or fails, the daemon goes on
      inNs(nsB, 'iperf3 -s -1 -D -p 5403');
      await sleep(300);
      const client = spawn('ip', ['netns', 'exec', nsA, 'iperf3', '-c', '10.99.0.2', '-p', '5403', '-t', '3'], { stdio: 'ignore' });
      await sleep(1000);
      const d = (await ctl('detach', { port: `tap:${t2}` })) as { name: string; stats: Record<string, number> };
      assert.equal(d.name, `vale0:${t2}`);
      await new Promise((r) => { client.once('exit', r); setTimeout(() => { client.kill(); r(null); }, 15000); });
      s = await stats();
      assert.deepEqual(s.ports.map((p) => p.name), [t1], 'only t1 is left');
      assert.equal(s.ioThreads!.reduce((x, t) => x + t.ports, 0), 1, 'the detached port left its I/O thread');
      assert.equal(s.ioThreads!.length, n, 'the threads run on (an idle one sleeps)');
      assert.equal(((await ctl('ping')) as { pong: boolean }).pong, true);
      // and a new TAP takes its place and talks
      await ctl('attach', { port: `tap:${t2}x` });
      sh(`ip link set ${t2}x netns ${nsB}`); inNs(nsB, `ip addr add 10.99.0.3/24 dev ${t2}x`); inNs(nsB, `ip link set ${t2}x up`);
      assert.match(inNs(nsA, 'ping -c 3 -i 0.1 -W 2 10.99.0.3'), /3 received/);
    } finally { await stopDaemon(); }
  });
}

test('--io-threads 2: a TAP that vanishes (ip link del) takes only its port down', { skip, timeout: 60000 }, async () => {
  await startDaemon(['--io-threads', '2']);
  try {
    const [t1, t2] = await twoTaps('v');
    const t3 = `${P}v3`;
    await ctl('attach', { port: `tap:${t3}` });
    sh(`ip link set ${t3} netns ${nsB}`); inNs(nsB, `ip link set ${t3} up`);
    assert.match(inNs(nsA, 'ping -c 3 -i 0.1 -W 2 10.99.0.2'), /3 received/);
    inNs(nsB, `ip link del ${t3}`);
    inNs(nsA, 'ping -b -c 3 -i 0.1 -W 1 10.99.0.255', false); // broadcasts flood toward t3 too
    await sleep(500);
    const s = await stats();
    const p3 = s.ports.find((p) => p.name === t3)!;
    assert.ok(p3.down, `t3 is down: ${JSON.stringify(p3)}`);
    assert.match(p3.down!, /tap:.*v3 failed: (EBADFD|ENODEV|ENXIO|EIO|EBADF)|interface gone/);
    for (const t of [t1, t2]) assert.equal(s.ports.find((p) => p.name === t)!.down, null, `${t} stays up`);
    assert.equal(s.ioThreadDeaths, 0);
    assert.match(inNs(nsA, 'ping -c 3 -i 0.1 -W 2 10.99.0.2'), /3 received/, 'the other two still talk');
    await ctl('detach', { port: t3 });
  } finally { await stopDaemon(); }
});

test('an I/O thread that dies takes its ports down with the reason, counted; the switch goes on', { skip, timeout: 60000 }, async () => {
  await startDaemon(['--io-threads', '1'], { WASMAP_TEST_IO_FAULT: 'throw-after:40' });
  try {
    const [t1] = await twoTaps('d');
    inNs(nsA, 'ping -c 40 -i 0.01 -W 1 10.99.0.2', false); // the thread throws after 40 frames read
    await sleep(500);
    const s = await stats();
    assert.equal(s.ioThreadDeaths, 1, JSON.stringify(s.ioThreads));
    for (const p of s.ports) assert.match(p.down ?? '', /I\/O thread 0 died: Error: injected I\/O thread fault/, `${p.name} down with the reason`);
    assert.equal(((await ctl('ping')) as { pong: boolean }).pong, true, 'the daemon answers');
    // the dead thread's ports detach cleanly; a new port gets a new thread that works
    await ctl('detach', { port: t1 });
    assert.match(daemon!.output(), /I\/O thread 0 died/);
  } finally { await stopDaemon(); }
});

test('a runner with I/O threads closes without leaving threads, fds or memory', { skip, timeout: 60000 }, async () => {
  const tasks = () => readdirSync('/proc/self/task').length;
  const tunFds = () => readdirSync('/proc/self/fd').filter((f) => { try { return readlinkSync(`/proc/self/fd/${f}`) === '/dev/net/tun'; } catch { return false; } }).length;
  const r = new Runner(['vale0']);
  const base = { ...r.memory(), tasks: tasks(), tun: tunFds() };
  r.setIoThreads(2);
  assert.ok(tasks() >= base.tasks + 2, `two more threads run: ${tasks()} vs ${base.tasks}`);
  const names = [`${P}m1`, `${P}m2`, `${P}m3`];
  for (const n of names) r.attach('vale0', `tap:${n}`); // each waits until its thread has the port
  for (let i = 0; i < 200; i++) r.stepOrSleep(1, 0);
  const s = (r.stats() as Sw[])[0];
  assert.deepEqual(s.ioThreads!.map((t) => t.ports), [2, 1], 'three ports on two threads, the least loaded first');
  assert.deepEqual(s.ports.map((p) => p.down), [null, null, null]);
  r.detach('vale0', `tap:${names[0]}`);
  r.detach('vale0', `tap:${names[1]}`);
  r.stepOrSleep(1, 0);
  r.detach('vale0', `tap:${names[2]}`);
  assert.equal(r.memory().allocated, base.allocated, 'every ring, region and CSB freed');
  r.attach('vale0', `tap:${names[0]}`); // one more, left for close() to take
  r.close();
  await sleep(500);
  const now = { ...r.memory(), tasks: tasks(), tun: tunFds() };
  assert.equal(now.tun, base.tun, 'every TAP fd closed');
  assert.equal(now.fds, base.fds, 'every eventfd/memfd closed');
  assert.equal(now.tasks, base.tasks, 'the I/O threads are gone');
  assert.equal(spawnSync('ip', ['link', 'show', names[1]]).status, 1, 'the TAPs went with their fds');
});
