// AF_PACKET ports with the virtio-net header (#16 items 3, 5): real kernels on both sides, veth
// pairs whose namespace ends keep their DEFAULT offloads (TSO, GSO, checksum offload on), as a
// new user's would. Before the header, TCP through such a port carried 0 Gbit/s: GSO frames were
// cut by the 2 KiB ring frames and frames with partial checksums (TP_STATUS_CSUMNOTREADY)
// crossed uncompleted (the receiver counted InCsumErrors). Now: the header by default (TSO frames
// cross whole), `--vnet-hdr 0` gets plain frames (checksums completed, GSO segmented in wasm),
// and a frame too big for a ring frame is counted, never delivered cut.
// Everything is named with a per-run prefix and removed afterwards, also when a test fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadHost } from '../../src/host.js';
import { startDaemonProcess } from './daemon-proc.js';
import { prerequisites, sh, inNs, ctlOf, removeByPrefix } from './net-harness.js';

const tools = ['ip', 'ping', 'iperf3', 'nstat', 'timeout'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
const why = process.getuid?.() !== 0 ? 'needs root (network namespaces, veth, TAP)' : !existsSync('/dev/net/tun') ? 'no /dev/net/tun'
  : !loadHost() ? 'native host not built' : tools.length ? `missing tools: ${tools.join(', ')} (apt-get install iproute2 iputils-ping iperf3 coreutils)` : '';
const skip = prerequisites('network test', why);

const P = `v${(process.pid % 9000) + 1000}`; // per-run prefix, short: names stay < 16 chars
const sock = `/tmp/wasmap-test-${P}.sock`;
let daemon: ChildProcess | null = null;
const servers: ChildProcess[] = [];

const ctl = ctlOf(sock);

function cleanup(): void {
  for (const s of servers) if (s.exitCode === null) s.kill('SIGKILL');
  if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
  removeByPrefix(P);
  sh(`rm -f ${sock}`, false);
}

before(async () => {
  if (skip) return;
  cleanup();
  daemon = await startDaemonProcess(['vale0', '--socket', sock]);
});
after(() => { if (!skip) cleanup(); });

/** A namespace `${P}${tag}` holding `dev` (moved in) with address ip/24; IPv6 off unless asked. */
function ns(tag: string, dev: string, ip: string, v6?: string): string {
  const name = `${P}${tag}`;
  sh(`ip netns add ${name}`);
  inNs(name, `sysctl -qw net.ipv6.conf.all.disable_ipv6=${v6 ? 0 : 1} net.ipv6.conf.default.disable_ipv6=${v6 ? 0 : 1}`);
  sh(`ip link set ${dev} netns ${name}`);
  inNs(name, `ip addr add ${ip}/24 dev ${dev}`);
  if (v6) inNs(name, `ip addr add ${v6}/64 dev ${dev} nodad`);
  inNs(name, `ip link set ${dev} up`);
  inNs(name, 'ip link set lo up');
  return name;
}
/** A veth pair `${P}${tag}0` (ours, up, no IPv6 chatter) / `${P}${tag}1` (for a namespace). DEFAULT offloads. */
function veth(tag: string): [string, string] {
  const a = `${P}${tag}0`, b = `${P}${tag}1`;
  sh(`ip link add ${a} type veth peer name ${b}`);
  sh(`sysctl -qw net.ipv6.conf.${a}.disable_ipv6=1`);
  sh(`ip link set ${a} up`);
  return [a, b];
}
const csumErrors = (n: string) => {
  const t = inNs(n, 'nstat -az TcpInCsumErrors UdpInCsumErrors', false);
  const c = (k: string) => Number(new RegExp(`${k}\\s+(\\d+)`).exec(t)?.[1] ?? 0);
  return { tcp: c('TcpInCsumErrors'), udp: c('UdpInCsumErrors') };
};
async function server(n: string, port: number): Promise<ChildProcess> {
  // `ip netns exec` execs iperf3 itself (same pid): killing this process at cleanup ends it
  const s = spawn('ip', ['netns', 'exec', n, 'iperf3', '-s', '-1', '-p', String(port)], { stdio: 'ignore' });
  servers.push(s);
  await new Promise((r) => setTimeout(r, 300));
  return s;
}
/** iperf3 TCP from namespace `from` to `to`:port for `secs`, Gbit/s received. */
async function tcp(from: string, to: string, addr: string, port: number, secs = 3): Promise<number> {
  await server(to, port);
  const j = JSON.parse(inNs(from, `iperf3 -c ${addr} -p ${port} -t ${secs} -J`)) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e9;
}
interface PortStat { name: string; txPackets: number; rxPackets: number; txBytes: number; kernelRx: number; kernelTx: number; kernelDrops: number; dropFull: number; dropHdr: number; down: string | null }
async function stats(): Promise<{ segExtra: number; ports: Map<string, PortStat> }> {
  const s = (await ctl('stats')) as { segExtra: number; ports: PortStat[] }[];
  return { segExtra: s[0].segExtra, ports: new Map(s[0].ports.map((p) => [p.name, p])) };
}
const attach = async (args: Record<string, unknown>) => ((await ctl('attach', args)) as { vnetHdr: number }).vnetHdr;
const kernelRx = (dev: string) => (JSON.parse(sh(`ip -s -j link show ${dev}`)) as { stats64: { rx: { packets: number } } }[])[0].stats64.rx.packets;

test('af_packet <-> af_packet with the vnet header (the default), peers with default offloads: TSO frames cross whole both ways, no checksum errors', { skip, timeout: 90000 }, async () => {
  const [a0, a1] = veth('a'), [b0, b1] = veth('b');
  assert.equal(await attach({ port: `af_packet:${a0}` }), 12, 'AF_PACKET ports carry a 12-byte header when not told');
  await ctl('attach', { port: `af_packet:${b0}` });
  const A = ns('A', a1, '10.95.1.1'), B = ns('B', b1, '10.95.1.2');
  try {
    assert.match(inNs(A, 'ping -c 3 -i 0.2 -W 2 10.95.1.2'), /3 received/);
    const e0 = [csumErrors(A), csumErrors(B)];
    const seg0 = (await stats()).segExtra;
    const ab = await tcp(A, B, '10.95.1.2', 5311), ba = await tcp(B, A, '10.95.1.1', 5312);
    console.log(`# af_packet+vnet TCP: A->B ${ab.toFixed(2)} Gbit/s, B->A ${ba.toFixed(2)} Gbit/s`);
    assert.ok(ab > 1 && ba > 1, `TCP moved at ${ab.toFixed(2)} / ${ba.toFixed(2)} Gbit/s (before the header: 0)`);
    const e1 = [csumErrors(A), csumErrors(B)];
    assert.deepEqual(e1, e0, 'no TCP/UDP checksum errors in either namespace');
    const s = await stats();
    const pa = s.ports.get(a0)!, pb = s.ports.get(b0)!;
    assert.equal(s.segExtra, seg0, 'nothing segmented: both ports take TSO frames');
    assert.ok(pa.txBytes / pa.txPackets > 3000, `frames larger than the MTU crossed whole (mean ${Math.round(pa.txBytes / pa.txPackets)} bytes)`);
    assert.equal(pa.txPackets + pb.txPackets, pa.rxPackets + pb.rxPackets + pa.dropFull + pb.dropFull, 'sent = received + drops');
    assert.equal(pa.dropHdr + pb.dropHdr, 0);
  } finally {
    await ctl('detach', { port: a0 }); await ctl('detach', { port: b0 });
  }
});

test('TAP (--vnet-hdr 12) <-> af_packet (default) both ways, peers with default offloads: no conversion, no checksum errors', { skip, timeout: 90000 }, async () => {
  const t = `${P}t`, [c0, c1] = veth('c');
  await ctl('attach', { port: `tap:${t}`, vnetHdr: 12 });
  await ctl('attach', { port: `af_packet:${c0}` });
  const A = ns('C', t, '10.95.2.1'), B = ns('D', c1, '10.95.2.2');
  try {
    assert.match(inNs(A, 'ping -c 3 -i 0.2 -W 2 10.95.2.2'), /3 received/);
    const e0 = [csumErrors(A), csumErrors(B)];
    const seg0 = (await stats()).segExtra;
    const ab = await tcp(A, B, '10.95.2.2', 5313), ba = await tcp(B, A, '10.95.2.1', 5314);
    console.log(`# TAP(12) <-> af_packet(default) TCP: ${ab.toFixed(2)} / ${ba.toFixed(2)} Gbit/s`);
    assert.ok(ab > 1 && ba > 1, `TCP moved at ${ab.toFixed(2)} / ${ba.toFixed(2)} Gbit/s (issue #16: 0.0 and InCsumErrors)`);
    assert.deepEqual([csumErrors(A), csumErrors(B)], e0, 'no TCP/UDP checksum errors in either namespace');
    const s = await stats();
    assert.equal(s.segExtra, seg0, 'nothing segmented: TSO frames crossed whole');
    const pt = s.ports.get(t)!, pc = s.ports.get(c0)!;
    assert.equal(pt.txPackets + pc.txPackets, pt.rxPackets + pc.rxPackets + pt.dropFull + pc.dropFull, 'sent = received + drops');
  } finally {
    await ctl('detach', { port: t }); await ctl('detach', { port: c0 });
  }
});

test('af_packet --vnet-hdr 0 with default-offload peers: partial checksums completed and GSO segmented in wasm, TCP and UDP work, no checksum errors', { skip, timeout: 90000 }, async () => {
  const [e0d, e1d] = veth('e'), [f0, f1] = veth('f');
  assert.equal(await attach({ port: `af_packet:${e0d}`, vnetHdr: 0 }), 0);
  await ctl('attach', { port: `af_packet:${f0}`, vnetHdr: 0 });
  const A = ns('E', e1d, '10.95.3.1'), B = ns('F', f1, '10.95.3.2');
  try {
    assert.match(inNs(A, 'ping -c 3 -i 0.2 -W 2 10.95.3.2'), /3 received/);
    const e0 = [csumErrors(A), csumErrors(B)];
    const ab = await tcp(A, B, '10.95.3.2', 5315), ba = await tcp(B, A, '10.95.3.1', 5316);
    console.log(`# af_packet --vnet-hdr 0 TCP: ${ab.toFixed(2)} / ${ba.toFixed(2)} Gbit/s`);
    assert.ok(ab > 0.1 && ba > 0.1, `TCP moved at ${ab.toFixed(2)} / ${ba.toFixed(2)} Gbit/s`);
    // small UDP datagrams: checksum offload on the sender, partial checksums on every one
    await server(B, 5317);
    const udp = JSON.parse(inNs(A, 'iperf3 -c 10.95.3.2 -p 5317 -u -l 200 -b 10M -t 1 -J')) as { end: { sum: { packets: number; lost_packets: number } } };
    assert.ok(udp.end.sum.packets - udp.end.sum.lost_packets > 1000, `UDP datagrams arrived: ${JSON.stringify(udp.end.sum)}`);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual([csumErrors(A), csumErrors(B)], e0, 'no TCP/UDP checksum errors in either namespace');
    const s = await stats();
    const pe = s.ports.get(e0d)!, pf = s.ports.get(f0)!;
    assert.ok(pe.txPackets > pe.kernelRx, `GSO frames were segmented: ${pe.kernelRx} frames taken, ${pe.txPackets} sent into the switch`);
    assert.ok(pe.txBytes / pe.txPackets <= 1514, 'plain frames only');
    assert.equal(pe.dropHdr + pf.dropHdr, 0);
    assert.equal(pe.kernelDrops + pf.kernelDrops, 0, 'nothing refused');
  } finally {
    await ctl('detach', { port: e0d }); await ctl('detach', { port: f0 });
  }
});

test('a frame too big for a ring frame (IPv6 BIG TCP, 192 KiB GSO) is counted, never delivered cut: the kernel\'s count = taken + counted', { skip, timeout: 60000 }, async (t) => {
  const [g0, g1] = veth('g'), [h0, h1] = veth('h');
  await ctl('attach', { port: `af_packet:${g0}` });
  await ctl('attach', { port: `af_packet:${h0}` });
  const A = ns('G', g1, '10.95.4.1', 'fd95::1'), B = ns('H', h1, '10.95.4.2', 'fd95::2');
  try {
    inNs(A, `ip link set dev ${g1} gso_max_size 196608`, false); // BIG TCP: GSO frames past 64 KiB
    if (!/gso_max_size 196608/.test(inNs(A, `ip -d link show ${g1}`))) { t.skip('this kernel has no BIG TCP (Linux >= 5.19): no GSO frame past 64 KiB to make'); return; }
    assert.match(inNs(A, 'ping -6 -c 2 -i 0.2 -W 2 fd95::2'), /2 received/);
    await server(B, 5318);
    inNs(A, 'timeout 8 iperf3 -6 -c fd95::2 -p 5318 -t 2', false); // stalls: its big frames never arrive
    await new Promise((r) => setTimeout(r, 300));
    const s = await stats();
    const pg = s.ports.get(g0)!, ph = s.ports.get(h0)!;
    assert.ok(pg.kernelDrops > 0, `frames too big were counted: ${pg.kernelDrops}`);
    assert.equal(kernelRx(g0), pg.kernelRx + pg.kernelDrops, 'every frame the interface received was taken or counted');
    assert.equal(pg.txPackets + ph.txPackets, pg.rxPackets + ph.rxPackets + pg.dropFull + ph.dropFull, 'sent = received + drops');
  } finally {
    await ctl('detach', { port: g0 }); await ctl('detach', { port: h0 });
  }
});
