// `wasmap bench --netns`: real kernels on both sides. Two namespaces, one path between them
// at a time, measured the same way: ping RTT, iperf3 TCP, iperf3 UDP with 60-byte frames.
//   linux-bridge       veth pairs on a Linux bridge (the kernel's own switch)
//   c-tap              TAP <-> TAP through a trivial C forwarder with the virtio-net header
//   wasmap-tap         TAP ports on a wasmap switch daemon, virtio-net header passed through
//   wasmap-af_packet   veth pairs with AF_PACKET ports (no offloads: whole, checksummed frames)
//   wasmap-tap-af_packet  TAP with TSO on one side, veth/AF_PACKET without on the other: the
//                      switch segments and checksums in wasm
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { WasmapError } from '../errors.js';
import { findBuildFile } from '../paths.js';
import { ctlRequest } from '../ctl/client.js';
import { c, table } from './format.js';

export interface NetResult { name: string; gbps: number; mpps: number; rtt_us: number; ratio_vs_bridge?: number; ratio_vs_c_tap?: number; note: string }

const P = `wb${process.pid % 10000}`;
const A = `${P}A`, B = `${P}B`, sock = `/tmp/wasmap-bench-${P}.sock`;

function sh(cmd: string, ok = true): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: 120000 });
  if (ok && r.status !== 0) throw new WasmapError('EBENCH', `'${cmd}' failed: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}
const inNs = (ns: string, cmd: string, ok = true) => sh(`ip netns exec ${ns} ${cmd}`, ok);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cleanup(procs: ChildProcess[]): void {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  sh(`ip netns del ${A} 2>/dev/null; ip netns del ${B} 2>/dev/null; rm -f ${sock}`, false);
  for (const l of sh(`ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^${P}' || true`, false).split('\n').filter(Boolean)) sh(`ip link del ${l} 2>/dev/null`, false);
}

function place(ns: string, dev: string, ip: string): void {
  sh(`ip link set ${dev} netns ${ns}`);
  inNs(ns, `ip addr add ${ip}/24 dev ${dev}`);
  inNs(ns, `ip link set ${dev} up`);
  inNs(ns, 'ip link set lo up');
}

async function waitFor(p: ChildProcess, word: string, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new WasmapError('EBENCH', `${what} did not start: ${out}`)), 15000);
    p.stdout!.on('data', (d) => { out += d; if (out.includes(word)) { clearTimeout(t); resolve(); } });
    p.stderr!.on('data', (d) => { out += d; });
    p.once('exit', (code) => { clearTimeout(t); reject(new WasmapError('EBENCH', `${what} exited (${code}): ${out}`)); });
  });
}

async function measure(seconds: number): Promise<{ gbps: number; mpps: number; rtt_us: number }> {
  inNs(A, 'ping -c 3 -i 0.2 -W 2 10.93.0.2'); // ARP, learning, warm-up
  const ping = inNs(A, 'ping -q -c 50 -i 0.02 10.93.0.2');
  const rtt_us = Number(/= [\d.]+\/([\d.]+)\//.exec(ping)?.[1]) * 1000;
  inNs(B, 'iperf3 -s -1 -D -p 5301');
  await sleep(300);
  const tcp = JSON.parse(inNs(A, `iperf3 -c 10.93.0.2 -p 5301 -t ${seconds} -J`)) as { end: { sum_received: { bits_per_second: number } } };
  inNs(B, 'iperf3 -s -1 -D -p 5302');
  await sleep(300);
  const udpSecs = Math.max(1, Math.round(seconds / 2));
  const udp = JSON.parse(inNs(A, `iperf3 -c 10.93.0.2 -p 5302 -u -l 18 -b 0 -t ${udpSecs} -J`)) as { end: { sum: { packets: number; lost_packets: number } } };
  const received = udp.end.sum.packets - udp.end.sum.lost_packets;
  return { gbps: tcp.end.sum_received.bits_per_second / 1e9, mpps: received / udpSecs / 1e6, rtt_us };
}

type Path = { name: string; note: string; setup: (procs: ChildProcess[]) => Promise<void> };

function vethPair(n: string): [string, string] { sh(`ip link add ${P}${n}0 type veth peer name ${P}${n}1`); return [`${P}${n}0`, `${P}${n}1`]; }

const PATHS: Path[] = [
  { name: 'linux-bridge', note: 'veth + Linux bridge', setup: async () => {
    sh(`ip link add ${P}br type bridge && ip link set ${P}br up`);
    for (const [n, ns, ip] of [['a', A, '10.93.0.1'], ['b', B, '10.93.0.2']] as const) {
      const [outer, inner] = vethPair(n);
      sh(`ip link set ${outer} master ${P}br && ip link set ${outer} up`);
      place(ns, inner, ip);
    }
  } },
  { name: 'c-tap', note: 'TAP<->TAP in C, vnet header, offloads', setup: async (procs) => {
    const exe = findBuildFile('tapfwd');
    if (!exe) throw new WasmapError('NO_NATIVE', 'build/tapfwd is missing: run `npm run build:native`');
    const p = spawn(exe, [`${P}t1`, `${P}t2`], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(p);
    await waitFor(p, 'ready', 'tapfwd');
    place(A, `${P}t1`, '10.93.0.1'); place(B, `${P}t2`, '10.93.0.2');
  } },
  { name: 'wasmap-tap', note: 'TAP ports, vnet header passed through', setup: async (procs) => {
    await daemon(procs);
    for (const t of ['t1', 't2']) await ctlRequest(sock, 'attach', { switch: 'vale0', port: `tap:${P}${t}`, vnetHdr: 12 });
    place(A, `${P}t1`, '10.93.0.1'); place(B, `${P}t2`, '10.93.0.2');
  } },
  { name: 'wasmap-af_packet', note: 'veth + AF_PACKET ports, offloads off', setup: async (procs) => {
    await daemon(procs);
    for (const [n, ns, ip] of [['a', A, '10.93.0.1'], ['b', B, '10.93.0.2']] as const) {
      const [outer, inner] = vethPair(n);
      sh(`ip link set ${outer} up`);
      sh(`ethtool -K ${outer} tx off tso off gso off gro off`, false);
      await ctlRequest(sock, 'attach', { switch: 'vale0', port: `af_packet:${outer}` });
      place(ns, inner, ip);
      inNs(ns, `ethtool -K ${inner} tx off tso off gso off gro off`, false);
    }
  } },
  { name: 'wasmap-tap-af_packet', note: 'TAP with TSO -> AF_PACKET without: segmented in wasm', setup: async (procs) => {
    await daemon(procs);
    await ctlRequest(sock, 'attach', { switch: 'vale0', port: `tap:${P}t1`, vnetHdr: 12 });
    place(A, `${P}t1`, '10.93.0.1');
    const [outer, inner] = vethPair('b');
    sh(`ip link set ${outer} up`);
    sh(`ethtool -K ${outer} tx off tso off gso off gro off`, false);
    await ctlRequest(sock, 'attach', { switch: 'vale0', port: `af_packet:${outer}` });
    place(B, inner, '10.93.0.2');
    inNs(B, `ethtool -K ${inner} tx off tso off gso off gro off`, false);
  } },
];

async function daemon(procs: ChildProcess[]): Promise<void> {
  const cli = findBuildFile('cli.mjs');
  if (!cli) throw new WasmapError('NO_MODULE', 'build/cli.mjs not found');
  const d = spawn(process.execPath, [cli, 'switch', 'vale0', '--socket', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(d);
  await waitFor(d, 'listening', 'the switch daemon');
}

export async function benchNetns(seconds: number, json: boolean, only?: string[]): Promise<NetResult[]> {
  if (process.getuid?.() !== 0) throw new WasmapError('EPERM', 'bench --netns needs root (network namespaces, TAP devices)');
  const missing = ['ip', 'ping', 'iperf3', 'ethtool'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (missing.length) throw new WasmapError('ENOENT', `bench --netns needs ${missing.join(', ')} (apt-get install iproute2 iputils-ping iperf3 ethtool)`);
  const results: NetResult[] = [];
  for (const path of PATHS.filter((p) => !only || only.includes(p.name))) {
    const procs: ChildProcess[] = [];
    cleanup(procs);
    try {
      sh(`ip netns add ${A} && ip netns add ${B}`);
      await path.setup(procs);
      if (!json) process.stderr.write(c.dim(`  ${path.name}: measuring (${seconds} s TCP, ${Math.max(1, Math.round(seconds / 2))} s UDP)…\n`));
      const m = await measure(seconds);
      results.push({ name: path.name, gbps: +m.gbps.toFixed(3), mpps: +m.mpps.toFixed(4), rtt_us: +m.rtt_us.toFixed(1), note: path.note });
    } finally {
      cleanup(procs);
    }
  }
  const bridge = results.find((r) => r.name === 'linux-bridge'), ctap = results.find((r) => r.name === 'c-tap');
  for (const r of results) {
    if (bridge) r.ratio_vs_bridge = +(r.gbps / bridge.gbps).toFixed(3);
    if (ctap) r.ratio_vs_c_tap = +(r.gbps / ctap.gbps).toFixed(3);
  }
  if (json) console.log(JSON.stringify(results, null, 2));
  else {
    console.log(table(['path', 'TCP Gbit/s', 'UDP-60 Mpps', 'RTT µs', 'vs bridge', 'vs C TAP', 'note'],
      results.map((r) => [r.name, r.gbps.toFixed(2), r.mpps.toFixed(3), r.rtt_us.toFixed(0), r.ratio_vs_bridge?.toFixed(2) ?? '', r.ratio_vs_c_tap?.toFixed(2) ?? '', r.note])));
    console.log(c.dim('ratios are TCP Gbit/s against the path named, measured in this run; UDP counted at the receiver (iperf3, 18-byte payloads)'));
  }
  return results;
}
