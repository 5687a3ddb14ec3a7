// The wasmap command as a user runs it: the demo, pkt-gen, bench and the errors they print.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { findBuildFile } from '../../src/paths.js';

const cli = findBuildFile('cli.mjs');
function wasmap(...args: string[]) {
  assert.ok(cli, 'build/cli.mjs exists (npm run build)');
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('demo runs, accounts for every frame and exits 0', () => {
  const r = wasmap('demo', '--seconds', '1', '--json');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { ok: boolean; sent: number; received: number; drops: number; floodExtra: number; ports: { name: string; dropFull: number }[] };
  assert.equal(j.ok, true);
  assert.equal(j.sent + j.floodExtra, j.received + j.drops);
  assert.ok(j.received > 100000, `frames flowed (${j.received})`);
  assert.deepEqual(j.ports.map((p) => p.name), ['a', 'b', 'c', 'd']);
  assert.ok(j.ports[3].dropFull > 0, 'the small ring of port d overflowed and it was counted');
});

test('demo table shows every port and the verdict', () => {
  const r = wasmap('demo', '--seconds', '1');
  assert.equal(r.code, 0, r.err);
  for (const s of ['vale0:a', 'vale0:d', 'total', 'every frame accounted for']) assert.ok(r.out.includes(s), `output has '${s}'`);
});

test('pkt-gen sends a counted number of frames through two switch ports', () => {
  const r = wasmap('pkt-gen', '-i', 'vale0:a', '-i', 'vale0:b', '-n', '100000', '-S', '02:00:00:00:00:01', '-D', '02:00:00:00:00:02');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /Sent 100000 packets 6000000 bytes/);
  assert.match(r.out, /Received 100000 packets/);
  assert.match(r.out, /sent 100000, received 100000, dropped 0/);
});

test('pkt-gen through a pipe, rate limited', () => {
  const r = wasmap('pkt-gen', '-i', 'pipe{1', '-n', '20000', '-R', '100000');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /Received 20000 packets/);
  const secs = Number(/in ([\d.]+) seconds\./.exec(r.out)?.[1]);
  assert.ok(secs >= 0.15 && secs < 2, `20000 frames at 100 kpps take about 0.2 s, took ${secs}`);
});

test('pkt-gen alone on a switch: every frame dropped and counted', () => {
  const r = wasmap('pkt-gen', '-i', 'vale1:x', '-n', '5000');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /sent 5000, received 0, dropped 5000/);
});

test('bad input gets a clear error and exit code 2', () => {
  let r = wasmap('pkt-gen', '-i', 'vale0:no such');
  assert.equal(r.code, 2);
  assert.match(r.err, /port name 'vale0:no such'/);
  r = wasmap('pkt-gen', '-i', 'vale0:a', '-l', '10');
  assert.equal(r.code, 2);
  assert.match(r.err, /-l must be 42\.\.2048/);
  r = wasmap('frobnicate');
  assert.equal(r.code, 2);
  assert.match(r.err, /unknown command 'frobnicate'/);
  r = wasmap('bench', '--only', 'nope');
  assert.equal(r.code, 2);
  assert.match(r.err, /unknown scenario 'nope'/);
});

test('bench --json prints the scenario fields', () => {
  const r = wasmap('bench', '--only', 'pipe-60,switch-2port-60', '--runs', '1', '--seconds', '0.2', '--json');
  assert.equal(r.code, 0, r.err);
  const rows = JSON.parse(r.out) as Record<string, unknown>[];
  const names = rows.map((x) => x.name);
  assert.deepEqual(names.sort(), ['native-2port-60', 'pipe-60', 'switch-2port-60']);
  for (const row of rows) for (const k of ['name', 'mpps', 'gbps', 'frame', 'ports', 'batch']) assert.ok(k in row, `${row.name} has ${k}`);
  const sw = rows.find((x) => x.name === 'switch-2port-60')!;
  assert.equal(typeof sw.ratio, 'number');
  assert.ok((sw.mpps as number) > 0);
});

test('help teaches every command', () => {
  const r = wasmap('--help');
  assert.equal(r.code, 0);
  for (const c of ['demo', 'bench', 'pkt-gen', 'doctor']) assert.ok(r.out.includes(c));
  assert.match(wasmap('pkt-gen', '--help').out, /-R PPS/);
});

test('ctl --json prints its errors as a JSON object and exits non-zero', () => {
  const r = wasmap('ctl', '--json', '--socket', '/tmp/wasmap-no-such-daemon.sock', 'list');
  assert.equal(r.code, 2);
  const j = JSON.parse(r.out) as { ok: boolean; error: { code: string; message: string } };
  assert.deepEqual([j.ok, j.error.code], [false, 'ENOSWITCH']);
  assert.match(j.error.message, /no switch daemon at \/tmp\/wasmap-no-such-daemon\.sock/);
  const u = wasmap('ctl', '--json', 'frobnicate');
  assert.equal(u.code, 2);
  assert.equal((JSON.parse(u.out) as { error: { code: string } }).error.code, 'EINVAL');
});

test('ctl names a switch argument that is not a switch as such (attach vale1:x vale1:x)', () => {
  const r = wasmap('ctl', '--socket', '/tmp/wasmap-no-such-daemon.sock', 'attach', 'vale1:x', 'vale1:x');
  assert.equal(r.code, 2);
  assert.match(r.err, /'vale1:x' is not a switch name.*did you mean switch vale1, port x/);
  const long = wasmap('ctl', '--socket', `/tmp/${'s'.repeat(110)}.sock`, 'list');
  assert.equal(long.code, 2);
  assert.match(long.err, /at most 107 bytes/);
});
