// AF_PACKET ports without the header (`--vnet-hdr 0`) keep small (2 KiB) ring frames: 64 KiB
// ring frames for every port cost a fifth of their TCP throughput (2.85 → 2.3 Gbit/s, bench
// --netns, 2026-12-05). A frame larger than a ring frame (a GSO frame from a peer with its
// default offloads, a jumbo frame) comes whole through the socket: the kernel marks it
// TP_STATUS_COPY in the ring and queues it (PACKET_COPY_THRESH), the port reads it with recv.
// Real kernels on both sides; every name has a per-run prefix and is removed afterwards, also
// when a test fails. Before the copy path these ports had 69 632-byte ring frames and no
// `copyFrames`/`ringFrameSize` in their stats: every test here fails there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadHost } from '../../src/host.js';
import { startDaemonProcess } from './daemon-proc.js';
import { prerequisites, sh, inNs, ctlOf, removeByPrefix } from './net-harness.js';

const tools = ['ip', 'ping', 'iperf3', 'nstat', 'timeout'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
const why = process.getuid?.() !== 0 ? 'needs root (network namespaces, veth)' : !existsSync('/dev/net/tun') ? 'no /dev/net/tun'
  : !loadHost() ? 'native host not built' : tools.length ? `missing tools: ${tools.join(', ')} (apt-get install iproute2 iputils-ping iperf3 coreutils)` : '';
const skip = prerequisites('network test', why);

const P = `c${(process.pid % 9000) + 1000}`; // per-run prefix, short: names stay < 16 chars
const sock = `/tmp/wasmap-test-${P}.sock`;
let daemon: (ChildProcess & { output: () => string }) | null = null;
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

/** A veth pair `${P}${tag}0` (ours, up) / `${P}${tag}1` in namespace `${P}${tag}` with address ip/24. DEFAULT offloads. */
function pair(tag: string, ip: string, mtu = 1500): string {
  const a = `${P}${tag}0`, b = `${P}${tag}1`, n = `${P}${tag}`;
  sh(`ip link add ${a} mtu ${mtu} type veth peer name ${b} mtu ${mtu}`);
  sh(`sysctl -qw net.ipv6.conf.${a}.disable_ipv6=1`);
  sh(`ip link set ${a} up`);
  sh(`ip netns add ${n}`);
  inNs(n, 'sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1');
  sh(`ip link set ${b} netns ${n}`);
  inNs(n, `ip addr add ${ip}/24 dev ${b}`);
  inNs(n, `ip link set ${b} up`);
  inNs(n, 'ip link set lo up');
  return n;
}
interface PortStat { name: string; txPackets: number; rxPackets: number; txBytes: number; kernelRx: number; kernelDrops: number; dropFull: number; ringOverruns: number; copyFrames: number; ringFrameSize: number }
async function stats(): Promise<Map<string, PortStat>> {
  const s = (await ctl('stats')) as { ports: PortStat[] }[];
  return new Map(s[0].ports.map((p) => [p.name, p]));
}
const kernelRxOf = (dev: string) => (JSON.parse(sh(`ip -s -j link show ${dev}`)) as { stats64: { rx: { packets: number } } }[])[0].stats64.rx.packets;
const csumErrors = (n: string) => {
  const t = inNs(n, 'nstat -az TcpInCsumErrors', false);
  return Number(/TcpInCsumErrors\s+(\d+)/.exec(t)?.[1] ?? 0);
};

test('--vnet-hdr 0, peers with default offloads: small ring frames, 64 KiB GSO frames come whole through the socket (copy path) and are segmented; TCP works both ways; every frame taken or counted', { skip, timeout: 120000 }, async () => {
  const A = pair('a', '10.96.1.1'), B = pair('b', '10.96.1.2');
  const a0 = `${P}a0`, b0 = `${P}b0`;
  await ctl('attach', { port: `af_packet:${a0}`, vnetHdr: 0 });
  await ctl('attach', { port: `af_packet:${b0}`, vnetHdr: 0 });
  try {
    let s = await stats();
    assert.ok(s.get(a0)!.ringFrameSize <= 4096, `small ring frames (${s.get(a0)!.ringFrameSize} bytes)`);
    assert.match(inNs(A, 'ping -c 3 -i 0.2 -W 2 10.96.1.2'), /3 received/);
    const e0 = [csumErrors(A), csumErrors(B)];
    for (const [from, to, addr, port] of [[A, B, '10.96.1.2', 5411], [B, A, '10.96.1.1', 5412]] as const) {
      const srv = spawn('ip', ['netns', 'exec', to, 'iperf3', '-s', '-1', '-p', String(port)], { stdio: 'ignore' });
      servers.push(srv);
      await new Promise((r) => setTimeout(r, 300));
      const j = JSON.parse(inNs(from, `iperf3 -c ${addr} -p ${port} -t 2 -J`)) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
      const g = j.end.sum_received.bits_per_second / 1e9;
      console.log(`# --vnet-hdr 0, GSO peers: ${from} -> ${to} ${g.toFixed(2)} Gbit/s`);
      assert.ok(g > 0.1, `TCP moved: ${g.toFixed(2)} Gbit/s`);
    }
    assert.deepEqual([csumErrors(A), csumErrors(B)], e0, 'no checksum errors: the copies were whole');
    await new Promise((r) => setTimeout(r, 300));
    s = await stats();
    const pa = s.get(a0)!, pb = s.get(b0)!;
    assert.ok(pa.copyFrames > 0 && pb.copyFrames > 0, `GSO frames came by the copy path: ${pa.copyFrames} / ${pb.copyFrames}`);
    assert.ok(pa.txPackets > pa.kernelRx, 'and were segmented');
    assert.ok(pa.txBytes / pa.txPackets <= 1514, 'plain frames only into the switch');
    assert.equal(pa.kernelDrops + pb.kernelDrops, 0, 'nothing refused or overrun');
    for (const [dev, p] of [[a0, pa], [b0, pb]] as const) assert.equal(kernelRxOf(dev), p.kernelRx + p.kernelDrops, `${dev}: every frame the interface received was taken or counted`);
  } finally {
    await ctl('detach', { port: a0 }); await ctl('detach', { port: b0 });
  }
});

test('jumbo frames (MTU 9000) cross intact through a --vnet-hdr 0 port (copy path in, sendmsg out) and a --vnet-hdr 12 port, both ways', { skip, timeout: 60000 }, async () => {
  const C = pair('c', '10.96.2.1', 9000), D = pair('d', '10.96.2.2', 9000);
  const c0 = `${P}c0`, d0 = `${P}d0`;
  await ctl('attach', { port: `af_packet:${c0}`, vnetHdr: 0 });
  await ctl('attach', { port: `af_packet:${d0}`, vnetHdr: 12 });
  try {
    // 8000-byte ICMP payloads, no fragmentation: the replies prove the frames arrived whole
    // (ICMP checks its checksum over all of it); -p fills them with a pattern
    for (const [from, to] of [[C, '10.96.2.2'], [D, '10.96.2.1']] as const)
      assert.match(inNs(from, `ping -c 5 -i 0.2 -W 2 -M do -s 8000 -p a5c3 ${to}`), /5 received/, `jumbo pings from ${from}`);
    const s = await stats();
    const pc = s.get(c0)!, pd = s.get(d0)!;
    assert.ok(pc.ringFrameSize <= 4096);
    assert.ok(pc.copyFrames >= 5, `the 8042-byte frames came into the small ring's port by the copy path: ${pc.copyFrames}`);
    assert.equal(pc.kernelDrops + pd.kernelDrops, 0, 'nothing refused');
    assert.equal(pc.txPackets + pd.txPackets, pc.rxPackets + pd.rxPackets + pc.dropFull + pd.dropFull, 'sent = received + drops');
  } finally {
    await ctl('detach', { port: c0 }); await ctl('detach', { port: d0 });
  }
});
