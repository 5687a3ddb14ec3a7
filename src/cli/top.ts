// `wasmap top`: a live view of a running switch daemon, like top(1) for its ports. Every
// interval it asks the daemon for its counters (the `stats` verb) and shows rates: frames and
// bits per second each way per port, drops per second by reason, the switch's rounds and
// lookup mode. Plain ANSI (an alternate screen, redrawn in place) so it works over SSH in an
// 80-column terminal; `q` or Ctrl-C quits. Under a pipe, or with --once, it prints one snapshot
// of the rates over one interval and exits.
import { parseArgs } from 'node:util';
import { WasmapError } from '../errors.js';
import { ctlRequest } from '../ctl/client.js';
import { defaultSocket } from '../ctl/paths.js';
import { DROPS } from '../ctl/metrics.js';

export const TOP_HELP = `Usage: wasmap top [NAME] [--socket PATH] [--interval S] [--once]

A live view of a running switch daemon (wasmap switch NAME), refreshed every --interval
seconds (default 1): per port its kind and state, frames (Mpps) and Gbit/s each way, and
drops per second with the main reason; per switch its rounds per second and lookup mode.
Ports are sorted by traffic. Keys: q (or Ctrl-C) quits.

  rx = into the switch from the port's peer (what the port's tx ring carried to the switch)
  tx = out of the switch to the port's peer (what it delivered into the port's rx ring)

Options:
  --socket PATH   the daemon's control socket (default: the one of switch NAME, vale0)
  --interval S    seconds between samples (default 1; 0.2 to 60)
  --once          take two samples one interval apart, print the rates once, exit (also
                  what happens when the output is not a terminal)
`;

interface PortRow { name: string; kind: string; down: string | null; txPackets: number; txBytes: number; rxPackets: number; rxBytes: number; [k: string]: unknown }
interface SwitchRow { name: string; rounds: number; frames: number; ports: PortRow[]; lookup?: { mode: string; function: { name: string; state: string } | null } }
interface Sample { at: number; stats: SwitchRow[] }

/** Every drop counter of a port row, by reason (those the switch keeps and its backend's). */
export function drops(p: PortRow): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, reason] of DROPS) out[reason] = Number(p[key] ?? 0);
  for (const [key, reason] of [['kernelDrops', 'kernel'], ['downDrops', 'no_guest']] as const) if (p[key] !== undefined) out[reason] = Number(p[key]);
  const q = p.queues as Record<string, Record<string, number>> | undefined;
  if (q) for (const d of ['rx', 'tx']) { out[`guest_${d}_too_big`] = Number(q[d]?.dropBig ?? 0); out[`guest_${d}_bad`] = Number(q[d]?.dropBad ?? 0); }
  return out;
}

export interface PortRate { sw: string; name: string; kind: string; state: string; rxMpps: number; rxGbps: number; txMpps: number; txGbps: number; dropsPerS: number; reason: string }
export interface SwitchRate { name: string; roundsPerS: number; framesPerS: number; lookup: string; ports: PortRate[] }

/** Rates between two samples. Note the direction: the switch's tx counters of a port are what
 *  the port sent into the switch, so the view's rx (from the peer) is txPackets. */
export function rates(a: Sample, b: Sample): SwitchRate[] {
  const dt = (b.at - a.at) / 1000;
  return b.stats.map((s) => {
    const old = a.stats.find((x) => x.name === s.name);
    const ports = s.ports.map((p): PortRate => {
      const o = old?.ports.find((x) => x.name === p.name && x.kind === p.kind);
      const d = (k: 'txPackets' | 'txBytes' | 'rxPackets' | 'rxBytes') => Math.max(0, Number(p[k]) - Number(o?.[k] ?? p[k])) / dt;
      const now = drops(p), before = o ? drops(o) : now;
      let total = 0, reason = '', most = 0;
      for (const [r, n] of Object.entries(now)) {
        const x = Math.max(0, n - (before[r] ?? n)) / dt;
        total += x;
        if (x > most) { most = x; reason = r; }
      }
      return { sw: s.name, name: p.name, kind: p.kind, state: p.down ? 'down' : 'up', rxMpps: d('txPackets') / 1e6, rxGbps: d('txBytes') * 8 / 1e9, txMpps: d('rxPackets') / 1e6, txGbps: d('rxBytes') * 8 / 1e9, dropsPerS: total, reason };
    }).sort((x, y) => (y.rxMpps + y.txMpps) - (x.rxMpps + x.txMpps) || x.name.localeCompare(y.name));
    const lookup = s.lookup ? (s.lookup.function ? `${s.lookup.mode}: ${s.lookup.function.name} (${s.lookup.function.state})` : s.lookup.mode) : 'learning';
    return { name: s.name, roundsPerS: Math.max(0, s.rounds - (old?.rounds ?? s.rounds)) / dt, framesPerS: Math.max(0, s.frames - (old?.frames ?? s.frames)) / dt, lookup, ports };
  });
}

const fit = (s: string, w: number) => (s.length > w ? `${s.slice(0, w - 1)}…` : s.padEnd(w));
const num = (x: number, w: number, digits = 3) => x.toFixed(digits).padStart(w);
const si = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0));

/** The screen (or the snapshot) as lines of at most `width` columns. */
export function render(rs: SwitchRate[], o: { socket: string; interval: number; width: number; at: Date }): string[] {
  const w = Math.max(60, o.width);
  const lines = [fit(`wasmap top — ${o.socket} — every ${o.interval} s — ${o.at.toISOString().slice(11, 19)} UTC`, w).trimEnd()];
  for (const s of rs) {
    lines.push('');
    lines.push(fit(`switch ${s.name}: ${si(s.roundsPerS)} rounds/s, ${si(s.framesPerS)} frames/s, lookup ${s.lookup}, ${s.ports.length} port(s)`, w).trimEnd());
    // 16 + 1 + 10 + 1 + 4 + 4 × 8 + 1 + 7 + 1 = 73 columns; the reason takes what is left
    const head = `${'PORT'.padEnd(16)} ${'KIND'.padEnd(10)} ${'UP'.padEnd(4)}${'RX Mpps'.padStart(8)}${'RX Gb/s'.padStart(8)}${'TX Mpps'.padStart(8)}${'TX Gb/s'.padStart(8)} ${'DROP/s'.padStart(7)} WHY`;
    lines.push(fit(head, w).trimEnd());
    for (const p of s.ports) {
      lines.push(fit(`${fit(p.name, 16)} ${fit(p.kind, 10)} ${fit(p.state, 4)}${num(p.rxMpps, 8)}${num(p.rxGbps, 8, 2)}${num(p.txMpps, 8)}${num(p.txGbps, 8, 2)} ${si(p.dropsPerS).padStart(7)} ${p.dropsPerS ? p.reason : ''}`, w).trimEnd());
    }
    if (!s.ports.length) lines.push('(no ports: wasmap ctl attach …)');
  }
  return lines;
}

async function sample(socket: string, sw: string | undefined): Promise<Sample> {
  const stats = await ctlRequest(socket, 'stats', sw ? { switch: sw } : {}) as SwitchRow[];
  return { at: performance.now(), stats };
}

export async function top(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: {
    socket: { type: 'string' }, interval: { type: 'string', default: '1' }, once: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write(TOP_HELP); return 0; }
  const sw = positionals[0];
  if (sw !== undefined && !/^vale[A-Za-z0-9_]{0,11}$/.test(sw)) throw new WasmapError('EINVAL', `'${sw}' is not a switch name (valeX); usage: wasmap top [NAME] [--socket PATH]`);
  const interval = Number(values.interval);
  if (!(interval >= 0.2 && interval <= 60)) throw new WasmapError('EINVAL', `--interval must be 0.2 to 60 seconds, not '${values.interval}'`);
  const socket = values.socket ?? defaultSocket(sw ?? 'vale0');
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const out = process.stdout;
  let prev = await sample(socket, sw); // fails here, with the daemon's address, when none runs
  if (values.once || !out.isTTY) {
    await wait(interval * 1000);
    const cur = await sample(socket, sw);
    out.write(render(rates(prev, cur), { socket, interval, width: out.columns || 80, at: new Date() }).join('\n') + '\n');
    return 0;
  }
  let quit = false;
  const stdin = process.stdin;
  const restore = () => { out.write('\x1b[?25h\x1b[?1049l'); if (stdin.isTTY) stdin.setRawMode(false); stdin.pause(); };
  out.write('\x1b[?1049h\x1b[?25l'); // alternate screen, no cursor: the terminal comes back as it was
  if (stdin.isTTY) stdin.setRawMode(true);
  stdin.resume();
  stdin.on('data', (d: Buffer) => { if (d.includes(0x71) || d.includes(0x51) || d.includes(3)) quit = true; }); // q, Q, Ctrl-C
  const onSig = () => { quit = true; };
  process.once('SIGTERM', onSig); process.once('SIGINT', onSig);
  try {
    while (!quit) {
      for (let t = 0; t < interval * 1000 && !quit; t += 50) await wait(50);
      if (quit) break;
      let cur: Sample;
      try { cur = await sample(socket, sw); } catch (e) {
        out.write(`\x1b[H\x1b[2Jwasmap top: the daemon stopped answering: ${(e as Error).message}\n`);
        restore();
        console.error(`wasmap top: the daemon stopped answering: ${(e as Error).message}`);
        return 1;
      }
      const lines = render(rates(prev, cur), { socket, interval, width: out.columns || 80, at: new Date() }).slice(0, Math.max(1, (out.rows || 24) - 1));
      out.write(`\x1b[H\x1b[2J${lines.join('\r\n')}\r\n\x1b[2mq quits\x1b[22m`);
      prev = cur;
    }
  } finally {
    process.off('SIGTERM', onSig); process.off('SIGINT', onSig);
  }
  restore();
  return 0;
}
