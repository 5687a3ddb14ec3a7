// `wasmap bench --vhost`: vhost-user back-ends measured the way they are measured without VMs —
// DPDK's virtio-user driver (dpdk-testpmd) is the guest's virtio-net driver over the sockets.
// The back-ends, in turn on the same sockets: wasmap (a switch daemon with two vhost-user
// ports), DPDK's own vhost PMD (testpmd io forwarding between two net_vhost ports) and
// OVS-DPDK (dpdkvhostuser ports) where its package is installed. Placement, the same for every
// back-end: the back-end alone on CPU 1 (taskset), the front-end's polling core on CPU 0.
// One testpmd holds both virtio-user ports in flowgen mode: it sends on each port and drains
// both, so the back-end forwards both ways. (One way needs a sender and a receiver; two
// testpmd processes polling on one CPU starve each other's 256-slot rings between scheduler
// time slices — ~15 kpps whatever the back-end — and testpmd has no per-port mode: not measured.)
// Rate = the receiving front-end's Rx-pps (testpmd's per-second port statistics), median of
// the samples after a warm-up; rows carry the back-end's CPU and, for wasmap, its kicks and
// interrupts per second and the check that every frame it took is delivered or counted.
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { WasmapError } from '../errors.js';
import { findBuildFile } from '../paths.js';
import { ctlRequest } from '../ctl/client.js';
import { c, median, table } from './format.js';

export interface VhostResult { name: string; backend: string; direction: 'both-ways'; frame: number; mpps: number; gbps: number; runs: number; cpu_pct: number | null;
  kicks_per_s?: number; calls_per_s?: number; ratio_vs_dpdk?: number; ratio_vs_ovs?: number; balanced?: boolean; note?: string; skipped?: string }

const P = `bv${process.pid % 10000}`, dir = `/tmp/wasmap-${P}`;
const sockA = `${dir}-a.sock`, sockB = `${dir}-b.sock`, ctl = `${dir}-ctl.sock`;
const MAC_A = '02:00:00:00:0a:01', MAC_B = '02:00:00:00:0a:02';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

interface Proc { p: ChildProcess; out: () => string }
function start(argv: string[]): Proc {
  const p = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout!.on('data', (d) => { out += d; if (out.length > 4e6) out = out.slice(-2e6); });
  p.stderr!.on('data', (d) => { out += d; });
  return { p, out: () => out };
}
async function stop(x: Proc | null, sig: NodeJS.Signals = 'SIGINT'): Promise<void> {
  if (!x || x.p.exitCode !== null || x.p.signalCode !== null) return;
  x.p.kill(sig);
  await Promise.race([new Promise((r) => x.p.once('exit', r)), sleep(5000).then(() => x.p.kill('SIGKILL'))]);
}
async function until(what: string, f: () => boolean | Promise<boolean>, ms = 20000, log?: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (await f()) return; await sleep(100); }
  throw new WasmapError('EBENCH', `${what} did not happen in ${ms / 1000} s${log ? `: ${log().slice(-800)}` : ''}`);
}
function cpuSeconds(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8'), f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}
const OVS_DPDK = '/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk';
const ovsDir = `${dir}-ovs`;
const front = ['dpdk-testpmd', '--no-huge', '-m', '256', '--iova-mode=va', '--no-pci', '--log-level', 'lib.eal:error'];

interface Backend { proc: Proc | null; pid: number; socks: [string, string]; stop?: () => void }

/** OVS-DPDK: a private ovsdb and ovs-vswitchd-dpdk; its dpdkvhostuser sockets live in its rundir. */
async function ovsDpdk(): Promise<Backend> {
  rmSync(ovsDir, { recursive: true, force: true });
  mkdirSync(ovsDir, { recursive: true });
  const env = { ...process.env, OVS_RUNDIR: ovsDir, OVS_LOGDIR: ovsDir, OVS_DBDIR: ovsDir };
  const db = `unix:${ovsDir}/db.sock`;
  const run = (argv: string[]) => {
    const r = spawnSync(argv[0], argv.slice(1), { env, encoding: 'utf8', timeout: 30000 });
    if (r.status !== 0) throw new WasmapError('EBENCH', `${argv.slice(0, 3).join(' ')} failed: ${(r.stderr || r.stdout || '').trim().slice(0, 400)}`);
  };
  const stopAll = () => {
    for (const f of ['vswitchd.pid', 'ovsdb.pid']) { try { process.kill(Number(readFileSync(`${ovsDir}/${f}`, 'utf8')), 'SIGKILL'); } catch { /* not running */ } }
    rmSync(ovsDir, { recursive: true, force: true });
  };
  try {
    run(['ovsdb-tool', 'create', `${ovsDir}/conf.db`, '/usr/share/openvswitch/vswitch.ovsschema']);
    run(['ovsdb-server', `${ovsDir}/conf.db`, `--remote=punix:${ovsDir}/db.sock`, `--pidfile=${ovsDir}/ovsdb.pid`, '--detach', `--log-file=${ovsDir}/ovsdb.log`]);
    // --no-pci: EAL must never probe this machine's own NIC
    run(['ovs-vsctl', `--db=${db}`, '--no-wait', 'init', '--', 'set', 'Open_vSwitch', '.', 'other_config:dpdk-init=true', 'other_config:dpdk-socket-mem=1024',
      'other_config:pmd-cpu-mask=0x2', 'other_config:dpdk-lcore-mask=0x1', `other_config:dpdk-extra=--no-pci --file-prefix=${P}ovs`]);
    run([OVS_DPDK, db, `--pidfile=${ovsDir}/vswitchd.pid`, '--detach', `--log-file=${ovsDir}/vswitchd.log`]);
    run(['ovs-vsctl', `--db=${db}`, '--timeout=30', 'add-br', 'br0', '--', 'set', 'bridge', 'br0', 'datapath_type=netdev']);
    for (const n of ['va', 'vb']) run(['ovs-vsctl', `--db=${db}`, '--timeout=30', 'add-port', 'br0', n, '--', 'set', 'Interface', n, 'type=dpdkvhostuser']);
    const pid = Number(readFileSync(`${ovsDir}/vswitchd.pid`, 'utf8'));
    await until('OVS-DPDK to create its vhost-user sockets', () => existsSync(`${ovsDir}/va`) && existsSync(`${ovsDir}/vb`), 20000, () => { try { return readFileSync(`${ovsDir}/vswitchd.log`, 'utf8'); } catch { return ''; } });
    return { proc: null, pid, socks: [`${ovsDir}/va`, `${ovsDir}/vb`], stop: stopAll };
  } catch (e) { stopAll(); throw e; }
}

/** 2 MiB hugepages for OVS-DPDK (it cannot run without them): at least 512 (1 GiB), the old count restored after. */
function withHugepages(): () => void {
  const f = '/proc/sys/vm/nr_hugepages', old = Number(readFileSync(f, 'utf8'));
  if (old >= 512) return () => {};
  writeFileSync(f, '512');
  if (Number(readFileSync(f, 'utf8')) < 512) { writeFileSync(f, String(old)); throw new WasmapError('ENOMEM', 'OVS-DPDK needs 512 free 2 MiB hugepages (1 GiB) and the kernel could not reserve them'); }
  return () => writeFileSync(f, String(old));
}

/** Start back-end `kind` serving two vhost-user sockets on CPU 1. */
async function backend(kind: string): Promise<Backend> {
  if (kind === 'ovs-dpdk') return ovsDpdk();
  if (kind === 'wasmap') {
    const cli = findBuildFile('cli.mjs');
    if (!cli) throw new WasmapError('NO_MODULE', 'build/cli.mjs not found');
    const proc = start(['taskset', '-c', '1', process.execPath, cli, 'switch', 'vale0', '--socket', ctl]);
    await until('the switch daemon to listen', () => proc.out().includes('listening'), 20000, proc.out);
    await ctlRequest(ctl, 'attach', { switch: 'vale0', port: `vhost-user:${sockA}`, name: 'va' });
    await ctlRequest(ctl, 'attach', { switch: 'vale0', port: `vhost-user:${sockB}`, name: 'vb' });
    return { proc, pid: proc.p.pid!, socks: [sockA, sockB] };
  }
  // DPDK's vhost PMD as a two-port io forwarder: its polling lcore on CPU 1, main on CPU 0
  const proc = start(['dpdk-testpmd', '--no-huge', '-m', '512', '--no-pci', '-l', '1,0', '--main-lcore', '0', '--file-prefix', `${P}be`, '--log-level', 'lib.eal:error',
    '--vdev', `net_vhost0,iface=${sockA},queues=1`, '--vdev', `net_vhost1,iface=${sockB},queues=1`, '--', '--forward-mode=io', '--auto-start', '--stats-period', '3600', '--total-num-mbufs', '16384']);
  await until('dpdk-testpmd (vhost) to start', () => proc.out().includes('Port statistics') || proc.out().includes('Press enter'), 20000, proc.out);
  return { proc, pid: proc.p.pid!, socks: [sockA, sockB] };
}

/** Rx-pps samples of testpmd's periodic port statistics, per period summed over its ports. */
function rxPps(out: string, ports: number): number[] {
  const v = [...out.matchAll(/Rx-pps:\s+(\d+)/g)].map((m) => Number(m[1]));
  const sums: number[] = [];
  for (let i = 0; i + ports <= v.length; i += ports) sums.push(v.slice(i, i + ports).reduce((a, b) => a + b, 0));
  return sums;
}

async function once(kind: string, frame: number, seconds: number): Promise<{ mpps: number; cpu: number; kicks?: number; calls?: number; balanced?: boolean }> {
  for (const f of [sockA, sockB, ctl]) rmSync(f, { force: true });
  const be = await backend(kind);
  const fronts: Proc[] = [];
  try {
    const len = String(frame - 4); // testpmd's --txpkts excludes the FCS: 64-byte frames are 60 bytes
    const vdev = (i: number, path: string, mac: string) => ['--vdev', `net_virtio_user${i},path=${path},queues=1,mac=${mac}`];
    fronts.push(start([...front, '-l', '0,1', '--main-lcore', '1', '--file-prefix', `${P}f`, ...vdev(0, be.socks[0], MAC_A), ...vdev(1, be.socks[1], MAC_B),
      '--', '--forward-mode=flowgen', `--eth-peer=0,${MAC_B}`, `--eth-peer=1,${MAC_A}`, '--txpkts', len, '--auto-start', '--stats-period', '1', '--total-num-mbufs', '16384']));
    const rx = fronts[0];
    await until('traffic to arrive', () => rxPps(rx.out(), 2).some((x) => x > 0), 20000, rx.out);
    const c0 = cpuSeconds(be.pid), t0 = performance.now();
    const w0 = kind === 'wasmap' ? await ctlRequest(ctl, 'stats', { switch: 'vale0' }) : null;
    const skip = rxPps(rx.out(), 2).length + 1; // warm-up: what came before the window
    await sleep(seconds * 1000);
    const cpu = (cpuSeconds(be.pid) - c0) / ((performance.now() - t0) / 1000) * 100;
    const w1 = kind === 'wasmap' ? await ctlRequest(ctl, 'stats', { switch: 'vale0' }) : null;
    const samples = rxPps(rx.out(), 2).slice(skip);
    if (!samples.length) throw new WasmapError('EBENCH', `no statistics from the receiving testpmd: ${rx.out().slice(-500)}`);
    const out: { mpps: number; cpu: number; kicks?: number; calls?: number; balanced?: boolean } = { mpps: median(samples) / 1e6, cpu };
    if (w0 && w1) {
      type Q = { kicks: number; calls: number; frames: number; dropBig: number; dropBad: number };
      type Pt = { name: string; txPackets: number; rxPackets: number; dropFull: number; dropNoDst: number; downDrops: number; queues: { rx: Q; tx: Q } };
      const ports = (w: unknown) => (w as { ports: Pt[] }[])[0].ports;
      const sum = (w: unknown, f: (p: Pt) => number) => ports(w).reduce((s, p) => s + f(p), 0);
      const dt = (performance.now() - t0) / 1000;
      out.kicks = (sum(w1, (p) => p.queues.tx.kicks + p.queues.rx.kicks) - sum(w0, (p) => p.queues.tx.kicks + p.queues.rx.kicks)) / dt;
      out.calls = (sum(w1, (p) => p.queues.tx.calls + p.queues.rx.calls) - sum(w0, (p) => p.queues.tx.calls + p.queues.rx.calls)) / dt;
      // every frame the switch took from a guest reached the other guest's queue or was counted
      // (the frames still in flight when read are the small slack allowed: one ring each way)
      const took = sum(w1, (p) => p.txPackets), landed = sum(w1, (p) => p.queues.rx.frames + p.queues.rx.dropBig + p.queues.rx.dropBad + p.dropFull + p.dropNoDst + p.downDrops);
      out.balanced = took - landed >= 0 && took - landed <= 2 * 1024;
    }
    return out;
  } finally {
    for (const f of fronts.reverse()) await stop(f);
    await stop(be.proc, kind === 'wasmap' ? 'SIGTERM' : 'SIGINT');
    be.stop?.();
    for (const f of [sockA, sockB, ctl]) rmSync(f, { force: true });
  }
}

export async function benchVhost(o: { seconds: number; runs: number; json: boolean; only?: string[] }): Promise<VhostResult[]> {
  if (!have('dpdk-testpmd')) throw new WasmapError('ENOENT', 'bench --vhost needs dpdk-testpmd (apt-get install dpdk-dev)');
  if (!have('taskset')) throw new WasmapError('ENOENT', 'bench --vhost needs taskset (apt-get install util-linux)');
  const backends = ['wasmap', 'dpdk-vhost'];
  const skippedBackends = new Map<string, string>();
  if (existsSync(OVS_DPDK) && have('ovsdb-server')) backends.push('ovs-dpdk');
  else skippedBackends.set('ovs-dpdk', 'needs ovs-vswitchd-dpdk (apt-get install openvswitch-switch-dpdk)');
  const cases: ['both-ways', number][] = [['both-ways', 64], ['both-ways', 1518]];
  const want = (b: string, d: string, f: number) => !o.only || o.only.some((x) => `${b}-${d}-${f}`.includes(x));
  const log = (s: string) => process.stderr.write((o.json ? s : c.dim(s)) + '\n');
  const per = new Map<string, { mpps: number[]; cpu: number[]; kicks: number[]; calls: number[]; balanced: boolean[] }>();
  const failed = new Map<string, string>();
  const t0 = performance.now();
  const todo = cases.flatMap(([d, f]) => backends.filter((b) => want(b, d, f)).map((b) => [b, d, f] as const));
  const restore = todo.some(([b]) => b === 'ovs-dpdk') ? (() => { try { return withHugepages(); } catch (e) { skippedBackends.set('ovs-dpdk', (e as Error).message); return () => {}; } })() : () => {};
  try {
  for (let r = 0; r < o.runs; r++) {
    for (const [i, [b, d, f]] of todo.entries()) { // back-ends alternate within each case and run
      const key = `${b}-${d}-${f}`;
      if (failed.has(key) || skippedBackends.has(b)) continue;
      log(`  run ${r + 1}/${o.runs}, ${i + 1}/${todo.length} ${key} (${((performance.now() - t0) / 1000).toFixed(0)} s elapsed)`);
      try {
        const m = await once(b, f, o.seconds);
        const e = per.get(key) ?? { mpps: [], cpu: [], kicks: [], calls: [], balanced: [] };
        e.mpps.push(m.mpps); e.cpu.push(m.cpu); if (m.kicks !== undefined) { e.kicks.push(m.kicks); e.calls.push(m.calls!); e.balanced.push(m.balanced!); }
        per.set(key, e);
      } catch (e) { failed.set(key, (e as Error).message.split('\n')[0].slice(0, 300)); log(`  ${key}: ${failed.get(key)}`); }
    }
  }
  } finally { restore(); }
  const rows = [...todo, ...cases.flatMap(([d, f]) => [...skippedBackends.keys()].filter((b) => !backends.includes(b) && want(b, d, f)).map((b) => [b, d, f] as const))];
  const results: VhostResult[] = rows.map(([b, d, f]) => {
    const key = `${b}-${d}-${f}`, e = per.get(key);
    if (!e) return { name: key, backend: b, direction: d, frame: f, mpps: 0, gbps: 0, runs: 0, cpu_pct: null, skipped: failed.get(key) ?? skippedBackends.get(b) ?? 'not measured' };
    const mpps = median(e.mpps);
    return { name: key, backend: b, direction: d, frame: f, mpps: +mpps.toFixed(3), gbps: +(mpps * f * 8 / 1000).toFixed(2), runs: e.mpps.length, cpu_pct: +median(e.cpu).toFixed(0),
      ...(e.kicks.length ? { kicks_per_s: Math.round(median(e.kicks)), calls_per_s: Math.round(median(e.calls)), balanced: e.balanced.every(Boolean) } : {}) };
  });
  for (const r of results) {
    const ref = results.find((x) => x.backend === 'dpdk-vhost' && x.direction === r.direction && x.frame === r.frame && x.runs);
    if (ref && r.runs) r.ratio_vs_dpdk = +(r.mpps / ref.mpps).toFixed(3);
    const ovs = results.find((x) => x.backend === 'ovs-dpdk' && x.direction === r.direction && x.frame === r.frame && x.runs);
    if (ovs && r.runs && r.backend !== 'ovs-dpdk') r.ratio_vs_ovs = +(r.mpps / ovs.mpps).toFixed(3);
  }
  if (o.json) console.log(JSON.stringify(results, null, 2));
  else {
    console.log(table(['back-end', 'direction', 'frame', 'Mpps', 'Gbit/s', '÷ DPDK', '÷ OVS', 'CPU %', 'kicks/s', 'irqs/s', 'books'],
      results.map((r) => r.runs ? [r.backend, r.direction, r.frame, r.mpps.toFixed(2), r.gbps.toFixed(2), r.ratio_vs_dpdk?.toFixed(2) ?? '', r.ratio_vs_ovs?.toFixed(2) ?? '', String(r.cpu_pct), r.kicks_per_s ?? '', r.calls_per_s ?? '', r.balanced === undefined ? '' : r.balanced ? 'ok' : 'UNBALANCED']
        : [r.backend, r.direction, r.frame, '-', '-', '', '', '', '', '', `skipped: ${r.skipped}`])));
    console.log(c.dim(`medians of ${o.runs} run(s) × ${o.seconds} s; front-ends: dpdk-testpmd virtio-user on CPU 0, the back-end's polling thread alone on CPU 1 (OVS: its PMD thread); Mpps = what the receiving front-end got`));
  }
  return results;
}
