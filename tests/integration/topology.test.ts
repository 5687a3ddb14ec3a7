// A daemon keeps its topology across restarts: ports of every kind with their options and the
// forwarding function with its configuration, built through `ctl`, saved with `ctl save`,
// built again by `wasmap switch --config FILE` — `ctl list --json` and the lookup identical.
// With --config the file follows every change; a port whose interface is gone by the restart
// is logged and left out; a file that is not a topology stops the start with the reason.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { startDaemonProcess, exited } from './daemon-proc.js';
import { ctlRequest } from '../../src/ctl/client.js';
import { findBuildFile } from '../../src/paths.js';
import { prerequisites } from './net-harness.js';

const why = process.getuid?.() !== 0 ? 'needs root (TAP, veth)' : !existsSync('/dev/net/tun') ? 'no /dev/net/tun' : spawnSync('sh', ['-c', 'command -v ip']).status !== 0 ? 'needs ip (apt-get install iproute2)' : '';
const skip = prerequisites('topology test', why);

const P = `to${process.pid % 10000}`, sock = `/tmp/${P}.sock`, file = `/tmp/${P}-topo.json`, vh = `/tmp/${P}-vh.sock`;
const sh = (cmd: string, ok = true) => { const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' }); if (ok && r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`); return r.stdout; };
const procs: ChildProcess[] = [];
after(async () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) { p.kill('SIGKILL'); await exited(p); }
  sh(`ip link del ${P}v0 2>/dev/null; ip link del ${P}w0 2>/dev/null; rm -f ${sock} ${file} ${vh}`, false);
});
const cli = findBuildFile('cli.mjs')!;
const view = async () => ({
  list: await ctlRequest(sock, 'list', {}),
  lookup: (({ function: f, ...rest }) => ({ ...rest, function: f && { ...f, loadedAt: 'when it was loaded' } }))(
    (await ctlRequest(sock, 'stats', { switch: 'vale0' }) as { lookup: { mode: string; function: { name: string; state: string; loadedAt?: string } | null } }[])[0].lookup),
});

test('ctl save, restart with --config: the same ports, options and forwarding function; the file follows changes; a vanished interface is left out', { skip, timeout: 90000 }, async () => {
  sh(`ip link add ${P}v0 type veth peer name ${P}v1 && ip link add ${P}w0 type veth peer name ${P}w1 && ip link set ${P}v0 up && ip link set ${P}w0 up`);
  let d = await startDaemonProcess(['vale0', '--socket', sock]);
  procs.push(d);
  await ctlRequest(sock, 'newif', { name: `${P}per` });
  await ctlRequest(sock, 'attach', { switch: 'vale0', port: 'virt', vnetHdr: 12 });
  await ctlRequest(sock, 'attach', { switch: 'vale0', port: `tap:${P}t0`, vnetHdr: 0 });
  await ctlRequest(sock, 'attach', { switch: 'vale0', port: `af_packet:${P}v0` });
  await ctlRequest(sock, 'attach', { switch: 'vale0', port: `vhost-user:${vh}`, name: 'vm1' });
  await ctlRequest(sock, 'attach', { switch: 'vale0', port: `${P}per` });
  const wasm = readFileSync(findBuildFile('examples/acl.wasm')!).toString('base64');
  await ctlRequest(sock, 'set-lookup', { switch: 'vale0', module: wasm, name: 'acl.wasm', config: { rules: [{ ethertype: 2054, action: 'allow' }], default: 'allow', forward: { 0: 1, 1: 0 } }, fallback: 'learning' });
  const before = await view();
  assert.equal((before.list as unknown[]).length, 5);
  const saved = spawnSync(process.execPath, [cli, 'ctl', '--socket', sock, 'save', file], { encoding: 'utf8' });
  assert.equal(saved.status, 0, saved.stderr);
  assert.match(saved.stdout, /saved 5 port\(s\)/);
  d.kill('SIGTERM'); await exited(d);

  d = await startDaemonProcess(['vale0', '--socket', sock, '--config', file]);
  procs.push(d);
  assert.deepEqual(await view(), before, 'the same ports (kinds, indexes, header lengths) and the same function with its config');
  assert.match(d.output(), /config: restored 7 of 7/);
  // with --config the file follows every change
  await ctlRequest(sock, 'detach', { switch: 'vale0', port: 'virt' });
  await ctlRequest(sock, 'attach', { switch: 'vale0', port: `af_packet:${P}w0`, vnetHdr: 0 });
  const t = JSON.parse(readFileSync(file, 'utf8')) as { ports: { port: string; options: Record<string, unknown> }[] };
  assert.ok(!t.ports.some((p) => p.port === 'virt'), 'the detached port left the file');
  assert.deepEqual(t.ports.find((p) => p.port === `af_packet:${P}w0`)?.options, { vnetHdr: 0 }, 'the new one is there with its options');
  d.kill('SIGTERM'); await exited(d);
  // an interface gone meanwhile: that port is left out (logged), the rest comes back
  sh(`ip link del ${P}w0`);
  d = await startDaemonProcess(['vale0', '--socket', sock, '--config', file]);
  procs.push(d);
  const names = (await ctlRequest(sock, 'list', {}) as { name: string }[]).map((p) => p.name).sort();
  assert.deepEqual(names, [`vale0:${P}per`, `vale0:${P}t0`, `vale0:${P}v0`, 'vale0:vm1']);
  assert.match(d.output(), new RegExp(`config: attach af_packet:${P}w0 not restored: .*${P}w0`));
  d.kill('SIGTERM'); await exited(d);
});

test('--config with a file that is not a topology: the daemon does not start, and says why', { skip, timeout: 30000 }, async () => {
  writeFileSync(file, JSON.stringify({ ports: [] }));
  const sock2 = `${sock}2`;
  const r = spawnSync(process.execPath, [cli, 'switch', 'vale0', '--socket', sock2, '--config', file], { encoding: 'utf8', timeout: 20000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr + r.stdout, /not a wasmap topology .*wasmap ctl save FILE/);
  writeFileSync(file, '{ nope');
  const r2 = spawnSync(process.execPath, [cli, 'switch', 'vale0', '--socket', sock2, '--config', file], { encoding: 'utf8', timeout: 20000 });
  assert.match(r2.stderr + r2.stdout, /--config .*: not JSON/);
});
