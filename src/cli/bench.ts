// `wasmap bench`: throughput of the datapath next to a native C build of the same algorithm,
// measured in one run. Every run checks conservation and fails loudly when it does not hold.
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { Datapath } from '../datapath.js';
import { Switch, conservation } from '../switch.js';
import { Pipe } from '../pipe.js';
import { Generator, GenOptions, TrafficPlan } from '../gen.js';
import { compileFn, PreparedFn } from '../fn/host.js';
import { readFileSync } from 'node:fs';
import { findBuildFile } from '../paths.js';
import { WasmapError } from '../errors.js';
import { c, median, norm, table } from './format.js';
import { benchNetns } from './bench-netns.js';
import { benchVhost } from './bench-vhost.js';
import { writeCharts } from './charts.js';
import { runPassthrough, PtBenchOut } from './bench-pt.js';
import { benchVm } from './bench-vm.js';

export const BENCH_HELP = `wasmap bench — packet rates of the wasm datapath, with a native C reference

Usage: wasmap bench [--only NAME] [--seconds N] [--runs N] [--json]
       wasmap bench --netns [--only PATH,…] [--seconds N] [--runs N] [--json]   (root)
       wasmap bench --vhost [--only TEXT,…] [--seconds N] [--runs N] [--json]   (root, dpdk-testpmd)
       wasmap bench --vm [--only bridge|wasmap] [--seconds N] [--runs N] [--spin-us N] [--json]
                                                                 (root, QEMU)

Scenarios (all in one process, on one core; generators and sinks included in the time):
  pipe-60              zero-copy pipe, 60-byte frames (buffer indices swapped, no copy)
  pipe-60-rubbish      the same without writing frames into buffers (pkt-gen -r)
  switch-2port-60      VALE switch, 2 ports, each sends to the other, 60-byte frames
  switch-2port-1514    the same with 1514-byte frames
  switch-8port-60      8 ports in 4 pairs (0<->1, 2<->3, ...), aggregate rate
  switch-2port-60-fn   switch-2port-60 decided by a forwarding function: the built-in lookup,
                       forward-other.wasm and l2-learn.wasm (build/examples) in alternating
                       slices; ratio = function Mpps / built-in Mpps
  router-10k-60        router.wasm with 10 240 IPv4 prefixes: every frame is routed (LPM, MAC
                       rewrite, TTL and checksum) to the other port
  switch-batch-sweep   switch-2port-60 with batch = burst = 1, 2, 4 ... 1024
  tso-segment          software TSO of 64 KiB TCP frames to 1514-byte frames (Gbit/s of input)
  csum-1500            the Internet checksum of 1500-byte buffers (Gbit/s)
  native-2port-60      the same learning switch written in C (build/vale-ref, cc -O2)
  passthrough-2guests-60  a switch daemon and two guest processes (pkt-gen -f tx / -f rx) that
                       own their ports' rings through shared memory and CSBs: received Mpps,
                       kicks per packet, idle CPU; ratio = / switch-2port-60 of the same run
switch-2port-60 carries ratio = wasm Mpps / native Mpps: the two alternate in slices of\n--seconds/4, 4 × --runs pairs, and the ratio is the median of the pair ratios.
Each scenario runs --runs times (default 3) for --seconds each (default 2); the median is shown.

With --netns: two network namespaces A and B, and between them in turn, on veth pairs or TAPs:
  linux-bridge          the Linux bridge (the reference: ratios are to it)
  c-tap                 a C TAP<->TAP forwarder with the virtio-net header (build/tapfwd)
  wasmap-tap            wasmap, TAP ports (virtio-net header by default), --poll adaptive
  wasmap-tap-io1, -io2  the same with --io-threads 1 / 2 (kernel I/O beside the switch)
  wasmap-tap-busy, -sleep   the same with --poll busy / sleep
  wasmap-af_xdp-native, wasmap-af_xdp-skb   wasmap, AF_XDP ports on the veths, offloads off
  wasmap-af_packet-vnet wasmap, AF_PACKET ports on the veths (virtio-net header), default offloads
  wasmap-af_packet      wasmap, AF_PACKET ports on the veths, --vnet-hdr 0, offloads off
  wasmap-tap-af_packet  wasmap, TAP with TSO on one side, AF_PACKET without on the other
  dpdk-af_xdp, dpdk-af_packet   dpdk-testpmd io forwarding with those vdevs (apt: dpdk-dev …)
  ovs-afxdp, ovs-af_packet, ovs-tap   Open vSwitch's userspace datapath, private ovsdb
  vxlan-linux, vxlan-wasmap   two hosts (namespaces) joined by an underlay veth, A behind one and
                       B behind the other: Linux vxlan + bridge on both, or a wasmap daemon with
                       a TAP port and a vxlan port on both (--poll sleep: two daemons share the
                       2 cores); inner MTU 1450; ratio to vxlan-linux
  vxlan-wasmap-linux    wasmap on host A, Linux on host B
  geneve-linux, geneve-wasmap the same with Geneve (Linux's needs CONFIG_GENEVE)
Per path: ping RTT, iperf3 TCP (--seconds, default 5), 60-byte UDP frames from trafgen
(netsniff-ng) counted at B's interface, and the forwarder's CPU % (during TCP; idle after).
--runs runs (default 3), the paths alternating run by run; medians. A path whose tool is
missing is skipped with the apt-get line that brings it.

With --vhost: vhost-user back-ends measured with DPDK's virtio-user driver as the guests
(dpdk-testpmd, no VM): wasmap's vhost-user ports next to DPDK's own vhost PMD (testpmd io
forwarding) and OVS-DPDK (ovs-vswitchd-dpdk, private ovsdb, dpdkvhostuser ports, 1 GiB of
hugepages reserved for the run and given back; apt: openvswitch-switch-dpdk), the back-end's
polling thread alone on CPU 1 and the front-ends polling on CPU 0. Both ways (one testpmd
sends and drains on both ports, flowgen), 64- and 1518-byte frames; Mpps as the receiving
front-end counts it, ratios to DPDK and OVS, the back-end's CPU, wasmap's kicks and interrupts
per second and its books (taken = delivered + counted).
--only keeps rows whose name (backend-direction-frame) contains one of the words.

With --vm: two QEMU guest pairs (1 vCPU, 256 MiB each, Debian kernel, virtio-net; image built
once into build/vm) in a fresh network namespace: one pair on (a) a wasmap switch with
vhost-user ports, one on (b) the standard Linux path, TAP + vhost-net + Linux bridge (vhost=off,
and said so, without /dev/vhost-net). iperf3 TCP, then UDP with 64-byte payloads (-b 0), guest
to guest for --seconds (default 5), --runs times (default 3) per path, the paths alternating.
Rows vm-tcp-wasmap, vm-tcp-bridge, vm-udp64-wasmap, vm-udp64-bridge: gbps (TCP at the
receiver), mpps (UDP received), medians; ratio = median of the per-run wasmap / bridge
(targets: TCP ≥ 1.0, UDP ≥ 2.0); the switch's per-port counters and conservation check.
--spin-us is the switch daemon's (default 0 here: on few shared cores a spinning switch takes
the CPU the guests need). Without /dev/kvm the guests run under TCG emulation (slow; ~2 min
at the defaults). Needs qemu-system-x86 and /dev/net/tun; exits 1 when no path was measured
or the switch's counters do not balance.

Options:
  --only NAME   run one scenario (or a comma-separated list)
  --seconds N   seconds per run (default 2)
  --runs N      runs per scenario (default 3)
  --json        print a JSON array of results (progress goes to stderr)
  --vm          the VM benchmark above (root)
  --spin-us N   with --vm: the switch daemon's --spin-us (default 0)
  --svg DIR     also draw the results as SVG charts into DIR (in-process: scenarios.svg,
                batch-sweep.svg; --netns: netns-tcp.svg, netns-64b.svg, netns-rtt.svg)
  --from FILE   with --svg: draw the charts of an earlier run's --json output, run nothing
`;

export interface BenchResult {
  name: string; mpps: number; gbps: number; frame: number; ports: number; batch: number; burst: number;
  runs: number; seconds: number; sent: number; received: number; drops: number; ratio?: number; note?: string;
  kicks_per_packet?: number; kicks_switch_to_guests?: number; kicks_guests_to_switch?: number; idle_cpu_switch_pct?: number; idle_cpu_guest_pct?: number;
}

interface RunOut { mpps: number; sent: bigint; received: bigint; drops: bigint }

function timed(seconds: number, step: () => void): number {
  const t0 = performance.now(), end = t0 + seconds * 1000;
  while (performance.now() < end) step();
  return (performance.now() - t0) / 1000;
}

/** A forwarding function for runSwitch: the module, its configuration, and per port what
 *  its generator sends (default: to the peer port's MAC). */
interface FnSetup { module: PreparedFn; config?: unknown; gen?: (i: number) => GenOptions }

function runSwitch(nports: number, len: number, batch: number, burst: number, seconds: number, fn?: FnSetup): RunOut {
  const dp = new Datapath();
  const sw = new Switch(dp, 'vale0');
  sw.configure({ batch });
  const ports = Array.from({ length: nports }, (_, i) => sw.attach(`p${i}`));
  const mac = (i: number) => `02:00:00:00:00:${(i + 1).toString(16).padStart(2, '0')}`;
  const peer = (i: number) => i ^ 1;
  if (fn) sw.setLookup(fn.module, { config: fn.config });
  const gens = ports.map((_, i) => new Generator(dp, { len, srcMac: mac(i), dstMac: mac(peer(i)), ...fn?.gen?.(i) }));
  const sinks = ports.map(() => new Generator(dp));
  const plan = new TrafficPlan(dp, sw.sw, gens.map((gen, i) => ({ gen, kring: ports[i].tx.kring, burst })), sinks.map((gen, i) => ({ gen, kring: ports[i].rx.kring })));
  plan.run(200); // learn the MACs, warm the JIT and caches
  const rx0 = sinks.reduce((n, s) => n + s.rxPackets, 0n);
  const rounds = Math.max(1, Math.floor(32768 / burst));
  const secs = timed(seconds, () => plan.run(rounds));
  const rx = sinks.reduce((n, s) => n + s.rxPackets, 0n) - rx0;
  for (const g of gens) g.budget = 0;
  plan.run(4);
  const law = conservation(sw.stats());
  const fs = sw.lookupStatus().function;
  if (fs?.reason) throw new WasmapError('EBENCH', `the forwarding function failed: ${fs.reason}`);
  if (fn && Number(rx) === 0) throw new WasmapError('EBENCH', `the forwarding function delivered nothing (its counters: ${JSON.stringify(fs?.counters)})`);
  if (!law.ok) throw new WasmapError('CONSERVATION', `switch ${nports}port-${len}: sent ${law.sent} + flood ${law.floodExtra} != received ${law.received} + drops ${law.drops}`);
  return { mpps: Number(rx) / secs / 1e6, sent: law.sent, received: law.received, drops: law.drops };
}

function runPipe(len: number, burst: number, seconds: number, rubbish = false): RunOut {
  const dp = new Datapath();
  const pipe = new Pipe(dp, { slots: 1024 });
  const gen = new Generator(dp, { len, rubbish }), sink = new Generator(dp);
  const tx = pipe.master.tx.kring, rx = pipe.slave.rx.kring;
  dp.fn.pipe_run(gen.g, tx, sink.g, rx, burst, 200);
  const rx0 = sink.rxPackets;
  const rounds = Math.max(1, Math.floor(65536 / burst));
  const secs = timed(seconds, () => dp.fn.pipe_run(gen.g, tx, sink.g, rx, burst, rounds));
  const got = sink.rxPackets - rx0;
  gen.budget = 0;
  dp.fn.pipe_run(gen.g, tx, sink.g, rx, burst, 4);
  if (gen.txPackets !== sink.rxPackets) throw new WasmapError('CONSERVATION', `pipe: sent ${gen.txPackets} != received ${sink.rxPackets} (pipes never drop)`);
  const problems = pipe.region.audit();
  if (problems.length) throw new WasmapError('CONSERVATION', `pipe buffers: ${problems.slice(0, 3).join('; ')}`);
  return { mpps: Number(got) / secs / 1e6, sent: gen.txPackets, received: sink.rxPackets, drops: 0n };
}

/** Software TSO: one 64 KiB TCP/IPv4 frame (virtio-net header, gso_size 1448) cut into
 *  1514-byte frames with every header and checksum fixed. Returns Gbit/s of input. */
function runTso(seconds: number): number {
  const dp = new Datapath();
  const len = 12 + 54 + 65000, IN = dp.alloc(len, 64), room = dp.fn.vnet_out_room(len), OUT = dp.alloc(room, 64), LENS = dp.alloc(1024, 64);
  const u8 = dp.u8;
  u8.set([1, 1, 0, 0, 0xa8, 0x05, 34, 0, 16, 0], IN); // NEEDS_CSUM, TCPV4, gso_size 1448, csum at 34+16
  const f = IN + 12;
  u8.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0, 0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2], f);
  u8[f + 34 + 12] = 0x50; u8[f + 34 + 13] = 0x18;
  const n = dp.fn.vnet_convert(IN, len, 12, 0, OUT, LENS, 65535, 15);
  if (n !== Math.ceil(65000 / 1448)) throw new WasmapError('EBENCH', `tso-segment made ${n} segments`);
  let frames = 0;
  const secs = timed(seconds, () => { for (let i = 0; i < 100; i++) frames += dp.fn.vnet_convert(IN, len, 12, 0, OUT, LENS, 65535, 15) > 0 ? 1 : 0; });
  return frames * len * 8 / secs / 1e9;
}

/** Checksum of 1500-byte buffers (SIMD). Returns Gbit/s. */
function runCsum(seconds: number): number {
  const dp = new Datapath();
  const P = dp.alloc(1500 * 64, 64);
  for (let i = 0; i < 1500 * 64; i++) dp.u8[P + i] = (i * 7) & 255;
  let bytes = 0, sink = 0;
  const secs = timed(seconds, () => { for (let i = 0; i < 64; i++) sink ^= dp.fn.csum_bytes(P + 1500 * i, 1500); bytes += 64 * 1500; });
  if (sink < 0) throw new Error('unreachable');
  return bytes * 8 / secs / 1e9;
}

function runNative(nports: number, len: number, batch: number, burst: number, seconds: number): RunOut {
  const exe = findBuildFile('vale-ref');
  if (!exe) throw new WasmapError('NO_NATIVE', 'build/vale-ref is missing: run `npm run build:native` (needs a C compiler)');
  const out = execFileSync(exe, ['--ports', String(nports), '--len', String(len), '--batch', String(batch), '--burst', String(burst), '--seconds', String(seconds)], { encoding: 'utf8' });
  const j = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { mpps: number; sent: number; received: number; drops: number };
  return { mpps: j.mpps, sent: BigInt(j.sent), received: BigInt(j.received), drops: BigInt(j.drops) };
}

function many(runs: number, f: () => RunOut): { mpps: number; last: RunOut } {
  const outs: RunOut[] = [];
  for (let i = 0; i < runs; i++) outs.push(f());
  return { mpps: median(outs.map((o) => o.mpps)), last: outs[outs.length - 1] };
}

/** The example modules (build/examples, `npm run build:examples`). */
function exampleFn(name: string): PreparedFn {
  const path = findBuildFile(`examples/${name}.wasm`);
  if (!path) throw new WasmapError('NO_EXAMPLES', `build/examples/${name}.wasm is missing: run \`npm run build:examples\``);
  return compileFn(new Uint8Array(readFileSync(path)));
}

/** The router's 10 240-prefix table: 10.X.Y.0/24 for X in 0..39 (even X → port 0, odd → port 1),
 *  under a 10.0.0.0/8 default to port 0 and a /16 per X. Port p's generator sends to the router's
 *  MAC on p, to 10.(1-p).*.*, so every frame crosses to the other port via a /24. */
function routerSetup(): FnSetup {
  const routerMac = (p: number) => `02:00:00:00:00:${(0xa0 + p).toString(16)}`;
  const host = (p: number) => `02:00:00:00:00:${(p + 1).toString(16).padStart(2, '0')}`;
  const routes: { prefix: string; port: number; via: string }[] = [{ prefix: '10.0.0.0/8', port: 0, via: host(0) }];
  for (let x = 0; x < 40; x++) {
    routes.push({ prefix: `10.${x}.0.0/16`, port: x & 1, via: host(x & 1) });
    for (let y = 0; y < 256; y++) routes.push({ prefix: `10.${x}.${y}.0/24`, port: x & 1, via: host(x & 1) });
  }
  return {
    module: exampleFn('router'),
    config: { ports: [{ port: 0, mac: routerMac(0) }, { port: 1, mac: routerMac(1) }], routes },
    gen: (i) => ({ dstMac: routerMac(i), src: `10.${i}.0.1`, dst: `10.${1 - i}.0.1-10.${1 - i}.255.254:1234` }),
  };
}

const SCENARIOS = ['tso-segment', 'csum-1500', 'pipe-60', 'pipe-60-rubbish', 'switch-2port-60', 'switch-2port-1514', 'switch-8port-60', 'switch-batch-sweep', 'native-2port-60', 'switch-2port-60-fn', 'router-10k-60', 'passthrough-2guests-60'];

export async function bench(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { only: { type: 'string' }, seconds: { type: 'string' }, runs: { type: 'string', default: '3' }, json: { type: 'boolean', default: false }, netns: { type: 'boolean', default: false }, vm: { type: 'boolean', default: false }, vhost: { type: 'boolean', default: false }, 'spin-us': { type: 'string' }, svg: { type: 'string' }, from: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write(BENCH_HELP); return 0; }
  const charts = (results: unknown) => {
    if (!values.svg) return;
    for (const f of writeCharts(values.svg, results as { name: string }[])) process.stderr.write(`wrote ${f}\n`);
  };
  if (values.from) { // draw what an earlier --json run printed
    if (!values.svg) throw new WasmapError('EINVAL', '--from FILE draws charts: give --svg DIR too');
    let rows: unknown;
    try { rows = JSON.parse(readFileSync(values.from, 'utf8')); } catch (e) { throw new WasmapError('EINVAL', `--from ${values.from}: ${(e as Error).message}`); }
    if (!Array.isArray(rows) || !rows.every((r) => r && typeof r === 'object' && typeof r.name === 'string')) throw new WasmapError('EINVAL', `--from ${values.from}: expected the JSON array a 'wasmap bench … --json' run prints`);
    charts(rows);
    return 0;
  }
  if (values.svg && values.vm) throw new WasmapError('EINVAL', '--svg draws the in-process and --netns benchmarks; --vm has no charts yet');
  if (values.vm) {
    if (values.netns) throw new WasmapError('EINVAL', '--vm and --netns are separate benchmarks: give one');
    const secs = Number(values.seconds ?? 5), runs = Number(values.runs), spinUs = Number(values['spin-us'] ?? 0);
    if (!Number.isInteger(secs) || secs < 1 || secs > 3600) throw new WasmapError('EINVAL', `--seconds must be a whole number 1..3600 with --vm (iperf3 -t), not '${values.seconds}'`);
    if (!Number.isInteger(runs) || runs < 1 || runs > 100) throw new WasmapError('EINVAL', `--runs must be a whole number 1..100, not '${values.runs}'`);
    if (!Number.isInteger(spinUs) || spinUs < 0 || spinUs > 10_000_000) throw new WasmapError('EINVAL', `--spin-us must be 0..10000000, not '${values['spin-us']}'`);
    return benchVm({ seconds: secs, runs, json: values.json, only: values.only?.split(','), spinUs });
  }
  if (values.vhost) {
    const secs = Number(values.seconds ?? 5), runs = Number(values.runs);
    if (!(secs >= 2 && secs <= 600)) throw new WasmapError('EINVAL', `--seconds must be 2..600 with --vhost, not '${values.seconds}'`);
    if (!Number.isInteger(runs) || runs < 1 || runs > 100) throw new WasmapError('EINVAL', `--runs must be a whole number 1..100, not '${values.runs}'`);
    if (process.getuid?.() !== 0) throw new WasmapError('EPERM', 'bench --vhost needs root (DPDK maps its memory, taskset pins it)');
    await benchVhost({ seconds: secs, runs, json: values.json, only: values.only?.split(',') });
    return 0;
  }
  if (values.netns) {
    const secs = Number(values.seconds ?? 5);
    if (!(secs >= 1)) throw new WasmapError('EINVAL', `--seconds must be ≥ 1 with --netns, not '${values.seconds}'`);
    const runs = Number(values.runs);
    if (!Number.isInteger(runs) || runs < 1 || runs > 100) throw new WasmapError('EINVAL', `--runs must be a whole number 1..100, not '${values.runs}'`);
    charts(await benchNetns(secs, values.json, values.only?.split(','), runs));
    return 0;
  }
  values.seconds ??= '2';
  const seconds = Number(values.seconds), runs = Number(values.runs);
  if (!(seconds > 0)) throw new WasmapError('EINVAL', `--seconds must be positive, not '${values.seconds}'`);
  if (!Number.isInteger(runs) || runs < 1) throw new WasmapError('EINVAL', `--runs must be a whole number ≥ 1, not '${values.runs}'`);
  const only = values.only ? values.only.split(',') : SCENARIOS;
  for (const n of only) if (!SCENARIOS.includes(n)) throw new WasmapError('EINVAL', `unknown scenario '${n}'; scenarios: ${SCENARIOS.join(', ')}`);
  const want = (n: string) => only.includes(n) || (n === 'native-2port-60' && only.includes('switch-2port-60'));
  const results: BenchResult[] = [];
  const log = (s: string) => { if (!values.json) process.stderr.write(c.dim(s) + '\n'); else process.stderr.write(s + '\n'); };
  const t0 = performance.now();
  const add = (name: string, frame: number, ports: number, batch: number, burst: number, m: { mpps: number; last: RunOut }, note?: string) => {
    const r: BenchResult = { name, mpps: +m.mpps.toFixed(3), gbps: +(m.mpps * frame * 8 / 1000).toFixed(3), frame, ports, batch, burst, runs, seconds,
      sent: Number(m.last.sent), received: Number(m.last.received), drops: Number(m.last.drops) };
    if (note) r.note = note;
    results.push(r);
    log(`  [${Math.max(1, only.indexOf(name) + 1)}/${only.length}, ${((performance.now() - t0) / 1000).toFixed(0)} s] ${name}${name === 'switch-batch-sweep' ? ` batch ${batch}` : ''}: ${norm(m.mpps * 1e6, 'pps')}`);
    return r;
  };
  log(`wasmap bench: ${runs} run(s) × ${seconds} s per scenario on ${cpus()[0]?.model ?? 'unknown CPU'}`);
  // The wasm switch and its native reference run in short alternating slices (order flipped
  // every pair), so both see the same moments of a noisy shared machine; the ratio is the
  // median of the per-pair ratios.
  let nativeOk = want('native-2port-60');
  const natives: RunOut[] = [], wasms: RunOut[] = [], ratios: number[] = [];
  if (want('native-2port-60') || want('switch-2port-60')) {
    const pairs = runs * 4, slice = seconds / 4;
    for (let i = 0; i < pairs; i++) {
      const order = i % 2 ? ['wasm', 'native'] : ['native', 'wasm'];
      let w: RunOut | undefined, n: RunOut | undefined;
      for (const which of order) {
        if (which === 'wasm' && want('switch-2port-60')) wasms.push(w = runSwitch(2, 60, 1024, 512, slice));
        if (which === 'native' && nativeOk) {
          try { natives.push(n = runNative(2, 60, 1024, 512, slice)); } catch (e) {
            if (!(e instanceof WasmapError && e.code === 'NO_NATIVE')) throw e;
            process.stderr.write(c.red(`warning: ${e.message}; no native reference, so no ratio\n`));
            nativeOk = false;
          }
        }
      }
      if (w && n) ratios.push(w.mpps / n.mpps);
    }
  }
  const summary = (outs: RunOut[]) => ({ mpps: median(outs.map((o) => o.mpps)), last: outs[outs.length - 1] });
  if (natives.length) add('native-2port-60', 60, 2, 1024, 512, summary(natives), 'C, cc -O2, same algorithm');
  if (want('pipe-60')) add('pipe-60', 60, 2, 512, 512, many(runs, () => runPipe(60, 512, seconds)), 'zero-copy; every frame written');
  if (want('pipe-60-rubbish')) add('pipe-60-rubbish', 60, 2, 512, 512, many(runs, () => runPipe(60, 512, seconds, true)), 'pkt-gen -r: lengths only');
  if (wasms.length) {
    const r = add('switch-2port-60', 60, 2, 1024, 512, summary(wasms));
    if (ratios.length) r.ratio = +median(ratios).toFixed(3);
  }
  if (want('switch-2port-60-fn')) {
    // built-in learning, a trivial module and the learning module, in alternating slices
    const kinds: [string, FnSetup | undefined][] = [['builtin', undefined], ['forward-other', { module: exampleFn('forward-other') }], ['l2-learn', { module: exampleFn('l2-learn') }]];
    const outs = new Map<string, RunOut[]>(kinds.map(([k]) => [k, []]));
    const rel = new Map<string, number[]>(kinds.map(([k]) => [k, []]));
    for (let i = 0; i < runs * 3; i++) {
      const order = i % 2 ? [...kinds].reverse() : kinds;
      const got = new Map<string, RunOut>();
      for (const [k, fn] of order) { const o = runSwitch(2, 60, 1024, 512, seconds / 3, fn); got.set(k, o); outs.get(k)!.push(o); }
      for (const [k] of kinds) rel.get(k)!.push(got.get(k)!.mpps / got.get('builtin')!.mpps);
    }
    for (const [k] of kinds) {
      const r = add(`switch-2port-60-fn:${k}`, 60, 2, 1024, 512, summary(outs.get(k)!), k === 'builtin' ? 'built-in learning lookup (the reference)' : `user module ${k}.wasm; ratio = / built-in (paired slices)`);
      if (k !== 'builtin') r.ratio = +median(rel.get(k)!).toFixed(3);
    }
  }
  if (want('router-10k-60')) {
    const setup = routerSetup();
    add('router-10k-60', 60, 2, 1024, 512, many(runs, () => runSwitch(2, 60, 1024, 512, seconds, setup)), 'router.wasm, 10 240 prefixes: LPM, MAC rewrite, TTL-1 + checksum');
  }
  if (want('switch-2port-1514')) add('switch-2port-1514', 1514, 2, 1024, 512, many(runs, () => runSwitch(2, 1514, 1024, 512, seconds)));
  if (want('switch-8port-60')) {
    const r = add('switch-8port-60', 60, 8, 1024, 512, many(runs, () => runSwitch(8, 60, 1024, 512, seconds)), 'pairs 0<->1 … 6<->7, aggregate; ratio = / 2-port');
    const two = results.find((x) => x.name === 'switch-2port-60');
    if (two) r.ratio = +(r.mpps / two.mpps).toFixed(3);
  }
  for (const [name, f, note] of [['tso-segment', runTso, '64 KiB TCPv4 TSO frame -> 45 x 1514-byte frames, input Gbit/s'], ['csum-1500', runCsum, 'SIMD Internet checksum of 1500-byte buffers']] as const) {
    if (!want(name)) continue;
    const g = median(Array.from({ length: runs }, () => f(seconds)));
    const frame = name === 'tso-segment' ? 65066 : 1500;
    results.push({ name, mpps: +(g * 1e3 / 8 / frame).toFixed(4), gbps: +g.toFixed(2), frame, ports: 0, batch: 1, burst: 1, runs, seconds, sent: 0, received: 0, drops: 0, note });
    log(`  ${name}: ${g.toFixed(2)} Gbit/s`);
  }
  if (want('passthrough-2guests-60')) {
    const outs: PtBenchOut[] = [];
    for (let i = 0; i < runs; i++) outs.push(await runPassthrough(seconds));
    const m = median(outs.map((o) => o.mpps)), last = outs[outs.length - 1];
    const r = add('passthrough-2guests-60', 60, 2, 1024, 4096, { mpps: m, last: { mpps: m, sent: BigInt(last.sent), received: BigInt(last.received), drops: BigInt(last.drops) } }, 'guest processes via CSB; ratio = / switch-2port-60');
    r.kicks_per_packet = +median(outs.map((o) => o.kicksPerPacket)).toFixed(5);
    r.kicks_switch_to_guests = last.kicksSwitchToGuests; r.kicks_guests_to_switch = last.kicksGuestsToSwitch;
    r.idle_cpu_switch_pct = +median(outs.map((o) => o.idleCpuSwitch)).toFixed(1); r.idle_cpu_guest_pct = +median(outs.map((o) => o.idleCpuGuest)).toFixed(1);
    const two = results.find((x) => x.name === 'switch-2port-60');
    if (two) r.ratio = +(m / two.mpps).toFixed(3);
    log(`    kicks per packet ${r.kicks_per_packet} (switch→guests ${r.kicks_switch_to_guests}, guests→switch ${r.kicks_guests_to_switch}); idle CPU: switch ${r.idle_cpu_switch_pct} %, guest ${r.idle_cpu_guest_pct} %`);
  }
  if (want('switch-batch-sweep')) {
    for (let b = 1; b <= 1024; b *= 2) add('switch-batch-sweep', 60, 2, b, b, many(runs, () => runSwitch(2, 60, b, b, Math.min(seconds, 1))));
  }
  if (values.json) console.log(JSON.stringify(results, null, 2));
  else {
    console.log(table(['scenario', 'Mpps', 'Gbit/s', 'frame', 'ports', 'batch', 'ratio', 'note'],
      results.map((r) => [r.name, r.mpps.toFixed(2), r.gbps.toFixed(2), r.frame, r.ports, r.batch, r.ratio?.toFixed(2) ?? '', r.note ?? (r.name === 'switch-2port-60' ? 'ratio = wasm / native (paired slices)' : '')])));
    console.log(c.dim('Mpps and ratios are medians; every run checked sent + flood copies = received + drops.'));
  }
  charts(results);
  return 0;
}
