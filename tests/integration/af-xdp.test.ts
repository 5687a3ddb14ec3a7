// AF_XDP ports on real kernels: two network namespaces talk through a wasmap switch daemon
// whose ports are XDP sockets on the host ends of veth pairs, in native and in skb (generic)
// XDP mode: ping both ways, iperf3 TCP, 60-byte UDP frames, ICMP frames byte for byte (pcaps
// on both sides), the switch's counters against the kernel's, detach giving the memory back
// and leaving no XDP program, a vanished interface taking only its port down, and the errors
// a user meets (missing interface, another XDP program, zero-copy on veth, a queue that is not there).
// veth facts this relies on: frames redirected by XDP never get checksums completed or GSO
// segments cut, so the namespace ends send whole checksummed frames (ethtool -K tx off tso
// off gso off); native mode needs nothing else on the peer (the program on the host end
// turns on veth's NAPI rx path; the peer's GSO is switched off by the kernel meanwhile).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { ctlRequest } from '../../src/ctl/client.js';
import { loadHost } from '../../src/host.js';
import { startDaemonProcess } from './daemon-proc.js';
import { prerequisites, sh, inNs, ctlOf } from './net-harness.js';

const tools = ['ip', 'ping', 'iperf3', 'ethtool', 'tcpdump'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
const host = loadHost();
const why = process.getuid?.() !== 0 ? 'needs root (network namespaces, XDP)'
  : !host ? 'native host not built'
  : !('xskOpen' in host) ? 'native host built without AF_XDP (npm run build)'
  : tools.length ? `missing tools: ${tools.join(', ')} (apt-get install iproute2 iputils-ping iperf3 ethtool tcpdump)`
  : !existsSync('/proc/sys/net/core/bpf_jit_enable') && !existsSync('/sys/fs/bpf') ? 'kernel without BPF' : '';
const skip = prerequisites('AF_XDP test', why);

const P = `x${(process.pid % 9000) + 1000}`; // per-run prefix: names stay < 16 chars
const nsA = `${P}A`, nsB = `${P}B`, sock = `/tmp/wasmap-test-${P}.sock`;
let daemon: ChildProcess | null = null;

const ctl = ctlOf(sock);
const v = (n: string) => `${P}${n}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cleanup(): void {
  if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
  for (const ns of [nsA, nsB]) sh(`ip netns del ${ns} 2>/dev/null`, false);
  for (const l of sh(`ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^${P}' || true`, false).split('\n').filter(Boolean)) sh(`ip link del ${l} 2>/dev/null`, false);
  sh(`rm -f ${sock} /tmp/wasmap-test-${P}-*.pcap`, false);
}

/** A veth pair: the host end H (up, no IPv6 so it sends nothing of its own), the other end in
 *  namespace `ns` with `ip`, sending whole checksummed frames. */
function veth(h: string, peer: string, ns: string, ip: string): void {
  sh(`ip link add ${h} type veth peer name ${peer}`);
  sh(`sysctl -qw net.ipv6.conf.${h}.disable_ipv6=1`);
  sh(`ip link set ${h} up`);
  sh(`ip link set ${peer} netns ${ns}`);
  inNs(ns, `ip addr add ${ip}/24 dev ${peer}`);
  inNs(ns, `ethtool -K ${peer} tx off tso off gso off`);
  inNs(ns, `ip link set ${peer} up`);
}

function counts(ns: string | null, dev: string): { rx: number; tx: number; rxDrop: number; txDrop: number } {
  const j = JSON.parse(ns ? inNs(ns, `ip -s -j link show ${dev}`) : sh(`ip -s -j link show ${dev}`)) as { stats64: { rx: { packets: number; dropped: number }; tx: { packets: number; dropped: number } } }[];
  const s = j[0].stats64;
  return { rx: s.rx.packets, tx: s.tx.packets, rxDrop: s.rx.dropped, txDrop: s.tx.dropped };
}

interface PortStat { name: string; rxPackets: number; txPackets: number; dropFull: number; dropNoDst: number; kernelRx: number; kernelTx: number; kernelDrops: number; down: string | null; xdpMode: string; [k: string]: unknown }
async function portStats(): Promise<Map<string, PortStat>> {
  const s = (await ctl('stats')) as { ports: PortStat[] }[];
  return new Map(s[0].ports.map((p) => [p.name, p]));
}
const allocated = async () => ((await ctl('memory')) as { allocated: number }).allocated;

/** The frames of a pcap file (link type Ethernet), as byte strings. */
function pcapFrames(file: string): Buffer[] {
  const b = readFileSync(file), out: Buffer[] = [];
  for (let at = 24; at + 16 <= b.length;) {
    const cap = b.readUInt32LE(at + 8);
    out.push(b.subarray(at + 16, at + 16 + cap));
    at += 16 + cap;
  }
  return out;
}

before(async () => {
  if (skip) return;
  cleanup();
  sh(`ip netns add ${nsA}`); sh(`ip netns add ${nsB}`);
  for (const n of [nsA, nsB]) inNs(n, 'sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1');
  for (const n of [nsA, nsB]) inNs(n, 'ip link set lo up');
  daemon = await startDaemonProcess(['vale0', '--socket', sock]);
});
after(() => { if (!skip) cleanup(); });

for (const [mode, net] of [['native', 96], ['skb', 97]] as const) {
  test(`AF_XDP ports (${mode} XDP) on veth: ping, TCP, 60-byte UDP, frames byte for byte, counters = the kernel's, detach leaves nothing`, { skip, timeout: 120000 }, async () => {
    const a0 = v(`${mode[0]}a0`), a1 = v(`${mode[0]}a1`), b0 = v(`${mode[0]}b0`), b1 = v(`${mode[0]}b1`);
    const ipA = `10.${net}.0.1`, ipB = `10.${net}.0.2`;
    veth(a0, a1, nsA, ipA); veth(b0, b1, nsB, ipB);
    const mem0 = await allocated();
    const ra = (await ctl('attach', { port: `af_xdp:${a0}`, xdpMode: mode })) as { kind: string; xdpMode: string; queues: number[]; zeroCopy: boolean };
    await ctl('attach', { port: `af_xdp:${b0}`, xdpMode: mode });
    assert.equal(ra.kind, 'af_xdp'); assert.equal(ra.xdpMode, mode); assert.deepEqual(ra.queues, [0]); assert.equal(ra.zeroCopy, false);
    assert.ok(await allocated() > mem0, 'the UMEM and rings are spans of the memory');
    // our program, in the mode asked ('xdp' native, 'xdpgeneric' skb)
    assert.match(sh(`ip -d link show ${a0}`), mode === 'native' ? /\sxdp\s[\s\S]*wasmap_xsk/ : /xdpgeneric[\s\S]*wasmap_xsk/);

    assert.match(inNs(nsA, `ping -c 4 -i 0.2 -W 2 ${ipB}`), /4 received/);
    assert.match(inNs(nsB, `ping -c 4 -i 0.2 -W 2 ${ipA}`), /4 received/);

    // byte for byte: what leaves A's namespace end is what B's end receives (static
    // neighbours, so only our ICMP crosses while the captures run)
    const mac = (n: string, d: string) => (JSON.parse(inNs(n, `ip -j link show ${d}`)) as { address: string }[])[0].address;
    inNs(nsA, `ip neigh replace ${ipB} lladdr ${mac(nsB, b1)} dev ${a1} nud permanent`);
    inNs(nsB, `ip neigh replace ${ipA} lladdr ${mac(nsA, a1)} dev ${b1} nud permanent`);
    const fa = `/tmp/wasmap-test-${P}-${mode}-a.pcap`, fb = `/tmp/wasmap-test-${P}-${mode}-b.pcap`;
    const dumps = [[nsA, a1, fa, 'out'], [nsB, b1, fb, 'in']].map(([n, d, f, dir]) =>
      spawn('ip', ['netns', 'exec', n, 'tcpdump', '-i', d, '-Q', dir, '-U', '-c', '8', '-w', f, 'icmp[icmptype] = icmp-echo'], { stdio: 'ignore' }));
    await sleep(700);
    inNs(nsA, `ping -c 8 -i 0.05 -s 1400 -p a5c3 -W 2 ${ipB}`);
    await Promise.all(dumps.map((d) => new Promise((r) => { if (d.exitCode !== null) r(0); d.once('exit', r); setTimeout(() => { d.kill(); r(0); }, 3000); })));
    const sent = pcapFrames(fa), got = pcapFrames(fb);
    assert.equal(sent.length, 8, 'tcpdump saw the 8 echo requests leave');
    assert.equal(got.length, 8, 'and arrive');
    for (let i = 0; i < 8; i++) assert.ok(sent[i].equals(got[i]), `frame ${i} crossed byte for byte (${sent[i].length} bytes)`);
    rmSync(fa, { force: true }); rmSync(fb, { force: true });

    // counters over a window of traffic: TCP, then 60-byte UDP frames (18-byte payload)
    const k0 = { a1: counts(nsA, a1), b1: counts(nsB, b1) }, s0 = await portStats();
    inNs(nsB, 'iperf3 -s -1 -D -p 5311');
    await sleep(300);
    const tcp = JSON.parse(inNs(nsA, `iperf3 -c ${ipB} -p 5311 -t 3 -J`)) as { end: { sum_received: { bits_per_second: number } } };
    console.log(`# AF_XDP ${mode}: TCP ${(tcp.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gbit/s`);
    assert.ok(tcp.end.sum_received.bits_per_second > 50e6, 'TCP moves');
    inNs(nsB, 'iperf3 -s -1 -D -p 5312');
    await sleep(300);
    const udp = JSON.parse(inNs(nsA, `iperf3 -c ${ipB} -p 5312 -u -l 18 -b 50M -t 2 -J`)) as { end: { sum: { packets: number; lost_packets: number } } };
    assert.ok(udp.end.sum.packets > 10000, `${udp.end.sum.packets} 60-byte frames sent`);
    await sleep(500);
    const k1 = { a1: counts(nsA, a1), b1: counts(nsB, b1) }, s1 = await portStats();
    const d = (p: string, f: string) => Number(s1.get(p)![f]) - Number(s0.get(p)![f]);
    for (const [port, peer] of [[a0, 'a1'], [b0, 'b1']] as const) {
      const ns = peer === 'a1' ? nsA : nsB;
      const kt = k1[peer].tx - k0[peer].tx, kr = k1[peer].rx - k0[peer].rx;
      const hostEnd = counts(null, port);
      assert.equal(hostEnd.txDrop, 0, `${port}: the kernel dropped nothing we sent`);
      // every frame the namespace end sent reached the port or is in its drop counters (frames
      // veth itself dropped, its ring to the host end full, are the peer's tx_dropped and never
      // counted in its tx packets: they never reached the host end)
      const rxDrops = d(port, 'drop_rxBadDesc') + d(port, 'drop_rxTooBig') + d(port, 'drop_kernelRxDropped') + d(port, 'drop_kernelRxRingFull') + d(port, 'drop_kernelRxInvalid');
      assert.equal(d(port, 'kernelRx') + rxDrops, kt, `${port}: frames taken + counted drops = frames ${peer} sent (${ns}; ${k1[peer].txDrop - k0[peer].txDrop} more dropped by veth before the host end)`);
      // every frame the port handed to the kernel reached the namespace end
      assert.equal(d(port, 'kernelTx') - d(port, 'drop_kernelTxInvalid'), kr, `${port}: frames sent = frames ${peer} received`);
      assert.equal(d(port, 'kernelRx'), d(port, 'txPackets'), `${port}: what the socket took is what the port sent into the switch`);
      assert.equal(d(port, 'kernelTx') + d(port, 'drop_txTooBig'), d(port, 'rxPackets'), `${port}: what the switch delivered went to the socket`);
    }
    const sent1 = d(a0, 'txPackets') + d(b0, 'txPackets');
    const recv1 = d(a0, 'rxPackets') + d(b0, 'rxPackets') + d(a0, 'dropFull') + d(b0, 'dropFull') + d(a0, 'dropNoDst') + d(b0, 'dropNoDst');
    assert.equal(sent1, recv1, 'switch: sent = received + drops');
    for (const p of [a0, b0]) assert.equal(s1.get(p)!.down, null);

    // detach: the program is gone, and the memory is what it was
    await ctl('detach', { port: `af_xdp:${a0}` });
    await ctl('detach', { port: b0 });
    for (const h of [a0, b0]) assert.doesNotMatch(sh(`ip -d link show ${h}`), /xdp/, `${h}: no XDP program left`);
    assert.equal(await allocated(), mem0, 'dp.allocated is back where it was');
    sh(`ip link del ${a0}`); sh(`ip link del ${b0}`);
  });
}

test('AF_XDP: an interface that vanishes takes only its port down; the program and the UMEM go with it', { skip, timeout: 60000 }, async () => {
  const a0 = v('va0'), b0 = v('vb0'), c0 = v('vc0');
  veth(a0, v('va1'), nsA, '10.98.0.1'); veth(b0, v('vb1'), nsB, '10.98.0.2'); veth(c0, v('vc1'), nsB, '10.98.0.3');
  const mem0 = await allocated();
  for (const h of [a0, b0, c0]) await ctl('attach', { port: `af_xdp:${h}` });
  const withC = await allocated();
  assert.match(inNs(nsA, 'ping -c 2 -i 0.2 -W 2 10.98.0.3'), /2 received/);
  sh(`ip link del ${c0}`);
  inNs(nsA, 'ping -c 2 -i 0.2 -W 1 10.98.0.3', false); // toward the vanished one
  await sleep(300);
  const list = (await ctl('list')) as { name: string; down: string | null }[];
  const c = list.find((p) => p.name === `vale0:${c0}`);
  assert.ok(c?.down, `port reported down: ${JSON.stringify(c)}`);
  assert.match(c!.down!, /ENETDOWN|ENXIO|ENODEV|gone/);
  assert.ok(await allocated() < withC, 'the vanished port gave its UMEM and rings back at once');
  assert.equal(list.find((p) => p.name === `vale0:${a0}`)!.down, null);
  assert.match(inNs(nsA, 'ping -c 3 -i 0.2 -W 2 10.98.0.2'), /3 received/, 'the other ports still forward');
  await ctl('detach', { port: c0 });
  await ctl('detach', { port: a0 }); await ctl('detach', { port: b0 });
  for (const h of [a0, b0]) assert.doesNotMatch(sh(`ip -d link show ${h}`), /xdp/);
  assert.equal(await allocated(), mem0);
  sh(`ip link del ${a0}`); sh(`ip link del ${b0}`);
});

test('AF_XDP: clear errors, nothing left behind', { skip, timeout: 60000 }, async () => {
  const e0 = v('ea0');
  veth(e0, v('ea1'), nsA, '10.99.0.1');
  const mem0 = await allocated();
  await assert.rejects(ctl('attach', { port: `af_xdp:${v('nothere')}` }), (e: Error & { code?: string }) => e.code === 'ENODEV' && /no interface/.test(e.message));
  await assert.rejects(ctl('attach', { port: `af_xdp:${e0}`, zeroCopy: 'on' }), /zero-copy asked/);
  await assert.rejects(ctl('attach', { port: `af_xdp:${e0}@7` }), /queue 7/);
  await assert.rejects(ctl('attach', { port: `af_xdp:${e0}`, xdpMode: 'fast' }), { code: 'EINVAL' });
  await assert.rejects(ctl('attach', { port: `af_xdp:${e0}@x` }), { code: 'EINVAL' });
  // another program on the interface (xdp-tools' pass-all filter, or any object iproute2 can load)
  const obj = ['/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_alw_all.o', '/usr/lib/bpf/xdpfilt_alw_all.o'].find((f) => existsSync(f));
  if (obj && spawnSync('sh', ['-c', `ip link set dev ${e0} xdpgeneric obj ${obj} sec xdp 2>/dev/null || ip link set dev ${e0} xdpgeneric obj ${obj} 2>/dev/null`]).status === 0) {
    await assert.rejects(ctl('attach', { port: `af_xdp:${e0}` }), (e: Error & { code?: string }) => e.code === 'EBUSY' && /another XDP program/.test(e.message));
    assert.match(sh(`ip -d link show ${e0}`), /xdpgeneric/, 'the other program is left alone');
    sh(`ip link set dev ${e0} xdpgeneric off`);
  } else console.log('# no XDP object to load with iproute2: the "another program" case is not exercised');
  assert.doesNotMatch(sh(`ip -d link show ${e0}`), /xdp/, 'no program of ours left behind');
  assert.equal(await allocated(), mem0, 'no memory left behind');
  const list = (await ctl('list')) as { name: string }[];
  assert.ok(!list.some((p) => p.name.includes(e0)), 'no port left behind');
  sh(`ip link del ${e0}`);
});

test('AF_XDP: a daemon killed with SIGKILL leaves no XDP program behind (the bpf_link dies with its fd)', { skip, timeout: 60000 }, async () => {
  const k0 = v('ka0'), sock2 = `/tmp/wasmap-test-${P}-k.sock`;
  veth(k0, v('ka1'), nsA, '10.99.1.1');
  const d2 = await startDaemonProcess(['vale0', '--socket', sock2]);
  try {
    await ctlRequest(sock2, 'attach', { switch: 'vale0', port: `af_xdp:${k0}`, xdpMode: 'native' });
    assert.match(sh(`ip -d link show ${k0}`), /wasmap_xsk/);
    d2.kill('SIGKILL');
    await new Promise((r) => { if (d2.exitCode !== null || d2.signalCode !== null) r(0); else d2.once('exit', r); });
    let left = '';
    for (let i = 0; i < 50; i++) { left = sh(`ip -d link show ${k0}`); if (!/xdp/.test(left)) break; await sleep(100); }
    assert.doesNotMatch(left, /xdp/, 'the program went with the process');
  } finally {
    if (d2.exitCode === null && d2.signalCode === null) d2.kill('SIGKILL');
    sh(`rm -f ${sock2}`, false);
    sh(`ip link del ${k0}`, false);
  }
});
