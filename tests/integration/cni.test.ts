// The CNI plugin invoked directly, as a runtime does (the spec's environment variables, the
// network configuration on stdin), against a running daemon and Debian's host-local IPAM
// plugin: two "containers" (network namespaces) get addresses and ping each other through the
// switch; ADD twice, DEL twice, CHECK, and every error path with its CNI code — and after any
// failed ADD nothing is left behind (no veth, no port, no address held by IPAM).
// Needs root, ip, ping, nsenter and /usr/lib/cni/host-local (apt-get install
// containernetworking-plugins); skipped without them unless WASMAP_REQUIRE_NET=1.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { startDaemonProcess, exited } from './daemon-proc.js';
import { ctlRequest } from '../../src/ctl/client.js';
import { findBuildFile } from '../../src/paths.js';
import { hostIfName } from '../../src/cni/plugin.js';
import { prerequisites } from './net-harness.js';

const lacks = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0;
const why = process.getuid?.() !== 0 ? 'needs root (namespaces, veth)' : lacks('ip') || lacks('ping') || lacks('nsenter') ? 'needs ip, ping, nsenter (apt-get install iproute2 iputils-ping util-linux)'
  : !existsSync('/usr/lib/cni/host-local') ? 'needs the host-local IPAM plugin (apt-get install containernetworking-plugins)' : '';
const skip = prerequisites('CNI test', why);

const P = `cn${process.pid % 10000}`, sock = `/tmp/${P}.sock`, ipamDir = `/tmp/${P}-ipam`;
const ns = (c: string) => `${P}${c}`;
const conf = (o: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.0.0', name: `${P}net`, type: 'wasmap', socket: sock,
  ipam: { type: 'host-local', subnet: '10.96.7.0/24', dataDir: ipamDir }, ...o });
const cniBin = findBuildFile('cni.mjs');
function plugin(command: string, c: string, stdin: string, env: Record<string, string | undefined> = {}) {
  const e: Record<string, string> = { ...process.env as Record<string, string>, CNI_COMMAND: command, CNI_CONTAINERID: `ctr-${P}-${c}`, CNI_NETNS: `/run/netns/${ns(c)}`, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete e[k]; else e[k] = v;
  const r = spawnSync(process.execPath, [cniBin!], { input: stdin, encoding: 'utf8', env: e, timeout: 30000 });
  let json: Record<string, unknown> | null = null;
  try { json = r.stdout.trim() ? JSON.parse(r.stdout) : null; } catch { /* not JSON: the assertion shows it */ }
  return { code: r.status, json, out: r.stdout + r.stderr };
}
const sh = (cmd: string, ok = true) => { const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: 30000 }); if (ok && r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`); return r.stdout; };
const wmLinks = () => sh("ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1", false).split('\n').filter((l) => [hostIfName(`ctr-${P}-a`, 'eth0'), hostIfName(`ctr-${P}-b`, 'eth0'), hostIfName(`ctr-${P}-c`, 'eth0')].includes(l));
const ports = async () => (await ctlRequest(sock, 'list', {}) as { name: string; down: string | null }[]).map((p) => p.name);
const procs: ChildProcess[] = [];
after(async () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) { p.kill('SIGKILL'); await exited(p); }
  for (const c of ['a', 'b', 'c']) sh(`ip netns del ${ns(c)} 2>/dev/null; ip link del ${hostIfName(`ctr-${P}-${c}`, 'eth0')} 2>/dev/null`, false);
  rmSync(ipamDir, { recursive: true, force: true }); rmSync(sock, { force: true });
});

test('CNI: VERSION, and malformed input refused with the spec\'s codes before anything is made', { skip }, () => {
  const v = plugin('VERSION', 'a', '');
  assert.equal(v.code, 0);
  assert.deepEqual(v.json, { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] });
  const cases: [string, ReturnType<typeof plugin>, number, RegExp][] = [
    ['not JSON', plugin('ADD', 'a', '{oops'), 6, /not JSON/],
    ['unsupported version', plugin('ADD', 'a', conf({ cniVersion: '9.9.9' })), 1, /9\.9\.9 is not supported/],
    ['another type', plugin('ADD', 'a', conf({ type: 'bridge' })), 7, /this plugin is 'wasmap'/],
    ['bad switch name', plugin('ADD', 'a', conf({ switch: 'eth0' })), 7, /switch name/],
    ['no container id', plugin('ADD', 'a', conf(), { CNI_CONTAINERID: undefined }), 4, /CNI_CONTAINERID/],
    ['bad ifname', plugin('ADD', 'a', conf(), { CNI_IFNAME: 'a-very-long-interface-name' }), 4, /CNI_IFNAME/],
    ['no such netns', plugin('ADD', 'a', conf(), { CNI_NETNS: '/run/netns/none-such' }), 3, /does not exist/],
    ['bad command', plugin('FROB', 'a', conf()), 4, /CNI_COMMAND 'FROB'/],
  ];
  for (const [name, r, code, msg] of cases) {
    assert.equal(r.code, 1, `${name}: exit 1 (${r.out})`);
    assert.equal(r.json?.code, code, `${name}: code ${code}: ${r.out}`);
    assert.match(String(r.json?.msg), msg, name);
  }
});

test('CNI against a daemon: ADD two containers that ping each other; ADD twice, CHECK, DEL twice; every failed ADD leaves nothing behind', { skip, timeout: 90000 }, async () => {
  for (const c of ['a', 'b', 'c']) sh(`ip netns add ${ns(c)}`);
  // no daemon yet: try again later (11), with the command that starts one; nothing made
  let r = plugin('ADD', 'a', conf());
  assert.equal(r.json?.code, 11, r.out);
  assert.match(String(r.json?.msg), /daemon is not running .*wasmap switch vale0 --socket/);
  assert.deepEqual(wmLinks(), []);
  const d = await startDaemonProcess(['vale0', '--socket', sock]);
  procs.push(d);
  r = plugin('ADD', 'a', conf({ switch: 'vale7' }));
  assert.equal(r.json?.code, 101, `a switch the daemon does not run: ${r.out}`);
  assert.deepEqual(wmLinks(), [], 'nothing left after the refused attach');
  r = plugin('ADD', 'a', conf({ ipam: { type: 'no-such-ipam' } }));
  assert.equal(r.json?.code, 102, r.out);
  assert.match(String(r.json?.msg), /'no-such-ipam' not found in CNI_PATH/);
  r = plugin('ADD', 'a', conf({ ipam: { type: 'host-local', subnet: '10.96.7.0/33', dataDir: ipamDir } }));
  assert.equal(r.json?.code, 102, `IPAM failing midway: ${r.out}`);
  assert.deepEqual(wmLinks(), [], 'the veth made before IPAM failed is gone');
  assert.deepEqual(await ports(), [], 'the port attached before IPAM failed is detached');
  assert.equal(sh(`ip -n ${ns('a')} -o link show`).includes('eth0'), false, 'no eth0 left in the container');

  const a = plugin('ADD', 'a', conf()), b = plugin('ADD', 'b', conf());
  assert.equal(a.code, 0, a.out); assert.equal(b.code, 0, b.out);
  const addrOf = (x: typeof a) => String((x.json!.ips as { address: string }[])[0].address).split('/')[0];
  assert.equal((a.json!.interfaces as { sandbox?: string }[])[1].sandbox, `/run/netns/${ns('a')}`);
  assert.match(sh(`ip netns exec ${ns('a')} ping -c 3 -i 0.2 -W 2 ${addrOf(b)}`), / 0% packet loss/, 'the containers reach each other through the switch');
  assert.equal((await ports()).length, 2);
  // ADD twice for the same container and interface: refused, the first one keeps working
  r = plugin('ADD', 'a', conf());
  assert.equal(r.json?.code, 7, r.out);
  assert.match(sh(`ip netns exec ${ns('a')} ping -c 1 -W 2 ${addrOf(b)}`), / 0% packet loss/);
  // CHECK: fine with ADD's result; fails when the address is gone
  assert.equal(plugin('CHECK', 'a', conf({ prevResult: a.json })).code, 0);
  sh(`ip -n ${ns('a')} addr del ${(a.json!.ips as { address: string }[])[0].address} dev eth0`);
  r = plugin('CHECK', 'a', conf({ prevResult: a.json }));
  assert.equal(r.code, 1); assert.match(String(r.json?.msg), /lacks 10\.96\.7/);
  // DEL: the port, the veth and the address go; DEL again is fine; the address is free again
  for (let i = 0; i < 2; i++) assert.equal(plugin('DEL', 'a', conf()).code, 0, `DEL #${i + 1}`);
  assert.deepEqual(await ports(), [`vale0:${hostIfName(`ctr-${P}-b`, 'eth0')}`]);
  assert.deepEqual(wmLinks(), [hostIfName(`ctr-${P}-b`, 'eth0')]);
  assert.ok(!existsSync(`${ipamDir}/${P}net/${addrOf(a)}`) && existsSync(`${ipamDir}/${P}net/${addrOf(b)}`), 'host-local released the address of a (and holds b\'s)');
  const c = plugin('ADD', 'c', conf());
  assert.equal(c.code, 0, c.out);
  // DEL with the namespace gone and the daemon stopped: still success (idempotent clean-up)
  sh(`ip netns del ${ns('c')}`);
  d.kill('SIGTERM'); await exited(d);
  r = plugin('DEL', 'c', conf());
  assert.equal(r.code, 0, r.out);
  assert.equal(plugin('DEL', 'b', conf()).code, 0);
  assert.deepEqual(wmLinks(), []);
});
