// `wasmap bench --vm`: two QEMU guests (Debian kernel, virtio-net) and iperf3 between them,
// once through a wasmap switch (vhost-user ports) and once through the standard Linux path
// (TAP + vhost-net + Linux bridge), in one run, so the ratio compares like with like:
//   vm-tcp-*     iperf3 TCP guest A -> guest B, Gbit/s at the receiver
//   vm-udp64-*   iperf3 UDP with 64-byte payloads, -b 0: received Mpps (packets - lost)
// Everything lives in one fresh network namespace with a per-run prefix; guests, TAPs, the
// bridge, the switch daemon and its sockets go away afterwards, also on failure or Ctrl-C.
// Traffic only flows between the two guests: nothing in the namespace routes anywhere else.
// Only two guests run at a time (a 2-core machine has room for no more).
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WasmapError } from '../errors.js';
import { findBuildFile } from '../paths.js';
import { ctlRequest } from '../ctl/client.js';
import { accel, ensureImage, qemuAvailable, startGuest, vhostNetAvailable, QEMU, type Guest, type GuestOptions, type ImagePaths } from '../vm/qemu.js';
import { c, median, table } from './format.js';

export type VmPath = 'wasmap' | 'bridge';
export const VM_PATHS: VmPath[] = ['bridge', 'wasmap'];

/** The issue's targets for wasmap / bridge (TCP Gbit/s, UDP received Mpps). */
const TARGET = { tcp: 1.0, udp64: 2.0 } as const;

export interface PortCounters { port: string; kind: string; tx: number; rx: number; drops: number }
export interface SwitchCounters { ports: PortCounters[]; flood_extra: number; seg_extra: number; conservation: string }

export interface VmResult {
  name: string;
  /** TCP: receiver Gbit/s; UDP: receiver payload Gbit/s; null when the path failed */
  gbps: number | null;
  /** UDP: received packets per second / 1e6; null for TCP and failed paths */
  mpps: number | null;
  /** wasmap rows: wasmap / bridge of this run (TCP by gbps, UDP by mpps) */
  ratio?: number;
  target_ratio?: number;
  meets_target?: boolean;
  note: string;
  path: VmPath;
  test: 'tcp' | 'udp64';
  seconds: number;
  runs: number;
  /** the value of each run (gbps for TCP, mpps for UDP), in run order */
  per_run?: number[];
  accel: 'kvm' | 'tcg';
  /** the bridge path's tap netdev: vhost=on needs /dev/vhost-net; null on wasmap rows */
  vhost_net: 'on' | 'off' | null;
  guest: string;
  boot_s?: number;
  /** the first ping that came back (ARP included), ms */
  first_ping_ms?: number;
  retransmits?: number;
  bytes?: number;
  sent_pps?: number;
  received_pps?: number;
  loss_pct?: number;
  /** wasmap rows: the switch's counters for this test (deltas), and the conservation check */
  switch?: SwitchCounters;
  error?: string;
}

const P = `bv${(process.pid % 9000) + 1000}`;   // short: interface names stay < 16 characters
const NS = P, BR = `${P}br`, TAPS = [`${P}t0`, `${P}t1`];
const IPS = ['10.78.0.11', '10.78.0.12'], MACS = ['52:54:00:78:00:11', '52:54:00:78:00:12'];
const SW = 'vale0';
const MEM_MB = 256;

function sh(cmd: string, ok = true): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: 60_000 });
  if (ok && r.status !== 0) throw new WasmapError('EBENCH', `'${cmd}' failed (${r.status}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}
const secs = (t0: number): string => ((Date.now() - t0) / 1000).toFixed(1);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const say = (s: string): void => { process.stderr.write(c.dim(s) + '\n'); };
const msg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** A step the user should see is alive: on a terminal the elapsed seconds tick in place. */
async function step<T>(label: string, f: () => Promise<T>): Promise<T> {
  const t0 = Date.now(), tty = process.stderr.isTTY === true;
  const show = (end: string) => process.stderr.write(`\r${c.dim(`  ${label}… ${secs(t0)} s${end}`)}`);
  let ticker: NodeJS.Timeout | undefined;
  if (tty) { show(''); ticker = setInterval(() => show(''), 1000); } else say(`  ${label}…`);
  try {
    const r = await f();
    if (tty) show('\n'); else say(`  ${label}: ${secs(t0)} s`);
    return r;
  } catch (e) {
    if (tty) show(' — failed\n'); else say(`  ${label}: failed after ${secs(t0)} s`);
    throw e;
  } finally {
    clearInterval(ticker);
  }
}

/** What the run holds, so one function (also from a signal handler) can take it all down. */
interface Live { guests: Guest[]; daemon: ChildProcess | null; dir: string | null }
const live: Live = { guests: [], daemon: null, dir: null };

/** Synchronous and idempotent: SIGKILL what we started, delete the namespace (its TAPs and
 *  bridge with it) and the socket directory. */
function killAll(): void {
  for (const g of live.guests) g.kill();
  live.guests = [];
  if (live.daemon && live.daemon.exitCode === null && live.daemon.signalCode === null) live.daemon.kill('SIGKILL');
  live.daemon = null;
  if (live.dir) rmSync(live.dir, { recursive: true, force: true });
  live.dir = null;
  sh(`ip netns del ${NS} 2>/dev/null`, false);
}

async function stopGuests(): Promise<void> {
  const gs = live.guests;
  await Promise.all(gs.map((g) => g.stop(5000).catch(() => g.kill())));
  live.guests = [];
}

async function stopDaemon(): Promise<void> {
  const d = live.daemon;
  live.daemon = null;
  if (!d || d.exitCode !== null || d.signalCode !== null) return;
  const gone = new Promise<void>((r) => d.once('exit', () => r()));
  d.kill('SIGTERM');
  const t = setTimeout(() => d.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(t);
}

/** Boots both guests at once; either both run or neither does. */
async function bootPair(img: ImagePaths, tag: string, opts: (i: number) => Partial<GuestOptions> & Pick<GuestOptions, 'netdevArgs'>): Promise<[Guest, Guest]> {
  const started = await Promise.allSettled([0, 1].map((i) => startGuest({
    name: `${P}${tag}${i}`, ip: `${IPS[i]}/24`, mac: MACS[i], netns: NS, image: img, memMB: MEM_MB, log: () => {}, ...opts(i),
  })));
  const ok = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  live.guests.push(...ok);
  for (const s of started) if (s.status === 'rejected') throw s.reason;
  return [ok[0], ok[1]];
}

/** iperf3 -J in guest `g`, parsed; retries while the server is still busy with the last test. */
async function iperf(g: Guest, args: string, seconds: number): Promise<Record<string, any>> {
  for (let attempt = 1; ; attempt++) {
    const { rc, out } = await g.run(`iperf3 ${args} -J`, seconds * 1000 + 60_000);
    let j: Record<string, any>;
    try { j = JSON.parse(out.slice(out.indexOf('{'))) as Record<string, any>; } catch {
      throw new WasmapError('EBENCH', `guest ${g.name}: iperf3 ${args} (rc ${rc}) printed no JSON:\n${out.trim()}\n--- console tail ---\n${g.tail(15)}`);
    }
    if (j.error === undefined && rc === 0) return j;
    if (attempt < 4 && /busy|connection refused/i.test(String(j.error))) { await sleep(1000); continue; }
    throw new WasmapError('EBENCH', `guest ${g.name}: iperf3 ${args} failed (rc ${rc}): ${j.error ?? 'no error text'}`);
  }
}

/** Guest A reaches guest B (a few tries: ARP, a bridge port still in its forwarding delay). */
async function pingUntil(a: Guest, b: Guest): Promise<number> {
  let last = '';
  for (let i = 0; i < 8; i++) {
    const r = await a.run(`ping -c 1 -W 2 ${b.ip}`, 30_000);
    if (r.rc === 0) return Number(/time[=<]([\d.]+) ?ms/.exec(r.out)?.[1] ?? NaN);
    last = r.out.trim();
    await sleep(500);
  }
  throw new WasmapError('EBENCH', `guest ${a.name} cannot reach ${b.name} (${b.ip}) after 8 pings:\n${last}`);
}

interface Tcp { gbps: number; bytes: number; retransmits: number }
interface Udp { gbps: number; mpps: number; sentPps: number; receivedPps: number; lossPct: number }

async function tcp(a: Guest, b: Guest, seconds: number): Promise<Tcp> {
  const j = await iperf(a, `-c ${b.ip} -t ${seconds}`, seconds);
  const rx = j.end.sum_received as { bytes: number; bits_per_second: number };
  return { gbps: rx.bits_per_second / 1e9, bytes: rx.bytes, retransmits: Number(j.end.sum_sent?.retransmits ?? 0) };
}

async function udp(a: Guest, b: Guest, seconds: number): Promise<Udp> {
  const j = await iperf(a, `-c ${b.ip} -u -l 64 -b 0 -t ${seconds}`, seconds);
  // iperf3 ≥ 3.11 reports both sides (sum_sent, sum_received); older ones one `sum`
  const sent = (j.end.sum_sent ?? j.end.sum) as { packets: number; seconds: number };
  const rcv = (j.end.sum_received ?? j.end.sum) as { packets: number; lost_packets: number; lost_percent: number; seconds: number; bits_per_second: number };
  const got = rcv.packets - rcv.lost_packets;
  const receivedPps = got / rcv.seconds;
  return { gbps: rcv.bits_per_second / 1e9, mpps: receivedPps / 1e6, sentPps: sent.packets / sent.seconds, receivedPps, lossPct: rcv.lost_percent };
}

// ---- the switch's counters ----------------------------------------------------------------

interface RawPort { name: string; kind?: string; txPackets: number; rxPackets: number; dropFull: number; dropBroken: number; dropNoDst: number; dropLookup: number; dropSize: number; dropHdr: number }
interface RawStats { ports: RawPort[]; floodExtra: number; segExtra: number }

const drops = (p: RawPort): number => p.dropFull + p.dropBroken + p.dropNoDst + p.dropLookup + p.dropSize + p.dropHdr;

async function switchStats(sock: string): Promise<RawStats> {
  const all = (await ctlRequest(sock, 'stats', { switch: SW })) as RawStats[];
  if (!all[0]) throw new WasmapError('EBENCH', `ctl stats ${SW}: no such switch in the daemon`);
  return all[0];
}

/** The law every wasmap benchmark checks, on the totals at the snapshot: every frame taken
 *  from a tx ring was delivered (flood copies and TSO segments counted) or dropped and counted. */
function conservation(s: RawStats): string {
  const sent = s.ports.reduce((n, p) => n + p.txPackets, 0), rcvd = s.ports.reduce((n, p) => n + p.rxPackets, 0), dr = s.ports.reduce((n, p) => n + drops(p), 0);
  const ok = sent + s.floodExtra + s.segExtra === rcvd + dr;
  return `${ok ? 'ok' : 'MISMATCH'}: sent ${sent} + flood ${s.floodExtra} + segments ${s.segExtra} ${ok ? '=' : '!='} received ${rcvd} + drops ${dr}`;
}

/** Per-port counters of one test: the difference of two snapshots. */
function delta(before: RawStats, after: RawStats): SwitchCounters {
  const prev = new Map(before.ports.map((p) => [p.name, p]));
  return {
    ports: after.ports.map((p) => {
      const q = prev.get(p.name);
      return { port: p.name, kind: p.kind ?? '?', tx: p.txPackets - (q?.txPackets ?? 0), rx: p.rxPackets - (q?.rxPackets ?? 0), drops: drops(p) - (q ? drops(q) : 0) };
    }),
    flood_extra: after.floodExtra - before.floodExtra, seg_extra: after.segExtra - before.segExtra,
    conservation: conservation(after),
  };
}

// ---- the two paths ------------------------------------------------------------------------

/** A path that is up: its two guests, and for wasmap the switch daemon's control socket. */
interface Path { name: VmPath; pair: [Guest, Guest]; bootS: number; rttMs: number; sock?: string }
interface PathOut { tcp: Tcp[]; udp: Udp[]; bootS: number; rttMs: number; switchTcp?: SwitchCounters; switchUdp?: SwitchCounters }

async function bridgeUp(img: ImagePaths, vhost: 'on' | 'off'): Promise<Path> {
  sh(`ip -n ${NS} link add ${BR} type bridge forward_delay 0`);
  sh(`ip -n ${NS} link set ${BR} up`);
  for (const tap of TAPS) {
    sh(`ip -n ${NS} tuntap add dev ${tap} mode tap`);
    sh(`ip -n ${NS} link set ${tap} master ${BR}`);
    sh(`ip -n ${NS} link set ${tap} up`);
  }
  const t0 = Date.now();
  const pair = await step(`bridge: booting two guests (TAP vhost=${vhost})`, () => bootPair(img, 'b', (i) => ({
    netdevArgs: ['-netdev', `tap,id=n0,ifname=${TAPS[i]},script=no,downscript=no,vhost=${vhost}`],
  })));
  const bootS = (Date.now() - t0) / 1000;
  const rttMs = await step(`bridge: ping ${pair[0].name} -> ${pair[1].name}`, () => pingUntil(pair[0], pair[1]));
  return { name: 'bridge', pair, bootS, rttMs };
}

let daemonOut = ''; // what the switch said: the first thing to read when a guest cannot connect

async function wasmapUp(img: ImagePaths, spinUs: number): Promise<Path> {
  const cli = findBuildFile('cli.mjs');
  if (!cli) throw new WasmapError('NO_MODULE', 'build/cli.mjs not found: run `npm run build`');
  const dir = live.dir = mkdtempSync(join(tmpdir(), `wasmap-${P}-`));
  const sock = join(dir, 'ctl.sock');
  try {
    await step(`wasmap: starting switch ${SW} (--spin-us ${spinUs})`, async () => {
      // in the namespace too, so whatever the switch opens stays there
      const d = live.daemon = spawn('ip', ['netns', 'exec', NS, process.execPath, cli, 'switch', SW, '--socket', sock, '--spin-us', String(spinUs)], { stdio: ['ignore', 'pipe', 'pipe'] });
      const keep = (b: Buffer): void => { daemonOut = (daemonOut + b.toString()).slice(-4000); };
      d.stdout!.on('data', keep);
      d.stderr!.on('data', keep);
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new WasmapError('EBENCH', `the switch daemon did not start within 15 s: ${daemonOut.trim()}`)), 15_000);
        const check = (): void => { if (daemonOut.includes('listening')) { clearTimeout(t); d.stdout!.off('data', check); resolve(); } };
        d.stdout!.on('data', check);
        d.once('exit', (code) => { clearTimeout(t); reject(new WasmapError('EBENCH', `the switch daemon exited (${code}): ${daemonOut.trim()}`)); });
      });
    });
    const gsock = [0, 1].map((i) => join(dir, `g${i}.sock`));
    for (const s of gsock) {
      try { await ctlRequest(sock, 'attach', { switch: SW, port: `vhost-user:${s}` }); } catch (e) {
        throw new WasmapError('EATTACH', `ctl attach ${SW} vhost-user:${s}: ${msg(e)}`);
      }
    }
    const t0 = Date.now();
    const pair = await step('wasmap: booting two guests (vhost-user, shared memfd)', () => bootPair(img, 'w', (i) => ({
      memBackend: 'memfd',
      netdevArgs: ['-chardev', `socket,id=c0,path=${gsock[i]}`, '-netdev', 'vhost-user,id=n0,chardev=c0'],
    })));
    const bootS = (Date.now() - t0) / 1000;
    const rttMs = await step(`wasmap: ping ${pair[0].name} -> ${pair[1].name}`, () => pingUntil(pair[0], pair[1]));
    return { name: 'wasmap', pair, bootS, rttMs, sock };
  } catch (e) {
    const tail = daemonOut.trim().split('\n').filter((l) => !l.includes('listening on')).slice(-15).join('\n');
    if (e instanceof Error && tail) e.message += `\n--- switch daemon output ---\n${tail}\n--- end ---`;
    throw e;
  }
}

/** Runs `test` on every path, `runs` times, the order alternating (a noisy machine's slow
 *  moments fall on both paths), with the switch's counters around all wasmap runs. */
async function alternate<T>(label: string, paths: Path[], runs: number, seconds: number, test: (a: Guest, b: Guest, s: number) => Promise<T>,
  out: Map<VmPath, T[]>, counters: (c: SwitchCounters) => void): Promise<void> {
  const w = paths.find((p) => p.name === 'wasmap');
  const take = async (): Promise<RawStats | undefined> => {
    if (!w?.sock) return undefined;
    try { return await switchStats(w.sock); } catch (e) { process.stderr.write(c.red(`  wasmap: ctl stats failed: ${msg(e)}\n`)); return undefined; }
  };
  const s0 = await take();
  for (let r = 0; r < runs; r++) {
    const order = r % 2 ? [...paths].reverse() : paths;
    for (const p of order) {
      const v = await step(`run ${r + 1}/${runs}: ${p.name} iperf3 ${label} ${seconds} s`, () => test(p.pair[0], p.pair[1], seconds));
      out.set(p.name, [...(out.get(p.name) ?? []), v]);
    }
  }
  await sleep(300); // the last datagrams and iperf3's closing exchange leave the rings
  const s1 = await take();
  if (s0 && s1) counters(delta(s0, s1));
}

// ---- the run ------------------------------------------------------------------------------

function preflight(): void {
  if (process.getuid?.() !== 0) throw new WasmapError('EPERM', 'bench --vm needs root (a network namespace, TAP devices, a bridge)');
  if (!existsSync('/dev/net/tun')) throw new WasmapError('ENODEV', 'bench --vm needs /dev/net/tun (TAP devices): modprobe tun, or give the container the device');
  if (spawnSync('sh', ['-c', 'command -v ip']).status !== 0) throw new WasmapError('ENOENT', 'bench --vm needs ip (apt-get install iproute2)');
  if (!qemuAvailable()) throw new WasmapError('ENOQEMU', `bench --vm needs ${QEMU}: apt-get install --no-install-recommends qemu-system-x86`);
}

export interface BenchVmOptions { seconds: number; runs: number; json: boolean; only?: string[]; spinUs: number }

/** Runs the VM benchmark; returns the exit code: 0 when at least one path measured and the
 *  switch's counters balance. */
export async function benchVm(o: BenchVmOptions): Promise<number> {
  const only = o.only ?? VM_PATHS;
  for (const p of only) if (!VM_PATHS.includes(p as VmPath)) throw new WasmapError('EINVAL', `--only with --vm takes ${VM_PATHS.join(', ')}, not '${p}'`);
  preflight();
  const acc = accel(), vhost: 'on' | 'off' = vhostNetAvailable() ? 'on' : 'off';
  const img = await step('guest image (build/vm)', () => ensureImage({ log: say }));
  const kver = String((img.info as { kernelVersion?: string }).kernelVersion ?? '?');
  const guest = `1 vCPU, ${MEM_MB} MiB, Debian kernel ${kver}, virtio-net-pci modern${acc === 'tcg' ? ' (vhost-user: vectors=0, INTx)' : ''}`;
  say(`wasmap bench --vm: two guests per path (${guest}), iperf3 ${o.seconds} s × ${o.runs} runs per test and path, alternating; namespace ${NS}`);
  if (acc === 'tcg') say('  no /dev/kvm: guests run under TCG emulation — rates are bounded by the emulator, boots take 12–18 s');
  if (vhost === 'off') say('  no /dev/vhost-net: the bridge reference uses vhost=off (virtio-net in QEMU user space)');

  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`\nwasmap bench --vm: ${sig}, cleaning up (guests, switch, namespace ${NS})\n`);
    killAll();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const outs = new Map<VmPath, PathOut | Error>();
  try {
    killAll(); // leftovers of an earlier run with the same pid
    sh(`ip netns add ${NS}`);
    sh(`ip -n ${NS} link set lo up`);
    // both pairs stay up for the whole run (4 guests, 1 GiB): the tests alternate between them
    const paths: Path[] = [];
    for (const name of VM_PATHS.filter((p) => only.includes(p))) {
      try { paths.push(name === 'bridge' ? await bridgeUp(img, vhost) : await wasmapUp(img, o.spinUs)); } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        outs.set(name, err);
        process.stderr.write(c.red(`  ${name}: failed: ${err.message.split('\n')[0].slice(0, 300)}\n`));
      }
    }
    const tcps = new Map<VmPath, Tcp[]>(), udps = new Map<VmPath, Udp[]>();
    let swTcp: SwitchCounters | undefined, swUdp: SwitchCounters | undefined;
    try {
      await alternate('TCP', paths, o.runs, o.seconds, tcp, tcps, (x) => { swTcp = x; });
      await alternate('UDP 64 B', paths, o.runs, o.seconds, udp, udps, (x) => { swUdp = x; });
      for (const p of paths) {
        outs.set(p.name, { tcp: tcps.get(p.name)!, udp: udps.get(p.name)!, bootS: p.bootS, rttMs: p.rttMs, ...(p.name === 'wasmap' ? { switchTcp: swTcp, switchUdp: swUdp } : {}) });
      }
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      for (const p of paths) outs.set(p.name, err);
      process.stderr.write(c.red(`  measuring failed: ${err.message.split('\n')[0].slice(0, 300)}\n`));
    }
  } finally {
    await stopGuests().catch(() => undefined);
    await stopDaemon().catch(() => undefined);
    killAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const results = rows(outs, o, acc, vhost, guest);
  if (o.json) console.log(JSON.stringify(results, null, 2));
  else print(results, outs);
  const balanced = results.every((r) => !r.switch || r.switch.conservation.startsWith('ok'));
  if (!balanced) process.stderr.write(c.red('wasmap bench --vm: the switch\'s counters do not balance (see conservation above)\n'));
  return [...outs.values()].some((v) => !(v instanceof Error)) && balanced ? 0 : 1;
}

function rows(outs: Map<VmPath, PathOut | Error>, o: BenchVmOptions, acc: 'kvm' | 'tcg', vhost: 'on' | 'off', guest: string): VmResult[] {
  const tcgNote = acc === 'tcg' ? '; guests under TCG (no /dev/kvm)' : '';
  const refNote = vhost === 'on' ? 'TAP + vhost-net + Linux bridge' : 'TAP + Linux bridge, vhost=off (no /dev/vhost-net: QEMU user-space virtio-net, not vhost-net)';
  const notes: Record<VmPath, string> = {
    wasmap: `wasmap switch (--spin-us ${o.spinUs}), vhost-user ports; median of ${o.runs} runs; ratio = median of per-run wasmap / bridge (TAP vhost=${vhost})${tcgNote}`,
    bridge: `${refNote}; median of ${o.runs} runs${tcgNote}`,
  };
  const out: VmResult[] = [];
  for (const test of ['tcp', 'udp64'] as const) {
    for (const path of ['wasmap', 'bridge'] as const) {
      const r = outs.get(path);
      if (r === undefined) continue;
      const row: VmResult = { name: `vm-${test}-${path}`, gbps: null, mpps: null, note: notes[path], path, test, seconds: o.seconds, runs: o.runs, accel: acc, vhost_net: path === 'bridge' ? vhost : null, guest };
      if (r instanceof Error) row.error = r.message;
      else {
        row.boot_s = +r.bootS.toFixed(1);
        if (Number.isFinite(r.rttMs)) row.first_ping_ms = r.rttMs;
        if (test === 'tcp') {
          Object.assign(row, { gbps: +median(r.tcp.map((x) => x.gbps)).toFixed(4), bytes: median(r.tcp.map((x) => x.bytes)), retransmits: median(r.tcp.map((x) => x.retransmits)), per_run: r.tcp.map((x) => +x.gbps.toFixed(4)) });
          if (r.switchTcp) row.switch = r.switchTcp;
        } else {
          Object.assign(row, { gbps: +median(r.udp.map((x) => x.gbps)).toFixed(5), mpps: +median(r.udp.map((x) => x.mpps)).toFixed(5), sent_pps: Math.round(median(r.udp.map((x) => x.sentPps))),
            received_pps: Math.round(median(r.udp.map((x) => x.receivedPps))), loss_pct: +median(r.udp.map((x) => x.lossPct)).toFixed(2), per_run: r.udp.map((x) => +x.mpps.toFixed(5)) });
          if (r.switchUdp) row.switch = r.switchUdp;
        }
      }
      out.push(row);
    }
  }
  for (const test of ['tcp', 'udp64'] as const) {
    const w = outs.get('wasmap'), b = outs.get('bridge'), row = out.find((r) => r.name === `vm-${test}-wasmap`);
    if (!row) continue;
    row.target_ratio = TARGET[test];
    if (!w || !b || w instanceof Error || b instanceof Error) continue;
    const wv = test === 'tcp' ? w.tcp.map((x) => x.gbps) : w.udp.map((x) => x.mpps), bv = test === 'tcp' ? b.tcp.map((x) => x.gbps) : b.udp.map((x) => x.mpps);
    const pairs = wv.map((x, i) => (bv[i] > 0 ? x / bv[i] : NaN)).filter(Number.isFinite);
    if (pairs.length) {
      row.ratio = +median(pairs).toFixed(3);
      row.meets_target = row.ratio >= TARGET[test];
    }
  }
  return out;
}

function print(results: VmResult[], outs: Map<VmPath, PathOut | Error>): void {
  const num = (x: number | null | undefined, d: number) => (x === null || x === undefined ? '' : x.toFixed(d));
  const short: Record<VmPath, string> = { wasmap: 'wasmap, vhost-user', bridge: '' };
  const target = (r: VmResult) => (r.target_ratio === undefined ? '' : `≥ ${r.target_ratio.toFixed(1)}${r.meets_target === undefined ? '' : r.meets_target ? ' met' : ' missed'}`);
  console.log(table(['name', 'Gbit/s', 'Mpps', 'sent kpps', 'loss %', 'retr', 'ratio', 'target', 'path'], results.map((r) => [
    r.name, r.error ? 'failed' : num(r.gbps, 3), num(r.mpps, 4), num(r.sent_pps === undefined ? undefined : r.sent_pps / 1e3, 1), num(r.loss_pct, 1),
    r.retransmits ?? '', num(r.ratio, 2), target(r), r.path === 'bridge' ? `TAP vhost=${r.vhost_net} + bridge` : short[r.path],
  ]), ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'l', 'l']));
  for (const r of results) if (r.switch) {
    console.log(`\nswitch ${SW} during ${r.name} (flood copies ${r.switch.flood_extra}, TSO segments ${r.switch.seg_extra}):`);
    console.log(table(['port', 'kind', 'tx', 'rx', 'drops'], r.switch.ports.map((p) => [p.port, p.kind, p.tx, p.rx, p.drops])));
    console.log((r.switch.conservation.startsWith('ok') ? c.dim : c.red)(`conservation ${r.switch.conservation}`));
  }
  for (const [path, v] of outs) if (v instanceof Error) console.log(c.red(`\n${path} path failed: ${v.message}`));
  const seen = new Set<string>();
  const notes = results.filter((r) => !seen.has(r.path) && seen.add(r.path)).map((r) => `${r.path}: ${r.note}`);
  const first = results[0];
  if (first) console.log(c.dim([``, ...notes, `guests: ${first.guest}`, 'TCP Gbit/s at the receiver; UDP Mpps = (packets - lost) / s at the receiver, 64-byte payloads, -b 0'].join('\n')));
}
