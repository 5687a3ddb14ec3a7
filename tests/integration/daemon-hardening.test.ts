// The switch daemon against a hostile or careless control client, and against its own
// failures (issue #15, findings 3, 8, 10, 13, 14, 15): a deeply nested request, a huge line
// without newline, dripping and pipelining clients, too many connections, a forwarding loop
// that throws, socket paths that cannot be bound, captures whose client went away, and the
// CLI's errors. Everything runs against `wasmap switch` child processes on virtual ports.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { createConnection, Socket } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBuildFile } from '../../src/paths.js';
import { ctlRequest, CtlConnection } from '../../src/ctl/client.js';
import { startDaemonProcess, exited } from './daemon-proc.js';

const dir = mkdtempSync(join(tmpdir(), 'wasmap-dh-'));
const procs: ChildProcess[] = [];
after(() => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});
async function daemon(name: string, env: Record<string, string> = {}) {
  const sock = join(dir, `${name}.sock`);
  const d = await startDaemonProcess(['vale0', '--socket', sock], { env });
  procs.push(d);
  return { d, sock };
}
const cli = () => { const c = findBuildFile('cli.mjs'); assert.ok(c, 'build/cli.mjs exists'); return c!; };
function wasmap(...args: string[]) {
  const r = spawnSync(process.execPath, [cli(), ...args], { encoding: 'utf8', timeout: 30000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
function procStatus(pid: number): { rssKb: number; hwmKb: number; fds: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1]);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM'), fds: readdirSync(`/proc/${pid}/fd`).length };
}

/** A raw connection: what it received (lines), and whether/when the daemon closed it. */
function raw(sock: string) {
  const c: Socket = createConnection(sock);
  const st = { lines: [] as string[], buf: '', closed: false, error: '' };
  c.setEncoding('utf8');
  c.on('data', (d: string) => { st.buf += d; let nl; while ((nl = st.buf.indexOf('\n')) >= 0) { st.lines.push(st.buf.slice(0, nl)); st.buf = st.buf.slice(nl + 1); } });
  c.on('error', (e) => { st.error = e.message; });
  const closed = new Promise<void>((r) => c.on('close', () => { st.closed = true; r(); }));
  const connected = new Promise<void>((r) => c.once('connect', () => r()));
  return { c, st, closed, connected };
}
const until = async (what: string, ok: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!ok()) { if (Date.now() > end) assert.fail(`timed out waiting for ${what}`); await new Promise((r) => setTimeout(r, 10)); }
};
const ping = async (sock: string) => ((await ctlRequest(sock, 'ping', {}, 5000)) as { pong: boolean }).pong;

test('finding 3: a request nested 200 000 deep is refused with EPROTO; the daemon lives on', { timeout: 30000 }, async () => {
  const { d, sock } = await daemon('deep');
  const r = raw(sock);
  await r.connected;
  // the request: 400 KB, valid JSON, a verb, arguments nested 200 000 deep
  r.c.write(`{"id":1,"verb":"ping","args":{"x":${'['.repeat(200000)}${']'.repeat(200000)}}}\n`);
  r.c.write(`${'{"a":'.repeat(100000)}1${'}'.repeat(100000)}\n`);
  r.c.write('{"id":7,"verb":"ping","args":{"x":' + '['.repeat(30) + ']'.repeat(30) + '}}\n');
  await until('three replies', () => r.st.lines.length >= 3 || d.exitCode !== null || r.st.closed);
  assert.equal(d.exitCode, null, `the daemon is alive: ${d.output()}`);
  const replies = r.st.lines.map((l) => JSON.parse(l) as { id?: number; ok: boolean; error?: { code: string; message: string } });
  for (const x of replies.slice(0, 2)) { assert.equal(x.ok, false); assert.equal(x.error!.code, 'EPROTO'); assert.match(x.error!.message, /nested deeper than 32/); }
  assert.deepEqual([replies[2].id, replies[2].ok], [7, true], 'nesting within the limit is served, in order');
  r.c.end();
  assert.equal(await ping(sock), true);
  // fields besides {id, verb, args} never reach the worker (a 'stop' flag stopped it before)
  assert.equal(((await new Promise<string>((resolve) => {
    const q = raw(sock);
    q.c.write('{"id":1,"verb":"ping","stop":true}\n');
    void until('reply', () => q.st.lines.length > 0).then(() => { q.c.end(); resolve(q.st.lines[0]); });
  })).includes('"pong":true')), true);
  assert.equal(await ping(sock), true, 'still forwarding and answering');
  d.kill('SIGTERM'); assert.equal(await exited(d), 0);
});

test('finding 10: 256 MiB without a newline: cut off at 48 MiB with EMSGSIZE, memory bounded', { timeout: 60000 }, async () => {
  const { d, sock } = await daemon('huge');
  await ping(sock);
  const before = procStatus(d.pid!);
  const r = raw(sock);
  await r.connected;
  const chunk = Buffer.alloc(1 << 20, 0x61);
  let written = 0;
  while (written < 256 << 20 && !r.st.closed && !r.c.destroyed) {
    if (!r.c.write(chunk)) await new Promise<void>((res) => { const t = setTimeout(res, 200); r.c.once('drain', () => { clearTimeout(t); res(); }); });
    written += chunk.length;
  }
  await Promise.race([r.closed, new Promise((res) => setTimeout(res, 5000))]);
  const peak = procStatus(d.pid!);
  assert.ok(r.st.closed, `the daemon closed the connection (wrote ${written >> 20} MiB)`);
  assert.ok(written < 256 << 20, `cut off before the client could send it all (${written >> 20} MiB)`);
  assert.match(r.st.lines[0] ?? '', /"code":"EMSGSIZE"/, `the reason came back: ${r.st.lines[0]} ${r.st.error}`);
  const grewMiB = (peak.hwmKb - before.rssKb) / 1024;
  assert.ok(grewMiB < 150, `peak RSS grew ${grewMiB.toFixed(0)} MiB (before ${before.rssKb >> 10} MiB, peak ${peak.hwmKb >> 10} MiB)`);
  assert.equal(await ping(sock), true);
  d.kill('SIGTERM'); await exited(d);
});

test('finding 10: connections, requests in flight and dripping clients are bounded', { timeout: 60000 }, async () => {
  const { d, sock } = await daemon('bounds', { WASMAP_CTL_LIMITS: JSON.stringify({ maxConnections: 8, maxInFlight: 4, lineTimeoutMs: 1000 }) });
  const base = procStatus(d.pid!);
  // 8 connections are served; a 9th is told why and closed
  const held = Array.from({ length: 8 }, () => raw(sock));
  await Promise.all(held.map((h) => h.connected));
  await new Promise((r) => setTimeout(r, 100));
  const extra = raw(sock);
  await extra.closed;
  assert.match(extra.st.lines[0] ?? '', /"code":"EBUSY"/);
  // a dripping client: one byte every 100 ms never finishes a line; cut off after 1 s
  const drip = held[0];
  const t = setInterval(() => { if (!drip.c.destroyed) drip.c.write('{'); }, 100);
  await Promise.race([drip.closed, new Promise((r) => setTimeout(r, 5000))]);
  clearInterval(t);
  assert.ok(drip.st.closed, 'the dripping client was cut off');
  assert.match(drip.st.lines[0] ?? '', /"code":"ETIMEDOUT"/);
  for (const h of held) h.c.destroy();
  await until('connections released', () => procStatus(d.pid!).fds <= base.fds + 1);
  // 2000 pipelined requests, replies not read for a while: all answered, in order, once
  const p = raw(sock);
  await p.connected;
  p.c.pause();
  let text = '';
  for (let i = 0; i < 2000; i++) text += i % 3 === 0 ? `{"id":${i},"verb":"ping"}\n` : i % 3 === 1 ? `{"id":${i},"verb":7}\n` : 'garbage\n';
  p.c.write(text);
  await new Promise((r) => setTimeout(r, 300));
  p.c.resume();
  p.c.end(); // half-closed: it still gets every reply
  await Promise.race([p.closed, new Promise((r) => setTimeout(r, 10000))]);
  assert.equal(p.st.lines.length, 2000, 'one reply per request');
  p.st.lines.forEach((l, i) => {
    const x = JSON.parse(l) as { id?: number; ok: boolean };
    if (i % 3 === 0) { assert.equal(x.id, i); assert.equal(x.ok, true); } else if (i % 3 === 1) { assert.equal(x.id, i); assert.equal(x.ok, false); } else assert.equal(x.ok, false);
  });
  // 50 000 refused lines at once (answered synchronously: once a recursion per line, which
  // overflowed the stack and ended the daemon)
  const g = raw(sock);
  await g.connected;
  g.c.write('x\n'.repeat(50000));
  g.c.end();
  await Promise.race([g.closed, new Promise((r) => setTimeout(r, 20000))]);
  assert.equal(g.st.lines.length, 50000, `every line answered (${g.st.lines.length}): ${d.output().slice(-500)}`);
  assert.equal(await ping(sock), true);
  d.kill('SIGTERM'); await exited(d);
});

test('finding 8: a forwarding loop that throws: pending requests get EWORKER, the daemon exits loudly', { timeout: 30000 }, async () => {
  const { d, sock } = await daemon('loop', { WASMAP_TEST_LOOP_FAULT: 'throw:list' });
  const conn = await CtlConnection.open(sock);
  assert.equal(((await conn.request('ping')) as { pong: boolean }).pong, true);
  await assert.rejects(conn.request('list', {}, 5000), (e: Error & { code?: string }) => e.code === 'EWORKER' || e.code === 'ECONNRESET');
  const code = await Promise.race([exited(d), new Promise((r) => setTimeout(() => r('still running'), 10000))]);
  assert.equal(code, 70, `exit status 70: ${d.output()}`);
  assert.match(d.output(), /FATAL: the forwarding loop failed: Error: injected loop fault/);
  assert.ok(!existsSync(sock), 'the socket is gone');
  conn.close();
});

test('finding 8: a forwarding loop that stops coming round: the watchdog answers EWORKER and the daemon exits loudly', { timeout: 30000 }, async () => {
  const { d, sock } = await daemon('hang', { WASMAP_TEST_LOOP_FAULT: 'hang:list', WASMAP_CTL_LIMITS: JSON.stringify({ loopStallMs: 1500 }) });
  const conn = await CtlConnection.open(sock);
  assert.equal(((await conn.request('ping')) as { pong: boolean }).pong, true);
  const t0 = Date.now();
  await assert.rejects(conn.request('list', {}, 10000), (e: Error & { code?: string }) => e.code === 'EWORKER' || e.code === 'ECONNRESET');
  assert.ok(Date.now() - t0 < 6000, `answered within ${Date.now() - t0} ms`);
  const code = await Promise.race([exited(d), new Promise((r) => setTimeout(() => r('still running'), 10000))]);
  assert.equal(code, 70, `exit status 70: ${d.output()}`);
  assert.match(d.output(), /FATAL: the forwarding loop has not come round for \d+ s/);
  assert.ok(!existsSync(sock), 'the socket is gone');
  conn.close();
});

test('finding 13: a socket path that cannot be bound or is too long: one line, non-zero, nothing left', { timeout: 30000 }, () => {
  let r = wasmap('switch', 'vale0', '--socket', '/proc/wasmap-x.sock');
  assert.notEqual(r.code, 0);
  assert.equal(r.err.trim().split('\n').length, 1, r.err);
  assert.match(r.err, /cannot listen on \/proc\/wasmap-x\.sock/);
  const long = join(dir, `${'l'.repeat(120)}.sock`);
  r = wasmap('switch', 'vale0', '--socket', long);
  assert.equal(r.code, 2);
  assert.match(r.err, /at most 107 bytes/);
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('lll')), [], 'no socket at a truncated path');
  // a path that exists and is not a socket is refused, not deleted
  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'keep me');
  r = wasmap('switch', 'vale0', '--socket', file);
  assert.equal(r.code, 2);
  assert.match(r.err, /exists and is not a socket/);
  assert.equal(readFileSync(file, 'utf8'), 'keep me');
});

test('finding 13: the socket is 0600', { timeout: 30000 }, async () => {
  const { d, sock } = await daemon('mode');
  assert.equal(statSync(sock).mode & 0o777, 0o600);
  d.kill('SIGTERM');
  assert.equal(await exited(d), 0, d.output());
  assert.ok(!existsSync(sock), `a clean stop removes the socket: ${d.output()}`);
});

test('finding 14: a capture ends with its client (SIGTERM, SIGKILL) and ctl capture-stop stops one', { timeout: 60000 }, async () => {
  const { d, sock } = await daemon('cap');
  await ctlRequest(sock, 'attach', { switch: 'vale0', port: 'c1' });
  const status = async () => ((await ctlRequest(sock, 'capture-status', { switch: 'vale0', port: 'c1' })) as { active: boolean }).active;
  const capture = () => {
    const c = spawn(process.execPath, [cli(), 'capture', 'vale0', 'c1', '-w', join(dir, 'c1.pcap'), '--socket', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(c);
    let out = '';
    c.stdout!.on('data', (x) => { out += x; }); c.stderr!.on('data', (x) => { out += x; });
    return { c, out: () => out, started: until('capture started', () => out.includes('capturing'), 10000) };
  };
  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    const k = capture();
    await k.started;
    assert.equal(await status(), true);
    k.c.kill(sig);
    const code = await exited(k.c);
    if (sig === 'SIGTERM') { assert.equal(code, 0, k.out()); assert.match(k.out(), /frames captured .*stopped by SIGTERM/); }
    const end = Date.now() + 5000;
    while (await status()) { assert.ok(Date.now() < end, `the capture stopped after ${sig}`); await new Promise((r) => setTimeout(r, 50)); }
  }
  // a capture whose client stays connected: ctl capture-stop ends it
  const conn = await CtlConnection.open(sock);
  await conn.request('capture', { switch: 'vale0', port: 'c1', file: join(dir, 'c2.pcap'), count: 0 });
  assert.equal(await status(), true);
  const r = wasmap('ctl', '--socket', sock, 'capture-stop', 'vale0', 'c1');
  assert.equal(r.code, 0, r.err);
  assert.equal(await status(), false);
  conn.close();
  d.kill('SIGTERM'); await exited(d);
});

test('finding 15: ctl --json prints errors as JSON; a switch name that is not one is said so', { timeout: 30000 }, async () => {
  const { d, sock } = await daemon('json');
  let r = wasmap('ctl', '--socket', sock, '--json', 'detach', 'vale0', 'nope');
  assert.equal(r.code, 2);
  const j = JSON.parse(r.out) as { ok: boolean; error: { code: string; message: string } };
  assert.equal(j.ok, false); assert.equal(j.error.code, 'ENOENT');
  r = wasmap('ctl', '--socket', sock, 'attach', 'vale0:x', 'vale0:x');
  assert.equal(r.code, 2);
  assert.match(r.err, /'vale0:x' is not a switch name/);
  assert.doesNotMatch(r.err, /no switch vale0:x/);
  r = wasmap('ctl', '--socket', sock, '--json', 'ping');
  assert.equal(r.code, 0, r.err);
  assert.equal((JSON.parse(r.out) as { pong: boolean }).pong, true);
  d.kill('SIGTERM'); await exited(d);
});
