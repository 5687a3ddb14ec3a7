// Tunnel ports against Open vSwitch's userspace datapath (#18): Geneve (this kernel has no
// geneve driver, so OVS is the other Geneve implementation we can meet) and VXLAN. Namespaces:
//   A  a wasmap daemon (--poll sleep): switch vale0 with a TAP port to inner namespace a
//      (192.168.70.1) and a geneve port VNI 42; vale1 with a TAP to a2 (192.168.71.1) and a
//      vxlan port VNI 43. Underlay 10.97.0.1 on a veth to B.
//   B  ovsdb-server and ovs-vswitchd (netdev datapath, private run directory): bridge brphy
//      holds the underlay veth and carries 10.97.0.2 (OVS's userspace tunnels route and ARP
//      through it); bridge brint holds a geneve port (key 42) and a veth to inner namespace b
//      (192.168.70.2); bridge brvx a vxlan port (key 43) and a veth to b2 (192.168.71.2).
// OVS reads the underlay through AF_PACKET, so packets must carry complete checksums: A's
// underlay end computes them in software (a NIC would fill them), as do the inner veths on B
// (OVS without userspace TSO takes no partial checksums).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { loadHost } from '../../src/host.js';
import { startDaemonProcess } from './daemon-proc.js';
import { prerequisites, sh, inNs } from './net-harness.js';
import { ctlRequest } from '../../src/ctl/client.js';

const have = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
const tools = ['ip', 'ping', 'iperf3', 'tcpdump', 'ethtool', 'timeout'].filter((t) => !have(t));
const why = process.getuid?.() !== 0 ? 'needs root (network namespaces, veth, TAP)' : !existsSync('/dev/net/tun') ? 'no /dev/net/tun'
  : !loadHost() ? 'native host not built' : tools.length ? `missing tools: ${tools.join(', ')} (apt-get install iproute2 iputils-ping iperf3 tcpdump ethtool coreutils)`
  : !have('ovs-vswitchd') || !have('ovsdb-server') ? 'needs Open vSwitch (apt-get install openvswitch-switch)' : '';
const skip = prerequisites('tunnel test with Open vSwitch', why);

const P = `o${(process.pid % 9000) + 1000}`;
const ns = (t: string) => `${P}${t}`;
const sock = `/tmp/wasmap-test-${P}.sock`, dir = `/tmp/wasmap-test-${P}-ovs`, db = `unix:${dir}/db.sock`;
const procs: ChildProcess[] = [];
const ctl = (verb: string, args: Record<string, unknown> = {}) => ctlRequest(sock, verb, { switch: 'vale0', ...args });
const vsctl = (args: string) => sh(`ovs-vsctl --db=${db} --timeout=20 ${args}`);

function cleanup(): void {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const f of ['vswitchd.pid', 'ovsdb.pid']) { try { process.kill(Number(readFileSync(`${dir}/${f}`, 'utf8')), 'SIGKILL'); } catch { /* not running */ } }
  rmSync(dir, { recursive: true, force: true });
  for (const n of sh(`ip netns list 2>/dev/null | awk '{print $1}' | grep '^${P}' || true`, false).split('\n').filter(Boolean)) {
    sh(`ip netns pids ${n} 2>/dev/null | xargs -r kill -9`, false);
    sh(`ip netns del ${n} 2>/dev/null`, false);
  }
  for (const l of sh(`ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^${P}' || true`, false).split('\n').filter(Boolean)) sh(`ip link del ${l} 2>/dev/null`, false);
  rmSync(sock, { force: true });
}
function netns(name: string): void {
  sh(`ip netns add ${name}`);
  inNs(name, 'ip link set lo up');
}
/** Inner namespace `tag` with `dev` moved in from `from`: address ip/24, MTU 1450, no IPv6. */
function inner(tag: string, from: string, dev: string, ip: string): void {
  netns(ns(tag));
  inNs(ns(tag), 'sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1');
  inNs(from, `ip link set ${dev} netns ${ns(tag)}`);
  inNs(ns(tag), `ip link set ${dev} mtu 1450`);
  inNs(ns(tag), `ip addr add ${ip}/24 dev ${dev}`);
  inNs(ns(tag), `ip link set ${dev} up`);
}
/** B's side of one tunnel: a veth from bridge `br` to inner namespace `tag` (checksums in software). */
function ovsInner(br: string, tag: string, ip: string): void {
  const B = ns('B');
  inNs(B, `ip link add ${P}${tag}x type veth peer name ${P}${tag}i`);
  inNs(B, `ip link set ${P}${tag}x up`);
  inNs(B, `ethtool -K ${P}${tag}x tx off`);
  vsctl(`add-port ${br} ${P}${tag}x`);
  inner(tag, B, `${P}${tag}i`, ip);
  inNs(ns(tag), `ethtool -K ${P}${tag}i tx off`);
}
const ping = (from: string, to: string) => inNs(ns(from), `ping -c 3 -i 0.2 -W 2 ${to}`, false);
const pingOk = (from: string, to: string) => { const out = ping(from, to); assert.match(out, / 3 received/, `ping ${from} -> ${to}:\n${out}`); };

async function iperf(from: string, to: string, addr: string, port: number): Promise<number> {
  const s = spawn('ip', ['netns', 'exec', ns(to), 'iperf3', '-s', '-1', '-p', String(port)], { stdio: 'ignore' });
  procs.push(s);
  await new Promise((r) => setTimeout(r, 400));
  const j = JSON.parse(inNs(ns(from), `iperf3 -c ${addr} -p ${port} -t 2 -J`)) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e9;
}
async function capture(filter: string, run: () => Promise<void> | void): Promise<string> {
  const dump = spawn('ip', ['netns', 'exec', ns('B'), 'timeout', '8', 'tcpdump', '-nli', `${P}Bu`, '-c', '2', filter], { stdio: ['ignore', 'pipe', 'ignore'] });
  procs.push(dump);
  let out = '';
  dump.stdout!.on('data', (d) => { out += d; });
  await new Promise((r) => setTimeout(r, 700));
  await run();
  await new Promise((r) => dump.once('exit', r));
  return out;
}
type Tun = { name: string; learned: number; tunnel: { rxFrames: number; txFrames: number; drops: Record<string, number>; socket: { drops: Record<string, number> } } };
async function tstats(sw: string, port: string): Promise<Tun> {
  const s = await ctl('stats', { switch: sw }) as { ports: Tun[] }[];
  const p = s[0].ports.find((x) => x.name === port);
  assert.ok(p, `${sw}:${port} in stats`);
  return p;
}

before(async () => {
  if (skip) return;
  cleanup();
  netns(ns('A')); netns(ns('B'));
  sh(`ip link add ${P}Au type veth peer name ${P}Bu`);
  sh(`ip link set ${P}Au netns ${ns('A')}`);
  sh(`ip link set ${P}Bu netns ${ns('B')}`);
  inNs(ns('A'), `ip addr add 10.97.0.1/24 dev ${P}Au`);
  inNs(ns('A'), `ip link set ${P}Au up`);
  inNs(ns('A'), `ethtool -K ${P}Au tx off`);
  inNs(ns('B'), `ip link set ${P}Bu up`);
  // B: Open vSwitch, its own database and run directory, inside B's namespace
  mkdirSync(dir, { recursive: true });
  const env = `OVS_RUNDIR=${dir} OVS_LOGDIR=${dir} OVS_DBDIR=${dir}`;
  sh(`ovsdb-tool create ${dir}/conf.db /usr/share/openvswitch/vswitch.ovsschema`);
  sh(`${env} ip netns exec ${ns('B')} ovsdb-server ${dir}/conf.db --remote=punix:${dir}/db.sock --pidfile=${dir}/ovsdb.pid --detach --log-file=${dir}/ovsdb.log`);
  vsctl('--no-wait init');
  sh(`${env} ip netns exec ${ns('B')} ovs-vswitchd ${db} --pidfile=${dir}/vswitchd.pid --detach --log-file=${dir}/vswitchd.log`);
  vsctl(`add-br brphy -- set bridge brphy datapath_type=netdev -- add-port brphy ${P}Bu`);
  inNs(ns('B'), 'ip addr add 10.97.0.2/24 dev brphy');
  inNs(ns('B'), 'ip link set brphy up');
  vsctl('add-br brint -- set bridge brint datapath_type=netdev -- add-port brint gnv42 -- set interface gnv42 type=geneve options:remote_ip=10.97.0.1 options:key=42');
  vsctl('add-br brvx -- set bridge brvx datapath_type=netdev -- add-port brvx vx43 -- set interface vx43 type=vxlan options:remote_ip=10.97.0.1 options:key=43');
  ovsInner('brint', 'b', '192.168.70.2');
  ovsInner('brvx', 'b2', '192.168.71.2');
  // A: wasmap
  procs.push(await startDaemonProcess(['vale0', 'vale1', '--socket', sock, '--poll', 'sleep'], { netns: ns('A') }));
  await ctl('attach', { port: `tap:${P}ta` });
  inner('a', ns('A'), `${P}ta`, '192.168.70.1');
  await ctl('attach', { port: 'geneve:10.97.0.1', vni: 42, remote: ['10.97.0.2'] });
  await ctl('attach', { switch: 'vale1', port: `tap:${P}tb` });
  inner('a2', ns('A'), `${P}tb`, '192.168.71.1');
  await ctl('attach', { switch: 'vale1', port: 'vxlan:10.97.0.1', vni: 43, remote: ['10.97.0.2'] });
});
after(() => { if (!skip) cleanup(); });

test('Geneve with Open vSwitch (userspace datapath): ping both ways, tcpdump decodes VNI 42, iperf3 TCP both ways', { skip, timeout: 60000 }, async () => {
  const out = await capture('udp port 6081', () => { pingOk('a', '192.168.70.2'); pingOk('b', '192.168.70.1'); });
  assert.match(out, /Geneve, Flags \[none\], vni 0x2a/, `tcpdump output:\n${out}`);
  const ab = await iperf('a', 'b', '192.168.70.2', 5301);
  const ba = await iperf('b', 'a', '192.168.70.1', 5302);
  console.log(`# geneve wasmap <-> OVS userspace TCP: a->b ${ab.toFixed(2)} Gbit/s, b->a ${ba.toFixed(2)} Gbit/s`);
  assert.ok(ab > 0.02 && ba > 0.02, `a->b ${ab}, b->a ${ba}`);
  const st = await tstats('vale0', 'geneve42');
  assert.ok(st.tunnel.rxFrames > 100 && st.tunnel.txFrames > 100, JSON.stringify(st.tunnel));
  assert.ok(st.learned >= 1, 'b learned');
  for (const [k, v] of Object.entries(st.tunnel.socket.drops)) assert.equal(v, 0, `socket drop ${k}`);
  assert.equal(st.tunnel.drops.badFrame, 0);
  assert.equal(st.tunnel.drops.tooBig, 0);
});

test('VXLAN with Open vSwitch (userspace datapath): ping both ways, tcpdump decodes VNI 43; the Geneve VNI stays apart', { skip, timeout: 60000 }, async () => {
  const out = await capture('udp port 4789', () => { pingOk('a2', '192.168.71.2'); pingOk('b2', '192.168.71.1'); });
  assert.match(out, /VXLAN, flags \[I\] \(0x08\), vni 43/, `tcpdump output:\n${out}`);
  // the two overlays are separate L2 domains on both sides: a's subnet is not reachable from b2
  inNs(ns('b2'), 'ip addr add 192.168.70.9/24 dev ' + `${P}b2i`);
  const cross = inNs(ns('b2'), 'ping -c 2 -i 0.2 -W 1 192.168.70.1', false);
  assert.match(cross, / 0 received|100% packet loss/, `VNI 43 must not reach VNI 42:\n${cross}`);
  const st = await tstats('vale1', 'vxlan43');
  assert.ok(st.tunnel.rxFrames >= 3 && st.tunnel.txFrames >= 3, JSON.stringify(st.tunnel));
});
