// `wasmap bench --netns`: real kernels on both sides. Two namespaces, one path between them at
// a time, each measured the same way and the paths alternating run by run (so a noisy moment
// hits every path alike): ping RTT, iperf3 TCP, 64-byte frames from trafgen counted where they
// arrive, and the forwarder's CPU during the TCP test and while idle. The peers a user would
// pick instead are measured in the same run on the same kind of veth pairs: the Linux bridge,
// a C TAP forwarder, dpdk-testpmd (af_xdp, af_packet vdevs) and Open vSwitch's userspace
// datapath. A path whose tool is missing is skipped with the line that installs it.
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { WasmapError } from '../errors.js';
import { findBuildFile } from '../paths.js';
import { ctlRequest } from '../ctl/client.js';
import { c, median, table } from './format.js';

export interface NetResult {
  name: string; runs: number;
  /** iperf3 TCP, one stream, A → B, at the receiver */
  gbps: number;
  /** 60-byte frames (64 on the wire) delivered to B's interface per second, millions */
  mpps: number;
  /** ping A → B, average */
  rtt_us: number;
  /** the forwarder's CPU during the TCP test and when idle, % of one core (null: in the kernel) */
  cpu_pct: number | null; idle_cpu_pct: number | null;
  ratio_vs_bridge?: number; ratio_vs_c_tap?: number; mpps_vs_bridge?: number;
  /** tunnel rows: to Linux's vxlan (or geneve) device + bridge on both hosts, same run */
  ratio_vs_linux_tunnel?: number; mpps_vs_linux_tunnel?: number;
  note: string; skipped?: string;
}

const P = `wb${process.pid % 10000}`;
const A = `${P}A`, B = `${P}B`, sock = `/tmp/wasmap-bench-${P}.sock`, ovsDir = `/tmp/wasmap-bench-${P}-ovs`;
const IP_A = '10.93.0.1', IP_B = '10.93.0.2';
// The tunnel paths: two "hosts" HA and HB (namespaces) joined by an underlay veth pair; A sits
// behind HA, B behind HB, and the inner traffic crosses the underlay encapsulated.
const HA = `${P}HA`, HB = `${P}HB`, sock2 = `/tmp/wasmap-bench-${P}-2.sock`;
const UL_A = '10.94.0.1', UL_B = '10.94.0.2', VNI = 4242;

function sh(cmd: string, ok = true, timeoutMs = 60000): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' });
  if (ok && r.status !== 0) throw new WasmapError('EBENCH', `'${cmd}' failed${r.status === null ? ` (no answer in ${timeoutMs / 1000} s)` : ''}: ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
  return r.stdout;
}
const inNs = (ns: string, cmd: string, ok = true, timeoutMs = 60000) => sh(`ip netns exec ${ns} ${cmd}`, ok, timeoutMs);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** What a path's setup made: the devices in A and B, the forwarder's pid (for its CPU). */
interface Ctx { procs: ChildProcess[]; devA: string; devB: string; pid?: number }

function cleanup(ctx: Ctx): void {
  for (const p of ctx.procs) if (p.exitCode === null) p.kill('SIGKILL');
  for (const f of ['vswitchd.pid', 'ovsdb.pid']) {
    try { process.kill(Number(readFileSync(`${ovsDir}/${f}`, 'utf8')), 'SIGKILL'); } catch { /* not running */ }
  }
  rmSync(ovsDir, { recursive: true, force: true });
  // iperf3 servers left by a failed run live on after their namespace is deleted: kill them
  for (const ns of [A, B, HA, HB]) sh(`ip netns pids ${ns} 2>/dev/null | xargs -r kill -9`, false);
  sh(`ip netns del ${A} 2>/dev/null; ip netns del ${B} 2>/dev/null; ip netns del ${HA} 2>/dev/null; ip netns del ${HB} 2>/dev/null; rm -f ${sock} ${sock2}`, false);
  for (const l of sh(`ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^${P}' || true`, false).split('\n').filter(Boolean)) sh(`ip link del ${l} 2>/dev/null`, false);
}

function place(ctx: Ctx, ns: string, dev: string, ip: string): void {
  sh(`ip link set ${dev} netns ${ns}`);
  inNs(ns, `ip addr add ${ip}/24 dev ${dev}`);
  inNs(ns, `ip link set ${dev} up`);
  inNs(ns, 'ip link set lo up');
  if (ns === A) ctx.devA = dev; else ctx.devB = dev;
}

async function waitFor(p: ChildProcess, word: string, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new WasmapError('EBENCH', `${what} did not start: ${out.slice(-2000)}`)), 20000);
    const look = (d: Buffer) => { out += d; if (out.includes(word)) { clearTimeout(t); resolve(); } };
    p.stdout!.on('data', look);
    p.stderr!.on('data', look);
    p.once('exit', (code) => { clearTimeout(t); reject(new WasmapError('EBENCH', `${what} exited (${code}): ${out.slice(-2000)}`)); });
  });
}

/** CPU seconds (user + system, all threads) of a process so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in USER_HZ ticks (100 on Linux)
}
/** `work` runs while the forwarder's CPU is measured: % of one core. */
async function withCpu<T>(pid: number | undefined, work: () => Promise<T> | T): Promise<[T, number | null]> {
  const c0 = pid ? cpuSeconds(pid) : 0, t0 = performance.now();
  const out = await work();
  if (!pid) return [out, null];
  return [out, +((cpuSeconds(pid) - c0) / ((performance.now() - t0) / 1000) * 100).toFixed(1)];
}

const rxPackets = (ns: string, dev: string) => Number(inNs(ns, `cat /sys/class/net/${dev}/statistics/rx_packets`).trim());
const mac = (ns: string, dev: string) => inNs(ns, `cat /sys/class/net/${dev}/address`).trim();

/** 60-byte UDP frames from A as fast as one core makes them; Mpps counted at B's interface. */
async function smallFrames(ctx: Ctx, seconds: number): Promise<number> {
  if (!have('trafgen')) { // iperf3's sender is the limit then: say so in the note
    inNs(B, 'iperf3 -s -1 -D -p 5302');
    await sleep(300);
    const udp = JSON.parse(inNs(A, `iperf3 -c ${IP_B} -p 5302 -u -l 18 -b 0 -t ${seconds} -J --connect-timeout 3000`, true, (seconds + 15) * 1000)) as { end: { sum: { packets: number; lost_packets: number } } };
    return (udp.end.sum.packets - udp.end.sum.lost_packets) / seconds / 1e6;
  }
  const cfg = `/tmp/wasmap-bench-${P}.trafgen`;
  writeFileSync(cfg, `{ eth(da=${mac(B, ctx.devB)}, sa=${mac(A, ctx.devA)}, type=0x0800), ipv4(saddr=${IP_A}, daddr=${IP_B}, ttl=64, proto=17), udp(sport=9, dport=9), fill(0, 18) }\n`);
  try {
    const r0 = rxPackets(B, ctx.devB), t0 = performance.now();
    inNs(A, `timeout -s INT ${seconds} trafgen --dev ${ctx.devA} --in ${cfg} --cpus 1 -q`, false);
    const t1 = performance.now();
    await sleep(200); // what is still in flight arrives
    return (rxPackets(B, ctx.devB) - r0) / ((t1 - t0) / 1000) / 1e6;
  } finally { rmSync(cfg, { force: true }); }
}

async function measure(ctx: Ctx, seconds: number): Promise<Omit<NetResult, 'name' | 'note' | 'runs'>> {
  inNs(A, `ping -c 3 -i 0.2 -W 2 ${IP_B}`); // ARP, learning, warm-up
  const ping = inNs(A, `ping -q -c 50 -i 0.02 ${IP_B}`);
  const rtt_us = Number(/= [\d.]+\/([\d.]+)\//.exec(ping)?.[1]) * 1000;
  inNs(B, 'iperf3 -s -1 -D -p 5301');
  await sleep(300);
  const [tcp, cpu_pct] = await withCpu(ctx.pid, () => JSON.parse(inNs(A, `iperf3 -c ${IP_B} -p 5301 -t ${seconds} -J --connect-timeout 3000`, true, (seconds + 15) * 1000)) as { end: { sum_received: { bits_per_second: number } } });
  const mpps = await smallFrames(ctx, Math.max(1, Math.round(seconds / 2)));
  const [, idle_cpu_pct] = await withCpu(ctx.pid, () => sleep(2000)); // after traffic: does it go back to sleep?
  return { gbps: tcp.end.sum_received.bits_per_second / 1e9, mpps, rtt_us, cpu_pct, idle_cpu_pct };
}

interface Path {
  name: string; note: string;
  /** commands it needs, with the packages that bring them */
  needs?: [string, string][];
  setup: (ctx: Ctx) => Promise<void>;
}

function vethPair(n: string): [string, string] { sh(`ip link add ${P}${n}0 type veth peer name ${P}${n}1`); return [`${P}${n}0`, `${P}${n}1`]; }

/** Two veth pairs: the outer ends (returned) stay here for the forwarder, the inner ones go
 *  into A and B. `off` turns offloads off on all four ends (for forwarders that take no
 *  virtio-net header). */
function twoVeths(ctx: Ctx, off = false): [string, string] {
  const outer: string[] = [];
  for (const [n, ns, ip] of [['a', A, IP_A], ['b', B, IP_B]] as const) {
    const [o, inner] = vethPair(n);
    sh(`ip link set ${o} up`);
    if (off) sh(`ethtool -K ${o} tx off tso off gso off gro off`, false);
    place(ctx, ns, inner, ip);
    if (off) inNs(ns, `ethtool -K ${inner} tx off tso off gso off gro off`, false);
    outer.push(o);
  }
  return outer as [string, string];
}

/** A switch daemon (in namespace `ns` when given; its control socket `at`). The first one
 *  started is the forwarder whose CPU is measured. */
async function daemon(ctx: Ctx, flags: string[] = [], ns?: string, at = sock): Promise<void> {
  const cli = findBuildFile('cli.mjs');
  if (!cli) throw new WasmapError('NO_MODULE', 'build/cli.mjs not found');
  const argv = [process.execPath, cli, 'switch', 'vale0', '--socket', at, ...flags];
  const d = ns ? spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  ctx.procs.push(d);
  ctx.pid ??= d.pid; // ip netns exec execs the command: the same pid
  await waitFor(d, 'listening', 'the switch daemon');
}

/** Two hosts HA, HB with an underlay veth pair between them (UL_A, UL_B), MTU 1500; A and B
 *  get their device from `inner(host)`, MTU 1450 (1500 - 50 of VXLAN over IPv4, as Linux's
 *  vxlan device defaults to). */
function underlay(): void {
  sh(`ip netns add ${HA} && ip netns add ${HB}`);
  sh(`ip link add ${P}u0 type veth peer name ${P}u1`);
  for (const [dev, ns, ip] of [[`${P}u0`, HA, UL_A], [`${P}u1`, HB, UL_B]] as const) {
    sh(`ip link set ${dev} netns ${ns}`);
    inNs(ns, `ip addr add ${ip}/24 dev ${dev}`);
    inNs(ns, `ip link set ${dev} up`);
    inNs(ns, 'ip link set lo up');
  }
}
/** Move `dev` from host namespace `host` into the endpoint `ns` with `ip`, MTU 1450. */
function placeFrom(ctx: Ctx, host: string, ns: string, dev: string, ip: string): void {
  inNs(host, `ip link set ${dev} netns ${ns}`);
  inNs(ns, `ip link set ${dev} mtu 1450`);
  inNs(ns, `ip addr add ${ip}/24 dev ${dev}`);
  inNs(ns, `ip link set ${dev} up`);
  inNs(ns, 'ip link set lo up');
  if (ns === A) ctx.devA = dev; else ctx.devB = dev;
}
/** Linux's own overlay on host `h`: a vxlan (or geneve) device and a bridge joining it to a veth
 *  whose other end goes to the endpoint. */
function linuxTunnelHost(ctx: Ctx, h: string, ns: string, ip: string, local: string, remote: string, kind: 'vxlan' | 'geneve'): void {
  const n = h === HA ? 'a' : 'b';
  sh(`ip link add ${P}${n}0 type veth peer name ${P}${n}1`);
  sh(`ip link set ${P}${n}0 netns ${h}`);
  sh(`ip link set ${P}${n}1 netns ${h}`);
  inNs(h, `ip link add ${P}br type bridge`);
  if (kind === 'geneve' && spawnSync('sh', ['-c', `ip -n ${h} link add ${P}gt type geneve id 1 remote 10.94.0.9 && ip -n ${h} link del ${P}gt`]).status !== 0)
    throw new WasmapError('ENOTSUP', 'this kernel has no geneve device (CONFIG_GENEVE is not set)');
  inNs(h, kind === 'vxlan' ? `ip link add ${P}vx type vxlan id ${VNI} local ${local} remote ${remote} dstport 4789 dev ${h === HA ? `${P}u0` : `${P}u1`}`
    : `ip link add ${P}vx type geneve id ${VNI} remote ${remote}`);
  for (const d of [`${P}vx`, `${P}${n}0`]) inNs(h, `ip link set ${d} master ${P}br`);
  for (const d of [`${P}vx`, `${P}${n}0`, `${P}br`]) inNs(h, `ip link set ${d} up`);
  placeFrom(ctx, h, ns, `${P}${n}1`, ip);
}
/** wasmap on host `h`: a daemon with a TAP port (moved to the endpoint) and a tunnel port.
 *  --poll sleep: two "hosts" share this machine's 2 cores, and two adaptive daemons spinning
 *  after every burst starve iperf3 and the kernel of both (3-8x slower; one per real host
 *  would not be). */
async function wasmapTunnelHost(ctx: Ctx, h: string, ns: string, ip: string, local: string, remote: string, kind: 'vxlan' | 'geneve'): Promise<void> {
  const at = h === HA ? sock : sock2, t = h === HA ? `${P}t1` : `${P}t2`;
  await daemon(ctx, ['--poll', 'sleep'], h, at);
  await ctlRequest(at, 'attach', { switch: 'vale0', port: `tap:${t}` });
  await ctlRequest(at, 'attach', { switch: 'vale0', port: `${kind}:${local}`, vni: VNI, remote: [remote], name: 'tun' });
  placeFrom(ctx, h, ns, t, ip);
}
const attach = (port: string, args: Record<string, unknown> = {}) => ctlRequest(sock, 'attach', { switch: 'vale0', port, ...args });

/** dpdk-testpmd io forwarding between two vdevs (its own memory: no hugepages, no PCI). */
async function testpmd(ctx: Ctx, vdevs: string[]): Promise<void> {
  if (!existsSync('/sys/fs/bpf/') || !sh('mount', false).includes('/sys/fs/bpf')) sh('mount -t bpf bpf /sys/fs/bpf', false); // libxdp pins there
  const p = spawn('dpdk-testpmd', ['--no-huge', '-m', '1024', '--no-pci', '-l', '0,1', '--file-prefix', P, '--log-level', 'lib.eal:error',
    ...vdevs.flatMap((v) => ['--vdev', v]), '--', '--forward-mode=io', '--auto-start', '--total-num-mbufs=16384', '--stats-period', '3600'], { stdio: ['ignore', 'pipe', 'pipe'] });
  ctx.procs.push(p);
  ctx.pid = p.pid;
  await waitFor(p, 'Port statistics', 'dpdk-testpmd');
}

/** Open vSwitch's userspace datapath with its own ovsdb in a private directory. */
async function ovs(ctx: Ctx, ports: string[][], tso = false): Promise<void> {
  mkdirSync(ovsDir, { recursive: true });
  const env = `OVS_RUNDIR=${ovsDir} OVS_LOGDIR=${ovsDir} OVS_DBDIR=${ovsDir}`, db = `unix:${ovsDir}/db.sock`;
  sh(`ovsdb-tool create ${ovsDir}/conf.db /usr/share/openvswitch/vswitch.ovsschema`);
  sh(`${env} ovsdb-server ${ovsDir}/conf.db --remote=punix:${ovsDir}/db.sock --pidfile=${ovsDir}/ovsdb.pid --detach --log-file=${ovsDir}/ovsdb.log`);
  sh(`ovs-vsctl --db=${db} --no-wait init${tso ? ' -- set Open_vSwitch . other_config:userspace-tso-enable=true' : ''}`);
  sh(`${env} ovs-vswitchd ${db} --pidfile=${ovsDir}/vswitchd.pid --detach --log-file=${ovsDir}/vswitchd.log`);
  sh(`ovs-vsctl --db=${db} add-br ${P}ovs -- set bridge ${P}ovs datapath_type=netdev`);
  for (const p of ports) sh(`ovs-vsctl --db=${db} add-port ${P}ovs ${p.join(' ')}`);
  ctx.pid = Number(readFileSync(`${ovsDir}/vswitchd.pid`, 'utf8'));
  await sleep(1000);
}

const DPDK: [string, string] = ['dpdk-testpmd', 'dpdk-dev librte-net-af-xdp23 librte-net-af-packet23 librte-mempool-ring23'];
const OVS: [string, string] = ['ovs-vswitchd', 'openvswitch-switch'];

export const PATHS: Path[] = [
  { name: 'linux-bridge', note: 'veth + Linux bridge (the kernel\'s own switch)', setup: async (ctx) => {
    sh(`ip link add ${P}br type bridge && ip link set ${P}br up`);
    for (const o of twoVeths(ctx)) sh(`ip link set ${o} master ${P}br`);
  } },
  { name: 'c-tap', note: 'TAP<->TAP in C, vnet header, offloads', setup: async (ctx) => {
    const exe = findBuildFile('tapfwd');
    if (!exe) throw new WasmapError('NO_NATIVE', 'build/tapfwd is missing: run `npm run build:native`');
    const p = spawn(exe, [`${P}t1`, `${P}t2`], { stdio: ['ignore', 'pipe', 'pipe'] });
    ctx.procs.push(p); ctx.pid = p.pid;
    await waitFor(p, 'ready', 'tapfwd');
    place(ctx, A, `${P}t1`, IP_A); place(ctx, B, `${P}t2`, IP_B);
  } },
  { name: 'wasmap-tap', note: 'TAP ports (default: virtio-net header, offloads), --poll adaptive (default)', setup: async (ctx) => {
    await daemon(ctx);
    for (const t of ['t1', 't2']) await attach(`tap:${P}${t}`);
    place(ctx, A, `${P}t1`, IP_A); place(ctx, B, `${P}t2`, IP_B);
  } },
  ...([['io1', ['--io-threads', '1'], 'TAP ports, kernel I/O in 1 I/O thread'], ['io2', ['--io-threads', '2'], 'TAP ports, kernel I/O in 2 I/O threads (one per port)'],
    ['busy', ['--poll', 'busy'], 'TAP ports, --poll busy (the forwarding thread never sleeps)'], ['sleep', ['--poll', 'sleep'], 'TAP ports, --poll sleep (sleeps after any empty pass)']] as const).map(([n, flags, note]): Path => ({
    name: `wasmap-tap-${n}`, note, setup: async (ctx) => {
      await daemon(ctx, [...flags]);
      for (const t of ['t1', 't2']) await attach(`tap:${P}${t}`);
      place(ctx, A, `${P}t1`, IP_A); place(ctx, B, `${P}t2`, IP_B);
    } })),
  { name: 'wasmap-af_packet-vnet', note: 'veth + AF_PACKET ports (default: virtio-net header), default offloads', setup: async (ctx) => {
    await daemon(ctx);
    for (const o of twoVeths(ctx)) await attach(`af_packet:${o}`);
  } },
  { name: 'wasmap-af_xdp-native', note: 'veth + AF_XDP ports, native XDP, offloads off', setup: async (ctx) => {
    await daemon(ctx);
    for (const o of twoVeths(ctx, true)) await attach(`af_xdp:${o}`, { xdpMode: 'native' });
  } },
  { name: 'wasmap-af_xdp-skb', note: 'veth + AF_XDP ports, generic (skb) XDP, offloads off', setup: async (ctx) => {
    await daemon(ctx);
    for (const o of twoVeths(ctx, true)) await attach(`af_xdp:${o}`, { xdpMode: 'skb' });
  } },
  { name: 'wasmap-af_packet', note: 'veth + AF_PACKET ports, --vnet-hdr 0, offloads off', setup: async (ctx) => {
    await daemon(ctx);
    for (const o of twoVeths(ctx, true)) await attach(`af_packet:${o}`, { vnetHdr: 0 });
  } },
  { name: 'wasmap-tap-af_packet', note: 'TAP with TSO -> AF_PACKET without: segmented in wasm', setup: async (ctx) => {
    await daemon(ctx);
    await attach(`tap:${P}t1`, { vnetHdr: 12 });
    place(ctx, A, `${P}t1`, IP_A);
    const [o, inner] = vethPair('b');
    sh(`ip link set ${o} up && ethtool -K ${o} tx off tso off gso off gro off`);
    await attach(`af_packet:${o}`, { vnetHdr: 0 });
    place(ctx, B, inner, IP_B);
    inNs(B, `ethtool -K ${inner} tx off tso off gso off gro off`, false);
  } },
  // Linux's own overlay and wasmap's, each on both hosts, per encapsulation; then wasmap on one
  // host and Linux on the other (Linux's underlay end fills inner checksums: a veth never does)
  ...(['vxlan', 'geneve'] as const).flatMap((kind): Path[] => [
    { name: `${kind}-linux`, note: `two hosts, each a Linux ${kind} device + bridge; A and B behind them (inner MTU 1450)`, setup: async (ctx) => {
      underlay();
      linuxTunnelHost(ctx, HA, A, IP_A, UL_A, UL_B, kind);
      linuxTunnelHost(ctx, HB, B, IP_B, UL_B, UL_A, kind);
    } },
    { name: `${kind}-wasmap`, note: `two hosts, each a wasmap daemon (--poll sleep) with a TAP port and a ${kind} port (CPU: host A's daemon)`, setup: async (ctx) => {
      underlay();
      await wasmapTunnelHost(ctx, HA, A, IP_A, UL_A, UL_B, kind);
      await wasmapTunnelHost(ctx, HB, B, IP_B, UL_B, UL_A, kind);
    } },
  ]),
  { name: 'vxlan-wasmap-linux', note: 'host A wasmap (TAP + vxlan port, --poll sleep), host B Linux vxlan + bridge', setup: async (ctx) => {
    underlay();
    await wasmapTunnelHost(ctx, HA, A, IP_A, UL_A, UL_B, 'vxlan');
    linuxTunnelHost(ctx, HB, B, IP_B, UL_B, UL_A, 'vxlan');
    inNs(HB, `ethtool -K ${P}u1 tx off`);
  } },
  { name: 'dpdk-af_xdp', note: 'dpdk-testpmd io fwd, net_af_xdp on the veths, offloads off (one core spins)', needs: [DPDK], setup: async (ctx) => {
    const [a, b] = twoVeths(ctx, true); // no virtio-net header on these sockets: whole frames only
    await testpmd(ctx, [`net_af_xdp0,iface=${a}`, `net_af_xdp1,iface=${b}`]);
  } },
  { name: 'dpdk-af_packet', note: 'dpdk-testpmd io fwd, net_af_packet on the veths, offloads off (one core spins)', needs: [DPDK], setup: async (ctx) => {
    const [a, b] = twoVeths(ctx, true);
    await testpmd(ctx, [`net_af_packet0,iface=${a}`, `net_af_packet1,iface=${b}`]);
  } },
  { name: 'ovs-afxdp', note: 'Open vSwitch userspace (netdev) datapath, afxdp ports on the veths, offloads off', needs: [OVS], setup: async (ctx) => {
    const [a, b] = twoVeths(ctx, true);
    await ovs(ctx, [[a, '--', 'set', 'interface', a, 'type=afxdp'], [b, '--', 'set', 'interface', b, 'type=afxdp']]);
  } },
  { name: 'ovs-af_packet', note: 'Open vSwitch userspace (netdev) datapath, AF_PACKET ports on the veths, offloads off', needs: [OVS], setup: async (ctx) => {
    await ovs(ctx, twoVeths(ctx, true).map((o) => [o]));
  } },
  { name: 'ovs-tap', note: 'Open vSwitch userspace datapath, TAP ports, userspace TSO', needs: [OVS], setup: async (ctx) => {
    await ovs(ctx, ['t1', 't2'].map((t) => [`${P}${t}`, '--', 'set', 'interface', `${P}${t}`, 'type=tap']), true);
    place(ctx, A, `${P}t1`, IP_A); place(ctx, B, `${P}t2`, IP_B);
  } },
];

export async function benchNetns(seconds: number, json: boolean, only?: string[], runs = 3): Promise<NetResult[]> {
  if (process.getuid?.() !== 0) throw new WasmapError('EPERM', 'bench --netns needs root (network namespaces, TAP devices)');
  const missing = ['ip', 'ping', 'iperf3', 'ethtool'].filter((t) => !have(t));
  if (missing.length) throw new WasmapError('ENOENT', `bench --netns needs ${missing.join(', ')} (apt-get install iproute2 iputils-ping iperf3 ethtool)`);
  for (const n of only ?? []) if (!PATHS.some((p) => p.name === n)) throw new WasmapError('EINVAL', `unknown path '${n}'; paths: ${PATHS.map((p) => p.name).join(', ')}`);
  const log = (s: string) => { if (!json) process.stderr.write(c.dim(s) + '\n'); else process.stderr.write(s + '\n'); };
  if (!have('trafgen')) log('  trafgen not found (apt-get install netsniff-ng): 64-byte Mpps come from iperf3 UDP, whose sender is the limit');
  const chosen = PATHS.filter((p) => !only || only.includes(p.name));
  const per = new Map<string, Omit<NetResult, 'name' | 'note' | 'runs'>[]>();
  const skipped = new Map<string, string>();
  for (const p of chosen) {
    const lack = (p.needs ?? []).filter(([cmd]) => !have(cmd));
    if (lack.length) skipped.set(p.name, `needs ${lack.map(([c]) => c).join(', ')} (apt-get install ${lack.map(([, pkg]) => pkg).join(' ')})`);
  }
  const t0 = performance.now(), todo = chosen.filter((p) => !skipped.has(p.name));
  // run by run, every path in turn: a noisy moment on this shared machine hits them alike
  for (let r = 0; r < runs; r++) {
    for (const [i, path] of todo.entries()) {
      if (skipped.has(path.name)) continue;
      const ctx: Ctx = { procs: [], devA: '', devB: '' };
      cleanup(ctx);
      log(`  run ${r + 1}/${runs}, path ${i + 1}/${todo.length} ${path.name} (${((performance.now() - t0) / 1000).toFixed(0)} s elapsed)`);
      try {
        sh(`ip netns add ${A} && ip netns add ${B}`);
        await path.setup(ctx);
        const m = await measure(ctx, seconds);
        per.set(path.name, [...(per.get(path.name) ?? []), m]);
      } catch (e) {
        // a peer that does not run here (an old kernel, a missing PMD) is reported, not fatal
        if (!per.has(path.name)) { skipped.set(path.name, `failed: ${(e as Error).message.split('\n')[0].slice(0, 300)}`); log(`  ${path.name}: ${skipped.get(path.name)}`); }
        else log(`  ${path.name}: run ${r + 1} failed: ${(e as Error).message.split('\n')[0].slice(0, 300)}`);
      } finally {
        cleanup(ctx);
      }
    }
  }
  const med = (xs: (number | null)[]) => (xs.some((x) => x === null) ? null : median(xs as number[]));
  const results: NetResult[] = chosen.map((p) => {
    const ms = per.get(p.name);
    if (!ms) return { name: p.name, runs: 0, gbps: 0, mpps: 0, rtt_us: 0, cpu_pct: null, idle_cpu_pct: null, note: p.note, skipped: skipped.get(p.name) ?? 'not measured' };
    const cpu = med(ms.map((m) => m.cpu_pct)), idle = med(ms.map((m) => m.idle_cpu_pct));
    return { name: p.name, runs: ms.length, gbps: +median(ms.map((m) => m.gbps)).toFixed(3), mpps: +median(ms.map((m) => m.mpps)).toFixed(4), rtt_us: +median(ms.map((m) => m.rtt_us)).toFixed(1),
      cpu_pct: cpu === null ? null : +cpu.toFixed(1), idle_cpu_pct: idle === null ? null : +idle.toFixed(1), note: p.note };
  });
  const bridge = results.find((r) => r.name === 'linux-bridge' && r.runs), ctap = results.find((r) => r.name === 'c-tap' && r.runs);
  for (const r of results.filter((x) => x.runs)) {
    if (bridge) { r.ratio_vs_bridge = +(r.gbps / bridge.gbps).toFixed(3); r.mpps_vs_bridge = +(r.mpps / bridge.mpps).toFixed(3); }
    if (ctap) r.ratio_vs_c_tap = +(r.gbps / ctap.gbps).toFixed(3);
    // tunnel rows: like for like, to Linux's own overlay of the same encapsulation (else vxlan)
    const kind = /^(vxlan|geneve)-/.exec(r.name)?.[1];
    const ref = kind && (results.find((x) => x.name === `${kind}-linux` && x.runs) ?? results.find((x) => x.name === 'vxlan-linux' && x.runs));
    if (ref && ref !== r) { r.ratio_vs_linux_tunnel = +(r.gbps / ref.gbps).toFixed(3); r.mpps_vs_linux_tunnel = +(r.mpps / ref.mpps).toFixed(3); }
  }
  if (json) console.log(JSON.stringify(results, null, 2));
  else {
    const pct = (x: number | null) => (x === null ? 'kernel' : x.toFixed(0));
    console.log(table(['path', 'TCP Gbit/s', '64B Mpps', 'RTT µs', 'CPU %', 'idle %', 'TCP ÷ bridge', 'Mpps ÷ bridge', 'TCP ÷ Linux tunnel', 'note'],
      results.map((r) => (r.runs ? [r.name, r.gbps.toFixed(2), r.mpps.toFixed(3), r.rtt_us.toFixed(0), pct(r.cpu_pct), pct(r.idle_cpu_pct), r.ratio_vs_bridge?.toFixed(2) ?? '', r.mpps_vs_bridge?.toFixed(2) ?? '', r.ratio_vs_linux_tunnel?.toFixed(2) ?? '', r.note]
        : [r.name, '-', '-', '-', '-', '-', '', '', '', `skipped: ${r.skipped}`]))));
    console.log(c.dim(`medians of ${runs} run(s), the paths alternating; CPU = the forwarder process (% of one core) during the TCP test, idle = the 2 s after; 64B = 60-byte UDP frames from ${have('trafgen') ? 'trafgen (one core)' : 'iperf3'} counted at B's interface`));
  }
  return results;
}
