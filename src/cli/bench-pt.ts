// `wasmap bench` scenario passthrough-2guests-60: a switch daemon (its forwarding thread in
// this process) and two guest processes — pkt-gen -f tx and pkt-gen -f rx — that drive their
// ports' rings through shared memory and CSBs. Reports received Mpps, kicks per packet on
// each side, and the CPU the switch and an attached guest burn while nothing flows.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon } from '../ctl/daemon.js';
import { ctlRequest } from '../ctl/client.js';
import { findBuildFile } from '../paths.js';
import { WasmapError } from '../errors.js';

export interface PtBenchOut {
  mpps: number; sent: number; received: number; drops: number; seconds: number;
  kicksSwitchToGuests: number; kicksGuestsToSwitch: number; kicksPerPacket: number;
  idleCpuSwitch: number; idleCpuGuest: number;
}

interface GuestSummary { packets: number; seconds: number; kicksSent: number; kicksReceived: number }
interface Gone { name: string; kicksIn: number; kicksOut: number; stats: Record<string, number> }

const cpuTicks = (pid: number | 'self') => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); };

export async function runPassthrough(seconds: number, slots = 4096): Promise<PtBenchOut> {
  const cli = findBuildFile('cli.mjs');
  if (!cli) throw new WasmapError('NO_MODULE', 'build/cli.mjs not found: run `npm run build`');
  const dir = mkdtempSync(join(tmpdir(), 'wasmap-ptbench-'));
  const socket = join(dir, 'ctl.sock');
  const daemon = await Daemon.start({ switches: ['vale0'], socket });
  const guest = (fn: string, port: string, secs: number, extra: string[] = []) => {
    const c = spawn(process.execPath, [cli, 'pkt-gen', '-i', `vale0:${port}`, '--socket', socket, '-f', fn, '--json', '--slots', String(slots), '--seconds', String(secs), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    const done = new Promise<GuestSummary>((resolve, reject) => {
      let out = '', err = '';
      c.stdout.on('data', (d) => { out += d; }); c.stderr.on('data', (d) => { err += d; });
      c.on('close', (code) => { if (code === 0) resolve(JSON.parse(out.trim().split('\n').pop()!) as GuestSummary); else reject(new WasmapError('EGUEST', `pkt-gen -f ${fn} guest failed (${code}): ${err.trim()}`)); });
    });
    return { pid: c.pid!, done };
  };
  const ports = async () => ((await ctlRequest(socket, 'list', { switch: 'vale0' })) as { name: string }[]).map((p) => p.name);
  const until = async (ok: () => Promise<boolean>, what: string) => {
    for (const end = Date.now() + 20000; !(await ok());) { if (Date.now() > end) throw new WasmapError('ETIMEDOUT', `bench: ${what}`); await new Promise((r) => setTimeout(r, 20)); }
  };
  try {
    const rx = guest('rx', 'rx', seconds + 4);
    await until(async () => (await ports()).includes('vale0:rx'), 'the rx guest never attached');
    // idle: the switch spins 50 ms after the last frame, then sleeps; so does the guest
    await new Promise((r) => setTimeout(r, 300));
    const s0 = cpuTicks('self'), g0 = cpuTicks(rx.pid), t0 = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    const hz = 100, dt = (performance.now() - t0) / 1000;
    const idleCpuSwitch = (cpuTicks('self') - s0) / hz / dt * 100, idleCpuGuest = (cpuTicks(rx.pid) - g0) / hz / dt * 100;
    const tx = guest('tx', 'tx', seconds, ['-D', '02:00:00:00:00:99']);
    const txOut = await tx.done;
    const rxOut = await rx.done;
    await until(async () => (await ports()).length === 0, 'ports were not reclaimed');
    const s = ((await ctlRequest(socket, 'stats', { switch: 'vale0' })) as { guestsGone: Gone[] }[])[0];
    const txp = s.guestsGone.find((g) => g.name === 'vale0:tx')!, rxp = s.guestsGone.find((g) => g.name === 'vale0:rx')!;
    const drops = [txp, rxp].reduce((n, p) => n + p.stats.dropFull + p.stats.dropBroken + p.stats.dropNoDst + p.stats.dropLookup + p.stats.dropSize + p.stats.dropHdr, 0);
    const sent = txp.stats.txPackets + rxp.stats.txPackets, received = txp.stats.rxPackets + rxp.stats.rxPackets;
    if (sent !== received + drops) throw new WasmapError('CONSERVATION', `passthrough: sent ${sent} != received ${received} + drops ${drops}`);
    if (rxOut.packets !== rxp.stats.rxPackets) throw new WasmapError('CONSERVATION', `passthrough: the rx guest counted ${rxOut.packets}, the switch delivered ${rxp.stats.rxPackets}`);
    const k2g = txp.kicksOut + rxp.kicksOut, g2k = txOut.kicksSent + rxOut.kicksSent;
    return { mpps: received / txOut.seconds / 1e6, sent, received, drops, seconds: txOut.seconds, kicksSwitchToGuests: k2g, kicksGuestsToSwitch: g2k,
      kicksPerPacket: (k2g + g2k) / Math.max(1, received), idleCpuSwitch, idleCpuGuest };
  } finally {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
