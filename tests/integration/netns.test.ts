// Real kernels on both sides: two network namespaces talk through a wasmap switch daemon —
// over TAP ports (virtio-net header and offloads passed through) and over veth pairs with
// AF_PACKET ports — with ping and iperf3; counters are checked against the kernel's; faults
// (a vanished interface, garbage on the control socket, a killed daemon) hurt nothing else.
// Everything is named with a per-run prefix and removed afterwards, also when a test fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { findBuildFile } from '../../src/paths.js';
import { ctlRequest } from '../../src/ctl/client.js';
import { loadHost } from '../../src/host.js';
import { startDaemonProcess } from './daemon-proc.js';
import { prerequisites, sh, inNs, ctlOf } from './net-harness.js';

const tools = ['ip', 'ping', 'iperf3', 'ethtool'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
const why = process.getuid?.() !== 0 ? 'needs root (network namespaces, TAP)' : !existsSync('/dev/net/tun') ? 'no /dev/net/tun'
  : !loadHost() ? 'native host not built' : tools.length ? `missing tools: ${tools.join(', ')} (apt-get install iproute2 iputils-ping iperf3 ethtool)` : '';
const skip = prerequisites('network test', why);

const P = `w${(process.pid % 9000) + 1000}`;           // per-run prefix, short: names stay < 16 chars
const nsA = `${P}A`, nsB = `${P}B`, sock = `/tmp/wasmap-test-${P}.sock`;
let daemon: ChildProcess | null = null;

const ctl = ctlOf(sock);

async function startDaemon(): Promise<void> {
  daemon = await startDaemonProcess(['vale0', '--socket', sock]);
}

function cleanup(): void {
  if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
  for (const ns of [nsA, nsB]) sh(`ip netns del ${ns} 2>/dev/null`, false);
  for (const l of sh(`ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^${P}' || true`, false).split('\n').filter(Boolean)) sh(`ip link del ${l} 2>/dev/null`, false);
  sh(`rm -f ${sock}`, false);
}

function ns(name: string, dev: string, ip: string): void {
  sh(`ip link set ${dev} netns ${name}`);
  inNs(name, `ip addr add ${ip}/24 dev ${dev}`);
  inNs(name, `ip link set ${dev} up`);
  inNs(name, 'ip link set lo up');
}

function kernelCounts(nsName: string, dev: string): { rx: number; tx: number } {
  const j = JSON.parse(inNs(nsName, `ip -s -j link show ${dev}`)) as { stats64: { rx: { packets: number }; tx: { packets: number } } }[];
  return { rx: j[0].stats64.rx.packets, tx: j[0].stats64.tx.packets };
}

interface PortStat { name: string; rxPackets: number; txPackets: number; kernelRx: number; kernelTx: number; kernelDrops: number; down: string | null; dropFull: number }
async function portStats(): Promise<Map<string, PortStat>> {
  const s = (await ctl('stats')) as { ports: PortStat[] }[];
  return new Map(s[0].ports.map((p) => [p.name, p]));
}

before(async () => {
  if (skip) return;
  cleanup();
  sh(`ip netns add ${nsA}`); sh(`ip netns add ${nsB}`);
  // every port is on one switch: a namespace must answer ARP only on the interface that has
  // the address, or a broadcast request is answered through another port
  // (and no IPv6 chatter: router solicitations and MLD reports would land in the captures)
  for (const n of [nsA, nsB]) inNs(n, 'sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1');
  await startDaemon();
});
after(() => { if (!skip) cleanup(); });

test('TAP ports: ping, iperf3 TCP with offloads (vnet header passed through) and UDP; counters match the kernel', { skip, timeout: 120000 }, async () => {
  const t1 = `${P}t1`, t2 = `${P}t2`;
  await ctl('attach', { port: `tap:${t1}`, vnetHdr: 12 });
  await ctl('attach', { port: `tap:${t2}`, vnetHdr: 12 });
  ns(nsA, t1, '10.91.0.1'); ns(nsB, t2, '10.91.0.2');
  const ping = inNs(nsA, 'ping -c 5 -i 0.2 -W 2 10.91.0.2');
  assert.match(ping, /5 received/);
  const rtt = Number(/= [\d.]+\/([\d.]+)\//.exec(ping)?.[1]);
  assert.ok(rtt > 0 && rtt < 20, `ping RTT ${rtt} ms`);
  inNs(nsA, 'ping -c 2 -i 0.2 10.91.0.2'); // and back: B answers A, A answers B
  assert.match(inNs(nsB, 'ping -c 3 -i 0.2 -W 2 10.91.0.1'), /3 received/);
  inNs(nsB, 'iperf3 -s -1 -D -p 5201');
  await new Promise((r) => setTimeout(r, 300));
  const tcp = JSON.parse(inNs(nsA, 'iperf3 -c 10.91.0.2 -p 5201 -t 5 -J')) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
  const gbps = tcp.end.sum_received.bits_per_second / 1e9;
  console.log(`# TAP TCP through wasmap: ${gbps.toFixed(2)} Gbit/s`);
  assert.ok(gbps > 0.5, `TCP moved at ${gbps.toFixed(2)} Gbit/s`);
  inNs(nsB, 'iperf3 -s -1 -D -p 5202');
  await new Promise((r) => setTimeout(r, 300));
  const udp = JSON.parse(inNs(nsA, 'iperf3 -c 10.91.0.2 -p 5202 -u -l 64 -b 20M -t 2 -J')) as { end: { sum: { packets: number; lost_packets: number } } };
  assert.ok(udp.end.sum.packets > 1000, `${udp.end.sum.packets} small datagrams sent`);
  await new Promise((r) => setTimeout(r, 300));
  const s = await portStats();
  for (const [nsName, dev] of [[nsA, t1], [nsB, t2]]) {
    const k = kernelCounts(nsName, dev), p = s.get(dev)!;
    // what the namespace sent into its TAP is what the daemon read, and the other way round
    assert.equal(p.kernelRx, k.tx, `${dev}: frames the daemon read = the TAP's tx count`);
    assert.equal(p.kernelTx, k.rx, `${dev}: frames the daemon wrote = the TAP's rx count`);
    assert.equal(p.down, null);
  }
  const a = s.get(t1)!, b = s.get(t2)!;
  assert.equal(a.txPackets + b.txPackets, a.rxPackets + b.rxPackets + a.dropFull + b.dropFull, 'sent = received + drops');
});

test('veth pairs with AF_PACKET ports: ping and TCP', { skip, timeout: 60000 }, async () => {
  const v = (n: string) => `${P}${n}`;
  sh(`ip link add ${v('a0')} type veth peer name ${v('a1')}`);
  sh(`ip link add ${v('b0')} type veth peer name ${v('b1')}`);
  for (const d of ['a0', 'b0']) sh(`ip link set ${v(d)} up`);
  await ctl('attach', { port: `af_packet:${v('a0')}` });
  await ctl('attach', { port: `af_packet:${v('b0')}` });
  ns(nsA, v('a1'), '10.92.0.1'); ns(nsB, v('b1'), '10.92.0.2');
  // offloads off on every end: the path without TSO (the old bench row); with the default
  // offloads see af-packet-vnet.test.ts
  for (const [n, d] of [[nsA, v('a1')], [nsB, v('b1')]]) inNs(n, `ethtool -K ${d} tx off tso off gso off gro off`, false);
  for (const d of ['a0', 'b0']) sh(`ethtool -K ${v(d)} tx off tso off gso off gro off`, false);
  assert.match(inNs(nsA, 'ping -c 4 -i 0.2 -W 2 10.92.0.2'), /4 received/);
  inNs(nsB, 'iperf3 -s -1 -D -p 5203');
  await new Promise((r) => setTimeout(r, 300));
  const tcp = JSON.parse(inNs(nsA, 'iperf3 -c 10.92.0.2 -p 5203 -t 3 -J')) as { end: { sum_received: { bits_per_second: number } } };
  console.log(`# veth/AF_PACKET TCP through wasmap: ${(tcp.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gbit/s`);
  assert.ok(tcp.end.sum_received.bits_per_second > 50e6);
});

test('offloads through the switch: TAP with TSO -> veth/AF_PACKET without; the receiving kernel sees no bad checksum', { skip, timeout: 60000 }, async () => {
  const t3 = `${P}t3`, d0 = `${P}d0`, d1 = `${P}d1`;
  await ctl('attach', { port: `tap:${t3}`, vnetHdr: 12 });
  sh(`ip link add ${d0} type veth peer name ${d1}`);
  sh(`ip link set ${d0} up`);
  sh(`ethtool -K ${d0} tx off tso off gso off gro off`, false);
  await ctl('attach', { port: `af_packet:${d0}`, vnetHdr: 0 }); // no header (AF_PACKET ports have one by default): the switch segments for it
  ns(nsA, t3, '10.94.0.1'); ns(nsB, d1, '10.94.0.2');
  inNs(nsB, `ethtool -K ${d1} tx off tso off gso off gro off`, false); // whole, checksummed frames back
  assert.match(inNs(nsA, 'ping -c 3 -i 0.2 -W 2 10.94.0.2'), /3 received/);
  const before = inNs(nsB, 'nstat -az TcpInCsumErrors UdpInCsumErrors', false);
  inNs(nsB, 'iperf3 -s -1 -D -p 5204');
  await new Promise((r) => setTimeout(r, 300));
  const tcp = JSON.parse(inNs(nsA, 'iperf3 -c 10.94.0.2 -p 5204 -t 4 -J')) as { end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits: number } } };
  console.log(`# TAP(TSO) -> AF_PACKET segmented in wasm: ${(tcp.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gbit/s`);
  assert.ok(tcp.end.sum_received.bits_per_second > 100e6);
  const errs = inNs(nsB, 'nstat -az TcpInCsumErrors UdpInCsumErrors', false);
  const count = (t: string, k: string) => Number(new RegExp(`${k}\\s+(\\d+)`).exec(t)?.[1] ?? 0);
  assert.equal(count(errs, 'TcpInCsumErrors') - count(before, 'TcpInCsumErrors'), 0, 'no TCP checksum errors at the receiver');
  const st = (await ctl('stats')) as { segExtra: number; ports: { name: string; txPackets: number; rxPackets: number; dropHdr: number }[] }[];
  assert.ok(st[0].segExtra > 0, 'TSO frames were segmented');
  const tap = st[0].ports.find((p) => p.name === t3)!, pk = st[0].ports.find((p) => p.name === d0)!;
  assert.ok(pk.rxPackets > tap.txPackets, 'more frames reached the veth than left the TAP: segments');
  assert.equal(pk.dropHdr + tap.dropHdr, 0);
  // and tcpdump on the receiving side reads valid checksums
  const file = `/tmp/wasmap-test-${P}-off.pcap`;
  const dump = spawn('ip', ['netns', 'exec', nsB, 'tcpdump', '-i', d1, '-c', '20', '-w', file, 'tcp'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  inNs(nsB, 'iperf3 -s -1 -D -p 5205');
  await new Promise((r) => setTimeout(r, 300));
  inNs(nsA, 'iperf3 -c 10.94.0.2 -p 5205 -t 1');
  await new Promise((r) => { dump.once('exit', r); setTimeout(() => dump.kill(), 3000); });
  try {
    const read = sh(`tcpdump -nn -vv -r ${file} 2>/dev/null`);
    assert.ok(/cksum 0x[0-9a-f]+ \(correct\)/.test(read), 'tcpdump verified checksums');
    assert.ok(!/incorrect/.test(read), 'no incorrect checksum');
  } finally { sh(`rm -f ${file}`, false); }
});

test('an interface that vanishes takes only its port down; the others go on', { skip, timeout: 60000 }, async () => {
  const v = (n: string) => `${P}${n}`;
  sh(`ip link add ${v('c0')} type veth peer name ${v('c1')}`);
  sh(`ip link set ${v('c0')} up`); sh(`ip link set ${v('c1')} up`);
  await ctl('attach', { port: `af_packet:${v('c0')}` });
  // traffic toward it: a broadcast ping floods to every port, c0 included
  inNs(nsA, 'ping -b -c 2 -i 0.2 -W 1 10.91.0.255', false);
  sh(`ip link del ${v('c0')}`);
  inNs(nsA, 'ping -b -c 3 -i 0.2 -W 1 10.91.0.255', false);
  await new Promise((r) => setTimeout(r, 200));
  const list = (await ctl('list')) as { name: string; down: string | null }[];
  const c0 = list.find((p) => p.name === `vale0:${v('c0')}`);
  assert.ok(c0?.down, `port reported down: ${JSON.stringify(c0)}`);
  assert.match(c0!.down!, /ENODEV|ENXIO|EBADF|ENETDOWN|gone/);
  assert.match(inNs(nsA, 'ping -c 3 -i 0.2 -W 2 10.91.0.2'), /3 received/, 'the TAP pair still talks');
  await ctl('detach', { port: v('c0') });
});

test('garbage on the control socket gets an error reply; the daemon goes on', { skip }, async () => {
  const reply = await new Promise<string>((resolve, reject) => {
    const c = createConnection(sock);
    let buf = '';
    c.on('connect', () => c.write('this is not json\n'));
    c.on('data', (d) => { buf += d; if (buf.includes('\n')) { c.end(); resolve(buf); } });
    c.on('error', reject);
  });
  assert.equal((JSON.parse(reply) as { error: { code: string } }).error.code, 'EPROTO');
  await assert.rejects(ctl('attach', { port: 'tap:bad/name' }), { code: 'EINVAL' });
  await assert.rejects(ctlRequest(sock, 'attach', { switch: 'vale7', port: 'x' }), { code: 'ENOENT' });
  await assert.rejects(ctl('frobnicate'), { code: 'EINVAL' });
  assert.deepEqual(((await ctlRequest(sock, 'ping')) as { pong: boolean }).pong, true);
});

test('wasmap capture writes a pcap that tcpdump reads back, frame for frame', { skip, timeout: 30000 }, async () => {
  const cli = findBuildFile('cli.mjs')!;
  const file = `/tmp/wasmap-test-${P}.pcap`;
  // static neighbours, so no ARP frame can take one of the six places
  const mac = (n: string, d: string) => (JSON.parse(inNs(n, `ip -j link show ${d}`)) as { address: string }[])[0].address;
  inNs(nsA, `ip neigh replace 10.91.0.2 lladdr ${mac(nsB, `${P}t2`)} dev ${P}t1 nud permanent`);
  inNs(nsB, `ip neigh replace 10.91.0.1 lladdr ${mac(nsA, `${P}t1`)} dev ${P}t2 nud permanent`);
  // until stopped: the switch floods other ports' broadcasts to t2 too, so count what we sent
  const cap = spawn(process.execPath, [cli, 'capture', 'vale0', `${P}t2`, '-w', file, '--socket', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
  let started = '';
  await new Promise<void>((resolve) => { cap.stderr!.on('data', (d) => { started += d; if (started.includes('capturing')) resolve(); }); setTimeout(resolve, 10000); });
  const done = new Promise<string>((resolve) => { let out = ''; cap.stdout!.on('data', (d) => { out += d; }); cap.once('exit', () => resolve(out)); });
  inNs(nsA, 'ping -c 3 -i 0.2 -W 2 10.91.0.2');   // 3 requests to t2, 3 replies from t2
  await new Promise((r) => setTimeout(r, 300));
  cap.kill('SIGINT');
  const out = await done;
  const frames = Number(/(\d+) frames captured/.exec(out)?.[1]);
  try {
    const read = sh(`tcpdump -nn -r ${file} 2>/dev/null`);
    assert.equal(read.trim().split('\n').filter(Boolean).length, frames, `tcpdump reads the ${frames} frames the capture wrote`);
    assert.equal((read.match(/10\.91\.0\.1 > 10\.91\.0\.2: ICMP echo request/g) ?? []).length, 3, read);
    assert.equal((read.match(/10\.91\.0\.2 > 10\.91\.0\.1: ICMP echo reply/g) ?? []).length, 3, read);
  } finally { sh(`rm -f ${file}`, false); }
  // with -c the capture ends by itself after that many frames
  const counted = spawn(process.execPath, [cli, 'capture', 'vale0', `${P}t2`, '-w', file, '-c', '2', '--socket', sock], { stdio: ['ignore', 'pipe', 'ignore'] });
  const cdone = new Promise<string>((resolve) => { let o = ''; counted.stdout!.on('data', (d) => { o += d; }); counted.once('exit', () => resolve(o)); });
  await new Promise((r) => setTimeout(r, 700));
  inNs(nsA, 'ping -c 3 -i 0.2 -W 2 10.91.0.2');
  try {
    assert.match(await cdone, /2 frames captured/);
    assert.equal(sh(`tcpdump -nn -r ${file} 2>/dev/null`).trim().split('\n').length, 2);
  } finally { sh(`rm -f ${file}`, false); }
});

test('stats in Prometheus text format', { skip }, () => {
  const cli = findBuildFile('cli.mjs')!;
  const out = sh(`${process.execPath} ${cli} ctl --socket ${sock} stats vale0 --prometheus`);
  assert.match(out, /# TYPE wasmap_port_rx_packets_total counter/);
  assert.match(out, new RegExp(`wasmap_port_rx_packets_total\\{switch="vale0",port="${P}t1",kind="tap"\\} [1-9]`));
  assert.match(out, /wasmap_port_drops_total\{[^}]*reason="rx_full"\} \d+/);
  assert.match(out, /wasmap_port_drops_total\{[^}]*reason="port_fault"\} 0/);
  assert.match(out, new RegExp(`wasmap_port_kernel_drops_total\\{switch="vale0",port="${P}t1",kind="tap"\\} \\d+`));
});

test('a killed daemon leaves no TAP behind, and a new one starts on the stale socket', { skip, timeout: 30000 }, async () => {
  daemon!.kill('SIGKILL');
  await new Promise((r) => daemon!.once('exit', r));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(spawnSync('ip', ['netns', 'exec', nsA, 'ip', 'link', 'show', `${P}t1`]).status, 1, 'the TAP went with the daemon');
  await startDaemon();
  assert.equal(((await ctlRequest(sock, 'ping')) as { pong: boolean }).pong, true);
  daemon!.kill('SIGTERM');
  await new Promise((r) => daemon!.once('exit', r));
  assert.ok(!existsSync(sock), 'a clean stop removes the socket');
});
