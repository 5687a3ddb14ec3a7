// VXLAN and Geneve tunnel ports against the real Linux drivers and between two wasmap hosts
// (#18). "Hosts" are namespaces on one underlay bridge (namespace ${P}u, 10.99.0.0/24 and
// fd99::/64):
//   A  wasmap daemon, switches vale0 (VNI 42) and vale1 (VNI 43): one UDP socket, two VNIs;
//      TAP ports to inner namespaces a (192.168.50.1) and a2 (192.168.50.11)
//   B  Linux: vxlan devices id 42 and 43 in two bridges, inner b (.2) and b2 (.12); when the
//      kernel has the geneve driver, geneve devices id 42 (IPv4) and 77 (IPv6) in two more,
//      inner bg (60.2), bg6 (61.2)
//   C  wasmap daemon, VNI 42 on vale0, inner c (.3): wasmap to wasmap, and the third host for
//      flooding; Geneve VNI 42 (IPv4) and 77 (IPv6) on vale1/vale2 to G, inner cg, cg6 (.3)
//   G  wasmap daemon with Geneve ports: VNI 42 over IPv4 (inner g, 60.1), VNI 77 over IPv6
//      (inner g6, 61.1); remotes B and C; VXLAN VNI 88 over IPv6 with B (inner a6 / b6, 62.x)
// Inner MTUs are the underlay's 1500 minus the encapsulation (50 over IPv4, 70 over IPv6).
// Everything is named with a per-run prefix and removed afterwards, also when a test fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadHost } from '../../src/host.js';
import { startDaemonProcess } from './daemon-proc.js';
import { prerequisites, sh, inNs } from './net-harness.js';
import { ctlRequest } from '../../src/ctl/client.js';

const tools = ['ip', 'ping', 'iperf3', 'tcpdump', 'bridge', 'ethtool', 'timeout'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
const why = process.getuid?.() !== 0 ? 'needs root (network namespaces, veth, TAP, vxlan)' : !existsSync('/dev/net/tun') ? 'no /dev/net/tun'
  : !loadHost() ? 'native host not built' : tools.length ? `missing tools: ${tools.join(', ')} (apt-get install iproute2 iputils-ping iperf3 tcpdump ethtool coreutils)`
  : spawnSync('sh', ['-c', 'ip link add wmvxprobe type vxlan id 1 dstport 4789 && ip link del wmvxprobe']).status !== 0 ? 'the kernel has no vxlan driver' : '';
const skip = prerequisites('tunnel test', why);
// this machine's kernel (6.18, no modules) has no geneve driver: the Linux Geneve test says so
const noGeneve = skip ? skip : spawnSync('sh', ['-c', 'ip link add wmgnprobe type geneve id 1 remote 10.1.1.1 && ip link del wmgnprobe']).status !== 0 ? 'the kernel has no geneve driver (modprobe geneve)' : false;

const P = `x${(process.pid % 9000) + 1000}`;
const daemons: ChildProcess[] = [];
const procs: ChildProcess[] = [];
const sockOf = (h: string) => `/tmp/wasmap-test-${P}${h}.sock`;
const ctl = (h: string, verb: string, args: Record<string, unknown> = {}) => ctlRequest(sockOf(h), verb, { switch: 'vale0', ...args });
const nsName = (t: string) => `${P}${t}`;

function cleanup(): void {
  for (const p of [...procs, ...daemons]) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const n of sh(`ip netns list 2>/dev/null | awk '{print $1}' | grep '^${P}' || true`, false).split('\n').filter(Boolean)) sh(`ip netns del ${n} 2>/dev/null`, false);
  for (const l of sh(`ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^${P}' || true`, false).split('\n').filter(Boolean)) sh(`ip link del ${l} 2>/dev/null`, false);
  sh(`rm -f /tmp/wasmap-test-${P}*.sock`, false);
}

function netns(name: string): void {
  sh(`ip netns add ${name}`);
  inNs(name, 'ip link set lo up');
  inNs(name, 'sysctl -qw net.ipv4.conf.all.arp_ignore=1');
}
/** Host `h` on the underlay: 10.99.0.N, fd99::N. */
function host(h: string, n: number): string {
  const ns = nsName(h), a = `${P}u${h}`, b = `${P}${h}u`;
  netns(ns);
  sh(`ip link add ${a} type veth peer name ${b}`);
  sh(`ip link set ${a} netns ${nsName('u')}`);
  inNs(nsName('u'), `ip link set ${a} master ub up`);
  sh(`ip link set ${b} netns ${ns}`);
  inNs(ns, `ip addr add 10.99.0.${n}/24 dev ${b}`);
  inNs(ns, `ip addr add fd99::${n}/64 dev ${b} nodad`);
  inNs(ns, `ip link set ${b} up`);
  return ns;
}
/** An inner namespace `${P}tag` with `dev` moved in from namespace `from`, address ip/24, MTU. */
function inner(tag: string, from: string, dev: string, ip: string, mtu: number): string {
  const ns = nsName(tag);
  netns(ns);
  // no IPv6 chatter (router solicitations are multicast: flooded, and seen on the underlay)
  inNs(ns, 'sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1');
  inNs(from, `ip link set ${dev} netns ${ns}`);
  inNs(ns, `ip link set ${dev} mtu ${mtu}`);
  inNs(ns, `ip addr add ${ip}/24 dev ${dev}`);
  inNs(ns, `ip link set ${dev} up`);
  return ns;
}
/** Linux host B: a tunnel device in a bridge with a veth to a new inner namespace. */
function linuxSide(dev: string, link: string, br: string, tag: string, ip: string, mtu: number): void {
  const B = nsName('B');
  inNs(B, 'sysctl -qw net.ipv6.conf.default.disable_ipv6=1');
  inNs(B, `ip link add ${dev} ${link}`);
  inNs(B, `ip link add ${br} type bridge`);
  inNs(B, `ip link set ${dev} master ${br} up`);
  inNs(B, `ip link set ${br} up`);
  inNs(B, `ip link add ${tag}x type veth peer name ${tag}i`);
  inNs(B, `ip link set ${tag}x master ${br} up`);
  inner(tag, B, `${tag}i`, ip, mtu);
}
async function wasmapHost(h: string, switches: string[]): Promise<void> {
  daemons.push(await startDaemonProcess([...switches, '--socket', sockOf(h)], { netns: nsName(h) }));
}
/** A TAP port of `h`'s switch `sw`, moved to a new inner namespace. */
async function tapInner(h: string, sw: string, tap: string, tag: string, ip: string, mtu: number): Promise<void> {
  await ctl(h, 'attach', { switch: sw, port: `tap:${tap}` });
  inner(tag, nsName(h), tap, ip, mtu);
}
const ping = (from: string, to: string, n = 3) => inNs(nsName(from), `ping -c ${n} -i 0.2 -W 2 ${to}`, false);
const pingOk = (from: string, to: string, n = 3) => { const out = ping(from, to, n); assert.match(out, new RegExp(`${n} received`), `ping ${from} -> ${to}:\n${out}`); };
const pingFails = (from: string, to: string) => { const out = ping(from, to, 2); assert.match(out, / 0 received|100% packet loss/, `ping ${from} -> ${to} must not get through:\n${out}`); };

async function iperf(from: string, to: string, addr: string, port: number, secs = 2): Promise<number> {
  const s = spawn('ip', ['netns', 'exec', nsName(to), 'iperf3', '-s', '-1', '-p', String(port)], { stdio: 'ignore' });
  procs.push(s);
  await new Promise((r) => setTimeout(r, 400));
  const j = JSON.parse(inNs(nsName(from), `iperf3 -c ${addr} -p ${port} -t ${secs} -J`)) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e9;
}

type TunnelStats = { name: string; kind: string; vni: number; learned: number; tunnel: { rxFrames: number; txFrames: number; txDatagrams: number; flooded: number; drops: Record<string, number>; socket: { datagrams: number; drops: Record<string, number> } } };
async function tstats(h: string, sw: string, port: string): Promise<TunnelStats> {
  const s = await ctl(h, 'stats', { switch: sw }) as { ports: TunnelStats[] }[];
  const p = s[0].ports.find((x) => x.name === port);
  assert.ok(p, `${h} ${sw}:${port} in stats`);
  return p;
}

before(async () => {
  if (skip) return;
  cleanup();
  netns(nsName('u'));
  inNs(nsName('u'), 'ip link add ub type bridge');
  inNs(nsName('u'), 'ip link set ub up');
  inNs(nsName('u'), 'sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1');
  for (const [h, n] of [['A', 1], ['B', 2], ['C', 3], ['G', 4]] as const) host(h, n);
  // Linux's tunnels hand an inner TCP checksum to the underlay device to fill in (checksum
  // offload); a veth never fills it and a local UDP socket (ours) takes the packet as it is, so
  // B's underlay end computes checksums in software, as a NIC would have done them in hardware
  inNs(nsName('B'), `ethtool -K ${P}Bu tx off`);
  // A: two switches, one socket, VNIs 42 and 43 (the remote list of 42 grows in a test below)
  await wasmapHost('A', ['vale0', 'vale1']);
  await tapInner('A', 'vale0', `${P}ta`, 'a', '192.168.50.1', 1450);
  await tapInner('A', 'vale1', `${P}tb`, 'a2', '192.168.50.11', 1450);
  await ctl('A', 'attach', { port: 'vxlan:10.99.0.1', vni: 42, remote: ['10.99.0.2'] });
  await ctl('A', 'attach', { switch: 'vale1', port: 'vxlan:10.99.0.1', vni: 43, remote: ['10.99.0.2'] });
  // B: Linux vxlan (learning, head-end replication through the all-zeros fdb entries) and geneve
  linuxSide('vx42', 'type vxlan id 42 local 10.99.0.2 dstport 4789', 'br42', 'b', '192.168.50.2', 1450);
  linuxSide('vx43', 'type vxlan id 43 local 10.99.0.2 dstport 4789', 'br43', 'b2', '192.168.50.12', 1450);
  inNs(nsName('B'), 'bridge fdb append 00:00:00:00:00:00 dev vx42 dst 10.99.0.1');
  inNs(nsName('B'), 'bridge fdb append 00:00:00:00:00:00 dev vx43 dst 10.99.0.1');
  linuxSide('vx88', 'type vxlan id 88 local fd99::2 remote fd99::4 dstport 4789', 'br88', 'b6', '192.168.62.2', 1430);
  if (!noGeneve) {
    linuxSide('gn42', 'type geneve id 42 remote 10.99.0.4', 'brg', 'bg', '192.168.60.2', 1450);
    linuxSide('gn77', 'type geneve id 77 remote fd99::4', 'brg6', 'bg6', '192.168.61.2', 1430);
  }
  // C: wasmap, VXLAN VNI 42 (remotes A and B); Geneve to G over IPv4 and IPv6
  await wasmapHost('C', ['vale0', 'vale1', 'vale2']);
  await tapInner('C', 'vale0', `${P}tc`, 'c', '192.168.50.3', 1450);
  await ctl('C', 'attach', { port: 'vxlan:10.99.0.3', vni: 42, remote: ['10.99.0.1', '10.99.0.2'] });
  await tapInner('C', 'vale1', `${P}td`, 'cg', '192.168.60.3', 1450);
  await tapInner('C', 'vale2', `${P}te`, 'cg6', '192.168.61.3', 1430);
  await ctl('C', 'attach', { switch: 'vale1', port: 'geneve:10.99.0.3', vni: 42, remote: ['10.99.0.4'] });
  await ctl('C', 'attach', { switch: 'vale2', port: 'geneve:[fd99::3]', vni: 77, remote: ['fd99::4'] });
  // G: wasmap with Geneve over IPv4 and IPv6, on two switches
  await wasmapHost('G', ['vale0', 'vale1', 'vale2']);
  await tapInner('G', 'vale0', `${P}tg`, 'g', '192.168.60.1', 1450);
  await tapInner('G', 'vale1', `${P}th`, 'g6', '192.168.61.1', 1430);
  // and VXLAN over IPv6 with Linux B
  await tapInner('G', 'vale2', `${P}ti`, 'a6', '192.168.62.1', 1430);
  await ctl('G', 'attach', { switch: 'vale2', port: 'vxlan:[fd99::4]:4789', vni: 88, remote: ['fd99::2'] });
  await ctl('G', 'attach', { port: 'geneve:10.99.0.4', vni: 42, remote: noGeneve ? ['10.99.0.3'] : ['10.99.0.2', '10.99.0.3'] });
  await ctl('G', 'attach', { switch: 'vale1', port: 'geneve:[fd99::4]', vni: 77, remote: noGeneve ? ['fd99::3'] : ['fd99::2', 'fd99::3'] });
});
after(() => { if (!skip) cleanup(); });

test('VXLAN with Linux: ping both ways, tcpdump on the underlay decodes VNI 42', { skip }, async () => {
  const B = nsName('B');
  const dump = spawn('ip', ['netns', 'exec', B, 'timeout', '8', 'tcpdump', '-nli', `${P}Bu`, '-c', '4', 'udp port 4789'], { stdio: ['ignore', 'pipe', 'ignore'] });
  procs.push(dump);
  let out = '';
  dump.stdout!.on('data', (d) => { out += d; });
  await new Promise((r) => setTimeout(r, 700));
  pingOk('a', '192.168.50.2');
  pingOk('b', '192.168.50.1');
  await new Promise((r) => dump.once('exit', r));
  assert.match(out, /VXLAN, flags \[I\] \(0x08\), vni 42/, `tcpdump output:\n${out}`);
  assert.doesNotMatch(out, /vni (?!42)\d+/);
  const st = await tstats('A', 'vale0', 'vxlan42');
  assert.ok(st.tunnel.rxFrames >= 6 && st.tunnel.txFrames >= 6, JSON.stringify(st.tunnel));
  assert.ok(st.learned >= 1, 'b learned');
});

test('VXLAN with Linux: iperf3 TCP both ways (TSO frames segmented to the inner MTU)', { skip }, async () => {
  const ab = await iperf('a', 'b', '192.168.50.2', 5201);
  const ba = await iperf('b', 'a', '192.168.50.1', 5202);
  console.log(`# vxlan wasmap <-> linux TCP: a->b ${ab.toFixed(2)} Gbit/s, b->a ${ba.toFixed(2)} Gbit/s`);
  assert.ok(ab > 0.05 && ba > 0.05, `a->b ${ab}, b->a ${ba}`);
  const st = await tstats('A', 'vale0', 'vxlan42');
  assert.equal(st.tunnel.drops.badFrame, 0);
  assert.equal(st.tunnel.drops.tooBig, 0);
});

test('VXLAN over IPv6 with Linux: ping and iperf3 both ways, tcpdump decodes VNI 88', { skip }, async () => {
  const dump = spawn('ip', ['netns', 'exec', nsName('B'), 'timeout', '8', 'tcpdump', '-nli', `${P}Bu`, '-c', '2', 'ip6 and udp port 4789'], { stdio: ['ignore', 'pipe', 'ignore'] });
  procs.push(dump);
  let out = '';
  dump.stdout!.on('data', (d) => { out += d; });
  await new Promise((r) => setTimeout(r, 700));
  pingOk('a6', '192.168.62.2');
  await new Promise((r) => dump.once('exit', r));
  assert.match(out, /IP6 fd99::4\.\d+ > fd99::2\.4789: VXLAN, flags \[I\] \(0x08\), vni 88/, `tcpdump output:\n${out}`);
  pingOk('b6', '192.168.62.1');
  const r = [await iperf('a6', 'b6', '192.168.62.2', 5211), await iperf('b6', 'a6', '192.168.62.1', 5212)];
  console.log(`# vxlan/IPv6 wasmap <-> linux TCP: ${r[0].toFixed(2)}/${r[1].toFixed(2)} Gbit/s`);
  for (const v of r) assert.ok(v > 0.05, `${r}`);
  const st = await tstats('G', 'vale2', 'vxlan88');
  assert.equal(st.tunnel.drops.tooBig, 0);
});

test('two VNIs on one socket stay apart', { skip }, async () => {
  pingOk('a2', '192.168.50.12');
  pingFails('a2', '192.168.50.2'); // b is on VNI 42
  pingFails('a', '192.168.50.12'); // b2 is on VNI 43
  const s42 = await tstats('A', 'vale0', 'vxlan42'), s43 = await tstats('A', 'vale1', 'vxlan43');
  assert.ok(s43.tunnel.rxFrames >= 3 && s42.tunnel.rxFrames >= 3);
  assert.equal(s42.tunnel.socket.drops.unknownVni, 0);
});

test('a third host: head-end replication to two remotes, learning stops the flooding; wasmap to wasmap', { skip }, async () => {
  await ctl('A', 'detach', { port: 'vxlan42' });
  await ctl('A', 'attach', { port: 'vxlan:10.99.0.1', vni: 42, remote: ['10.99.0.2', '10.99.0.3'] });
  inNs(nsName('B'), 'bridge fdb append 00:00:00:00:00:00 dev vx42 dst 10.99.0.3');
  const bRx = () => Number(inNs(nsName('B'), 'cat /sys/class/net/vx42/statistics/rx_packets').trim());
  const b0 = bRx();
  pingOk('a', '192.168.50.3'); // a's ARP for c is flooded to B and C
  let st = await tstats('A', 'vale0', 'vxlan42');
  assert.ok(st.tunnel.flooded >= 1, 'the ARP request was flooded');
  assert.ok(st.tunnel.txDatagrams > st.tunnel.txFrames, `flooding sent one datagram per remote: ${JSON.stringify(st.tunnel)}`);
  assert.ok(bRx() > b0, 'B got the flooded broadcast too');
  pingOk('c', '192.168.50.2'); // C to Linux B
  // learned now: unicast frames go to one remote only, nothing more is flooded
  const fdb = await ctl('A', 'fdb', { port: 'vxlan42', op: 'list' }) as { mac: string; remote: string; static: boolean }[];
  assert.ok(fdb.some((e) => e.remote === '10.99.0.3' && !e.static), `c learned behind 10.99.0.3: ${JSON.stringify(fdb)}`);
  pingOk('a', '192.168.50.2', 1); // the re-attached port learns b (its first frame to b floods)
  st = await tstats('A', 'vale0', 'vxlan42');
  const before = st.tunnel.flooded;
  const cBefore = (await tstats('C', 'vale0', 'vxlan42')).tunnel.socket.datagrams;
  pingOk('a', '192.168.50.2', 5);
  st = await tstats('A', 'vale0', 'vxlan42');
  assert.equal(st.tunnel.flooded, before, 'no flooding once both ends are learned');
  assert.equal((await tstats('C', 'vale0', 'vxlan42')).tunnel.socket.datagrams, cBefore, 'C saw nothing of a <-> b');
  const ac = await iperf('a', 'c', '192.168.50.3', 5203);
  const ca = await iperf('c', 'a', '192.168.50.1', 5204);
  console.log(`# vxlan wasmap <-> wasmap TCP: a->c ${ac.toFixed(2)} Gbit/s, c->a ${ca.toFixed(2)} Gbit/s`);
  assert.ok(ac > 0.05 && ca > 0.05, `a->c ${ac}, c->a ${ca}`);
});

test('fdb: a static entry steers frames, survives learning, and is deleted', { skip }, async () => {
  const macB = inNs(nsName('b'), 'cat /sys/class/net/bi/address').trim();
  await ctl('A', 'fdb', { port: 'vxlan42', op: 'add', mac: macB, remote: '10.99.0.3' }); // wrong on purpose: C drops it (no such MAC there)
  pingFails('a', '192.168.50.2');
  let fdb = await ctl('A', 'fdb', { port: 'vxlan42', op: 'list' }) as { mac: string; remote: string; static: boolean }[];
  assert.deepEqual(fdb.find((e) => e.mac === macB), { mac: macB, remote: '10.99.0.3', static: true, ageS: 0 }, 'learning did not overwrite the static entry');
  assert.deepEqual(await ctl('A', 'fdb', { port: 'vxlan42', op: 'del', mac: macB }), { deleted: true });
  pingOk('a', '192.168.50.2');
  fdb = await ctl('A', 'fdb', { port: 'vxlan42', op: 'list' }) as { mac: string; remote: string; static: boolean }[];
  assert.equal(fdb.find((e) => e.mac === macB)?.remote, '10.99.0.2');
  await assert.rejects(ctl('A', 'fdb', { port: 'vxlan42', op: 'add', mac: 'ff:ff:ff:ff:ff:ff', remote: '10.99.0.2' }), /group address/);
  await assert.rejects(ctl('A', 'fdb', { port: 'vxlan42', op: 'add', mac: macB, remote: 'fd99::2' }), /not an IPv4/);
});

test('Geneve between two wasmap hosts over IPv4 and IPv6: ping and iperf3 both ways, tcpdump decodes it', { skip }, async () => {
  const U = nsName('u');
  const dump = spawn('ip', ['netns', 'exec', U, 'timeout', '8', 'tcpdump', '-nvli', 'ub', '-c', '2', 'udp port 6081'], { stdio: ['ignore', 'pipe', 'ignore'] });
  procs.push(dump);
  let out = '';
  dump.stdout!.on('data', (d) => { out += d; });
  await new Promise((r) => setTimeout(r, 700));
  pingOk('g', '192.168.60.3');
  await new Promise((r) => dump.once('exit', r));
  assert.match(out, /Geneve, Flags \[none\], vni 0x2a/i, `tcpdump output:\n${out}`);
  pingOk('cg', '192.168.60.1');
  pingOk('g6', '192.168.61.3');
  pingOk('cg6', '192.168.61.1');
  const r = [await iperf('g', 'cg', '192.168.60.3', 5205), await iperf('cg', 'g', '192.168.60.1', 5206),
    await iperf('g6', 'cg6', '192.168.61.3', 5207), await iperf('cg6', 'g6', '192.168.61.1', 5208)];
  console.log(`# geneve wasmap <-> wasmap TCP: v4 ${r[0].toFixed(2)}/${r[1].toFixed(2)}, v6 ${r[2].toFixed(2)}/${r[3].toFixed(2)} Gbit/s`);
  for (const v of r) assert.ok(v > 0.05, `${r}`);
  const st = await tstats('G', 'vale1', 'geneve77');
  assert.equal(st.kind, 'geneve');
  assert.equal(st.tunnel.drops.tooBig, 0);
});

test("Geneve with Linux's geneve device over IPv4 and IPv6", { skip: noGeneve }, async () => {
  pingOk('g', '192.168.60.2');
  pingOk('bg', '192.168.60.1');
  pingOk('g6', '192.168.61.2');
  pingOk('bg6', '192.168.61.1');
  const r = [await iperf('g', 'bg', '192.168.60.2', 5209), await iperf('bg', 'g', '192.168.60.1', 5210)];
  for (const v of r) assert.ok(v > 0.05, `${r}`);
});
