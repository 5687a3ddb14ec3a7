// Containers through wasmap with a real runtime: podman (CNI network backend) runs two
// containers on a conflist whose plugin is "type": "wasmap" with host-local IPAM. They ping
// each other and run iperf3 through the switch; the daemon (with --config) is restarted during
// a ping and loses under 5 % of it, the containers keeping their addresses; `podman rm` takes
// the ports away. Everything podman keeps (storage, run root, CNI config) is in a per-run
// directory. Needs root, podman, runc, containernetworking-plugins, iperf3; skipped without
// them unless WASMAP_REQUIRE_NET=1.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { startDaemonProcess, exited } from './daemon-proc.js';
import { ctlRequest } from '../../src/ctl/client.js';
import { findBuildFile } from '../../src/paths.js';
import { prerequisites } from './net-harness.js';

const lacks = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0;
const why = process.getuid?.() !== 0 ? 'needs root' : lacks('podman') || lacks('runc') || !existsSync('/usr/lib/cni/host-local') || lacks('iperf3')
  ? 'needs podman, runc, the CNI plugins and iperf3 (apt-get install podman runc containernetworking-plugins iperf3)' : '';
const skip = prerequisites('podman test', why);

const P = `pm${process.pid % 10000}`, dir = `/tmp/wasmap-${P}`, sock = `${dir}/ctl.sock`, topo = `${dir}/topology.json`;
const net = `${P}net`, subnet = '10.94.9.0/24';
const env = { ...process.env, CONTAINERS_CONF: `${dir}/containers.conf` };
const podman = (args: string[], timeout = 60000) => {
  const r = spawnSync('podman', ['--root', `${dir}/storage`, '--runroot', `${dir}/runroot`, ...args], { encoding: 'utf8', env, timeout });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const run = (name: string) => podman(['run', '-d', '--name', name, '--runtime', 'runc', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024',
  '--network', net, '-v', '/usr:/usr:ro', '--rootfs', `${dir}/rootfs`, 'sleep', '600']);
const procs: ChildProcess[] = [];
after(async () => {
  podman(['rm', '-f', '--ignore', '-t', '0', `${P}a`, `${P}b`]); // --ignore: a was removed by the test; without it b would stay
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) { p.kill('SIGKILL'); await exited(p); }
  spawnSync('sh', ['-c', `umount -R ${dir}/runroot 2>/dev/null; umount -R ${dir}/storage 2>/dev/null; rm -rf ${dir}`]);
});

test('podman: two containers on a wasmap CNI network ping and run iperf3; a daemon restart loses < 5 % of a ping; podman rm takes the ports', { skip, timeout: 180000 }, async () => {
  // the plugin as a runtime finds it: an executable named after its type in a plugin dir
  mkdirSync(`${dir}/cni-bin`, { recursive: true }); mkdirSync(`${dir}/net.d`); mkdirSync(`${dir}/rootfs/usr`, { recursive: true });
  writeFileSync(`${dir}/cni-bin/wasmap`, `#!/bin/sh\nexec ${process.execPath} ${findBuildFile('cni.mjs')} "$@"\n`);
  chmodSync(`${dir}/cni-bin/wasmap`, 0o755);
  writeFileSync(`${dir}/containers.conf`, `[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["${dir}/cni-bin", "/usr/lib/cni"]\nnetwork_config_dir = "${dir}/net.d"\n`);
  writeFileSync(`${dir}/net.d/${net}.conflist`, JSON.stringify({ cniVersion: '1.0.0', name: net, plugins: [{ type: 'wasmap', switch: 'vale0', socket: sock, ipam: { type: 'host-local', subnet, dataDir: `${dir}/ipam` } }] }));
  // a root file system of the host's /usr (mounted read-only): busybox-free, with ping, ip, iperf3
  for (const [l, t] of [['bin', 'usr/bin'], ['sbin', 'usr/sbin'], ['lib', 'usr/lib'], ['lib64', 'usr/lib64']]) symlinkSync(t, `${dir}/rootfs/${l}`);
  for (const d of ['proc', 'sys', 'dev', 'etc', 'tmp', 'run']) mkdirSync(`${dir}/rootfs/${d}`);
  let d = await startDaemonProcess(['vale0', '--socket', sock, '--config', topo]);
  procs.push(d);
  for (const c of ['a', 'b']) { const r = run(`${P}${c}`); assert.equal(r.code, 0, `podman run: ${r.err}`); }
  const addr = (c: string) => /inet (10\.94\.9\.\d+)\//.exec(podman(['exec', `${P}${c}`, 'ip', '-4', 'addr', 'show', 'eth0']).out)?.[1];
  const a = addr('a'), b = addr('b');
  assert.ok(a && b && a !== b, `host-local addresses: ${a}, ${b}`);
  assert.equal((await ctlRequest(sock, 'list', {}) as unknown[]).length, 2, 'one port per container');
  let r = podman(['exec', `${P}a`, 'ping', '-c', '3', '-i', '0.2', '-W', '2', b!]);
  assert.match(r.out, / 0% packet loss/, `ping a → b: ${r.out}${r.err}`);
  assert.equal(podman(['exec', '-d', `${P}b`, 'iperf3', '-s', '-1']).code, 0);
  await new Promise((res) => setTimeout(res, 500));
  r = podman(['exec', `${P}a`, 'iperf3', '-c', b!, '-t', '2', '-J', '--connect-timeout', '3000'], 30000);
  assert.equal(r.code, 0, `iperf3 between the containers: ${r.out.slice(0, 500)}${r.err}`);
  const gbps = (JSON.parse(r.out) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
  assert.ok(gbps > 0.05, `iperf3 TCP between the containers: ${gbps.toFixed(2)} Gbit/s`);
  // restart the daemon in the middle of a 30 s ping (100 pings; a restart takes ~0.5-1 s): the topology file brings the
  // ports back on the same veths; the containers keep their addresses
  const ping = spawnSync('sh', ['-c', `sleep 0 & podman --root ${dir}/storage --runroot ${dir}/runroot exec ${P}a ping -c 100 -i 0.3 -W 1 ${b} > ${dir}/ping.out 2>&1 &`], { env });
  assert.equal(ping.status, 0);
  await new Promise((res) => setTimeout(res, 5000));
  const t0 = Date.now();
  d.kill('SIGTERM'); await exited(d);
  d = await startDaemonProcess(['vale0', '--socket', sock, '--config', topo]);
  procs.push(d);
  const outage = Date.now() - t0;
  assert.match(d.output(), /config: restored 2 of 2/);
  await new Promise((res) => setTimeout(res, 27000 - (Date.now() - t0)));
  const out = spawnSync('cat', [`${dir}/ping.out`], { encoding: 'utf8' }).stdout;
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  assert.ok(m, `ping finished: ${out.slice(-300)}`);
  const loss = 1 - Number(m![2]) / Number(m![1]);
  assert.ok(loss < 0.05, `lost ${(loss * 100).toFixed(1)} % of the pings across a restart of ${outage} ms (< 5 %): ${out.trim().split('\n').slice(-2).join(' / ')}`);
  assert.equal(addr('a'), a); assert.equal(addr('b'), b);
  // podman rm: CNI DEL detaches the port and removes the veth
  r = podman(['rm', '-f', '-t', '0', `${P}a`]);
  assert.equal(r.code, 0, r.err);
  assert.equal((await ctlRequest(sock, 'list', {}) as unknown[]).length, 1, 'the removed container\'s port is gone');
});
