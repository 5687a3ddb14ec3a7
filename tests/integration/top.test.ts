// `wasmap top` against a daemon with traffic: two TAP ports in two namespaces, a ping flood
// between them. --once prints rates that move (the sending port's rx and the other's tx are
// non-zero, idle ports are zero); in a pseudo-terminal (script(1)) it draws on the alternate
// screen, redraws, and quits on 'q' with exit 0. The rate arithmetic is checked on fixed
// samples too.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { startDaemonProcess, exited } from './daemon-proc.js';
import { ctlRequest } from '../../src/ctl/client.js';
import { findBuildFile } from '../../src/paths.js';
import { rates, render } from '../../src/cli/top.js';
import { prerequisites } from './net-harness.js';

test('top: rates from two samples: directions, per-second drops by reason, sorted by traffic', () => {
  const port = (name: string, tx: number, rx: number, dropFull = 0) => ({ name, kind: 'tap', down: null, txPackets: tx, txBytes: tx * 100, rxPackets: rx, rxBytes: rx * 100, dropFull, kernelDrops: 0 });
  const a = { at: 0, stats: [{ name: 'vale0', rounds: 0, frames: 0, ports: [port('idle', 5, 5), port('busy', 0, 0)] }] };
  const b = { at: 2000, stats: [{ name: 'vale0', rounds: 1000, frames: 4000, ports: [port('idle', 5, 5), port('busy', 2_000_000, 1_000_000, 300)] }] };
  const [s] = rates(a, b);
  assert.equal(s.roundsPerS, 500);
  assert.deepEqual(s.ports.map((p) => p.name), ['busy', 'idle'], 'sorted by traffic');
  const busy = s.ports[0];
  assert.equal(busy.rxMpps, 1, 'rx = what the port sent into the switch (its txPackets), per second');
  assert.equal(busy.txMpps, 0.5);
  assert.equal(busy.rxGbps, 1_000_000 * 100 * 8 / 1e9);
  assert.equal(busy.dropsPerS, 150); assert.equal(busy.reason, 'rx_full');
  assert.equal(s.ports[1].rxMpps, 0);
  for (const l of render([s], { socket: '/run/x.sock', interval: 1, width: 80, at: new Date(0) })) assert.ok(l.length <= 80, `fits 80 columns: '${l}'`);
});

const lacks = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0;
const why = process.getuid?.() !== 0 ? 'needs root (namespaces, TAP)' : !existsSync('/dev/net/tun') ? 'no /dev/net/tun'
  : lacks('ping') || lacks('ip') ? 'needs ip and ping (apt-get install iproute2 iputils-ping)' : lacks('script') ? 'needs script (apt-get install bsdutils)' : '';
const skip = prerequisites('top test', why);

const P = `tp${process.pid % 10000}`, nsA = `${P}A`, nsB = `${P}B`, sock = `/tmp/${P}.sock`;
const sh = (cmd: string, ok = true) => { const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: 30000 }); if (ok && r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`); return r.stdout; };
const procs: ChildProcess[] = [];
after(async () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) { p.kill('SIGKILL'); await exited(p); }
  sh(`ip netns del ${nsA} 2>/dev/null; ip netns del ${nsB} 2>/dev/null; rm -f ${sock}`, false);
});

test('top against a daemon with a ping flood: --once shows the rates move; in a terminal it redraws and quits on q', { skip, timeout: 60000 }, async () => {
  const d = await startDaemonProcess(['vale0', '--socket', sock]);
  procs.push(d);
  sh(`ip netns add ${nsA} && ip netns add ${nsB}`);
  for (const [t, ns, ip] of [['t1', nsA, '10.97.0.1'], ['t2', nsB, '10.97.0.2']]) {
    await ctlRequest(sock, 'attach', { switch: 'vale0', port: `tap:${P}${t}` });
    sh(`ip link set ${P}${t} netns ${ns} && ip -n ${ns} addr add ${ip}/24 dev ${P}${t} && ip -n ${ns} link set ${P}${t} up`);
  }
  await ctlRequest(sock, 'attach', { switch: 'vale0', port: 'quiet' }); // a virtual port with no traffic: zeros
  sh(`ip netns exec ${nsA} ping -c 3 -i 0.2 -W 2 10.97.0.2`);
  const flood = spawn('ip', ['netns', 'exec', nsA, 'ping', '-f', '-w', '20', '10.97.0.2'], { stdio: 'ignore' });
  procs.push(flood);
  const cli = findBuildFile('cli.mjs')!;
  const once = spawnSync(process.execPath, [cli, 'top', 'vale0', '--socket', sock, '--once', '--interval', '1'], { encoding: 'utf8', timeout: 20000 });
  assert.equal(once.status, 0, once.stderr);
  const row = (name: string) => once.stdout.split('\n').find((l) => l.startsWith(name));
  const t1 = row(`${P}t1`), t2 = row(`${P}t2`), q = row('quiet');
  assert.ok(t1 && t2 && q, `a row per port:\n${once.stdout}`);
  const cols = (l: string) => l.split(/\s+/); // name kind up rxMpps rxGbps txMpps txGbps drop/s
  assert.ok(Number(cols(t1)[3]) > 0 && Number(cols(t2)[5]) > 0, `t1 sends into the switch, t2 receives (Mpps > 0):\n${once.stdout}`);
  assert.equal(Number(cols(q)[3]), 0); assert.equal(Number(cols(q)[5]), 0);
  assert.match(once.stdout, /switch vale0: \S+ rounds\/s, \S+ frames\/s, lookup learning, 3 port/);
  // in a pseudo-terminal: full screen, at least two redraws, 'q' quits cleanly
  const term = spawn('script', ['-qfec', `${process.execPath} ${cli} top vale0 --socket ${sock} --interval 0.5`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TERM: 'xterm', COLUMNS: '80', LINES: '24' } });
  procs.push(term);
  let screen = '';
  term.stdout!.on('data', (b) => { screen += b; });
  await new Promise((r) => setTimeout(r, 2500));
  term.stdin!.write('q');
  const code = await Promise.race([exited(term), new Promise((r) => setTimeout(() => r('no exit after q'), 5000))]);
  assert.equal(code, 0, `top quit on q (${String(code)}): ${screen.slice(-400)}`);
  assert.ok(screen.includes('\x1b[?1049h') && screen.includes('\x1b[?1049l'), 'used the alternate screen and gave it back');
  assert.ok((screen.match(/switch vale0:/g) ?? []).length >= 2, `redrew at least twice: ${screen.slice(-400)}`);
  flood.kill('SIGINT');
});
