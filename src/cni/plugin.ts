// wasmap as a CNI plugin (the Container Network Interface specification, 1.0.0): a container
// runtime (podman, containerd, CRI-O) runs it with CNI_COMMAND=ADD|DEL|CHECK|VERSION (and
// STATUS from 1.1), the network configuration on stdin. ADD makes a veth pair, moves one end
// into the container's network namespace as CNI_IFNAME, attaches the other end to a switch of
// the running wasmap daemon (through its control socket), gets addresses from the IPAM plugin
// the configuration names (exec protocol: the same environment, the configuration on stdin)
// and sets them inside the namespace. DEL undoes all of it and is idempotent. Anything ADD made
// before a failure is undone before it reports the error.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ctlRequest } from '../ctl/client.js';

export const SUPPORTED = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'];
/** The spec's error codes (CNI 1.0.0 §"Error"), plus our own from 100. */
export const E = { INCOMPATIBLE_VERSION: 1, UNSUPPORTED_FIELD: 2, UNKNOWN_CONTAINER: 3, INVALID_ENV: 4, IO: 5, DECODE: 6, INVALID_CONFIG: 7, TRY_AGAIN: 11, NOT_AVAILABLE: 50,
  DAEMON: 100, SWITCH_MISSING: 101, IPAM: 102, NETNS_CONFIG: 103 } as const;

export class CniError extends Error {
  constructor(readonly code: number, msg: string, readonly details = '') { super(msg); }
}

export interface NetConf {
  cniVersion: string; name: string; type: string;
  /** the wasmap switch the containers join (default vale0) */
  switch?: string;
  /** the daemon's control socket (default /run/wasmap/SWITCH.sock) */
  socket?: string;
  /** the port kind for the host end of the veth (default af_packet) */
  backend?: 'af_packet' | 'af_xdp';
  ipam?: { type: string; [k: string]: unknown };
  prevResult?: Result;
  [k: string]: unknown;
}
export interface Result {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number; version?: string }[];
  routes?: { dst: string; gw?: string }[];
  dns?: Record<string, unknown>;
}
export interface Env { command: string; containerId: string; netns: string; ifname: string; args: string; path: string[] }

export function readEnv(e: NodeJS.ProcessEnv): Env {
  return { command: e.CNI_COMMAND ?? '', containerId: e.CNI_CONTAINERID ?? '', netns: e.CNI_NETNS ?? '', ifname: e.CNI_IFNAME ?? '', args: e.CNI_ARGS ?? '', path: (e.CNI_PATH ?? '').split(':').filter(Boolean) };
}

export function parseConf(stdin: string): NetConf {
  let c: unknown;
  try { c = JSON.parse(stdin); } catch (e) { throw new CniError(E.DECODE, `the network configuration on stdin is not JSON: ${(e as Error).message}`); }
  if (!c || typeof c !== 'object' || Array.isArray(c)) throw new CniError(E.DECODE, 'the network configuration must be a JSON object');
  const n = c as NetConf;
  if (typeof n.cniVersion !== 'string') throw new CniError(E.INVALID_CONFIG, "the network configuration lacks 'cniVersion'");
  if (!SUPPORTED.includes(n.cniVersion)) throw new CniError(E.INCOMPATIBLE_VERSION, `CNI version ${n.cniVersion} is not supported; supported: ${SUPPORTED.join(', ')}`);
  if (typeof n.name !== 'string' || !n.name) throw new CniError(E.INVALID_CONFIG, "the network configuration lacks 'name'");
  if (n.type !== 'wasmap') throw new CniError(E.INVALID_CONFIG, `'type' is '${String(n.type)}': this plugin is 'wasmap'`);
  if (n.switch !== undefined && (typeof n.switch !== 'string' || !/^vale[A-Za-z0-9_]{0,11}$/.test(n.switch))) throw new CniError(E.INVALID_CONFIG, `'switch' must be a switch name (valeX), not ${JSON.stringify(n.switch)}`);
  if (n.socket !== undefined && (typeof n.socket !== 'string' || !n.socket.startsWith('/'))) throw new CniError(E.INVALID_CONFIG, `'socket' must be an absolute path, not ${JSON.stringify(n.socket)}`);
  if (n.backend !== undefined && !['af_packet', 'af_xdp'].includes(n.backend)) throw new CniError(E.INVALID_CONFIG, `'backend' must be af_packet or af_xdp, not ${JSON.stringify(n.backend)}`);
  if (n.ipam !== undefined && (typeof n.ipam !== 'object' || typeof n.ipam?.type !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(n.ipam.type))) throw new CniError(E.INVALID_CONFIG, "'ipam' must be an object whose 'type' names an IPAM plugin (e.g. host-local)");
  return n;
}

const swOf = (n: NetConf) => n.switch ?? 'vale0';
const sockOf = (n: NetConf) => n.socket ?? `/run/wasmap/${swOf(n)}.sock`;

/** The host end's name: the same for the same container and interface on every call (DEL and
 *  CHECK find it without state), 15 bytes at most as Linux wants. */
export function hostIfName(containerId: string, ifname: string): string {
  return `wm${createHash('sha256').update(`${containerId}\0${ifname}`).digest('hex').slice(0, 11)}`;
}

function run(cmd: string, args: string[], input?: string, env?: NodeJS.ProcessEnv): { code: number; out: string; err: string } {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 30000, env });
  return { code: r.status ?? (r.error ? 127 : 1), out: r.stdout ?? '', err: (r.stderr ?? '') + (r.error ? r.error.message : '') };
}
const ip = (args: string[]) => run('ip', args);
const inNs = (netns: string, args: string[]) => run('nsenter', [`--net=${netns}`, 'ip', ...args]);
const linkExists = (name: string) => ip(['link', 'show', 'dev', name]).code === 0;

function checkEnv(env: Env, needNetns: boolean): void {
  if (!env.containerId) throw new CniError(E.INVALID_ENV, 'CNI_CONTAINERID is not set');
  if (!env.ifname || !/^[A-Za-z0-9_.-]{1,15}$/.test(env.ifname)) throw new CniError(E.INVALID_ENV, `CNI_IFNAME '${env.ifname}' is not an interface name (1 to 15 letters, digits, '_', '-', '.')`);
  if (needNetns) {
    if (!env.netns) throw new CniError(E.INVALID_ENV, 'CNI_NETNS is not set');
    if (!existsSync(env.netns)) throw new CniError(E.UNKNOWN_CONTAINER, `the container's network namespace ${env.netns} does not exist`);
  }
}

async function daemon(n: NetConf, verb: string, args: Record<string, unknown>): Promise<unknown> {
  try { return await ctlRequest(sockOf(n), verb, { switch: swOf(n), ...args }, 10000); } catch (e) {
    const err = e as Error & { code?: string };
    if (/^no switch \S+ in this daemon/.test(err.message)) throw new CniError(E.SWITCH_MISSING, `${err.message}; set "switch" in the network configuration to one the daemon runs`);
    if (['ENOSWITCH', 'ECONNREFUSED'].includes(err.code ?? '') || (err.code === 'ENOENT' && !/in this daemon/.test(err.message))) {
      throw new CniError(E.TRY_AGAIN, `the wasmap daemon is not running at ${sockOf(n)}: start it with 'wasmap switch ${swOf(n)} --socket ${sockOf(n)}' (or set "socket" in the network configuration)`);
    }
    throw new CniError(E.DAEMON, `the wasmap daemon refused '${verb}': ${err.message}`);
  }
}

/** Run the IPAM plugin the configuration names, by the exec protocol. */
function ipam(n: NetConf, env: Env, command: 'ADD' | 'DEL' | 'CHECK'): Result | null {
  if (!n.ipam) return null;
  const exe = env.path.map((d) => join(d, n.ipam!.type)).find((f) => existsSync(f));
  if (!exe) throw new CniError(E.IPAM, `IPAM plugin '${n.ipam.type}' not found in CNI_PATH (${env.path.join(':') || 'empty'}); install it (Debian: containernetworking-plugins, in /usr/lib/cni)`);
  const r = run(exe, [], JSON.stringify(n), { ...process.env, CNI_COMMAND: command });
  if (r.code !== 0) {
    let msg = r.out.trim() || r.err.trim();
    try { const j = JSON.parse(r.out) as { msg?: string; details?: string }; msg = `${j.msg ?? ''}${j.details ? `: ${j.details}` : ''}`; } catch { /* plain text */ }
    throw new CniError(E.IPAM, `IPAM plugin '${n.ipam.type}' ${command} failed: ${msg}`);
  }
  if (command !== 'ADD') return null;
  try { return JSON.parse(r.out) as Result; } catch { throw new CniError(E.IPAM, `IPAM plugin '${n.ipam.type}' printed no JSON result: ${r.out.slice(0, 200)}`); }
}

async function add(n: NetConf, env: Env): Promise<Result> {
  checkEnv(env, true);
  const host = hostIfName(env.containerId, env.ifname), kind = n.backend ?? 'af_packet';
  await daemon(n, 'ping', {}); // before anything is made: a clear "not running" and nothing to undo
  if (linkExists(host)) throw new CniError(E.INVALID_CONFIG, `container ${env.containerId} already has ${env.ifname} on this network (host end ${host} exists); DEL it first`);
  if (inNs(env.netns, ['link', 'show', 'dev', env.ifname]).code === 0) throw new CniError(E.INVALID_CONFIG, `the container already has an interface ${env.ifname}`);
  const undo: (() => void | Promise<void>)[] = [];
  try {
    // made inside the container's namespace, the host end sent out to ours (this process's)
    let r = inNs(env.netns, ['link', 'add', env.ifname, 'type', 'veth', 'peer', 'name', host, 'netns', String(process.pid)]);
    if (r.code !== 0) throw new CniError(E.IO, `cannot create the veth pair ${env.ifname}/${host}: ${r.err.trim()}`);
    undo.push(() => { ip(['link', 'del', host]); });
    r = ip(['link', 'set', host, 'up']);
    if (r.code !== 0) throw new CniError(E.IO, `cannot bring ${host} up: ${r.err.trim()}`);
    await daemon(n, 'attach', { port: `${kind}:${host}` });
    undo.push(async () => { try { await daemon(n, 'detach', { port: `${kind}:${host}` }); } catch { /* best effort */ } });
    const got = ipam(n, env, 'ADD');
    if (got) undo.push(() => { try { ipam(n, env, 'DEL'); } catch { /* best effort */ } });
    for (const a of got?.ips ?? []) {
      r = inNs(env.netns, ['addr', 'add', a.address, 'dev', env.ifname]);
      if (r.code !== 0) throw new CniError(E.NETNS_CONFIG, `cannot add ${a.address} to ${env.ifname}: ${r.err.trim()}`);
    }
    r = inNs(env.netns, ['link', 'set', env.ifname, 'up']);
    if (r.code !== 0) throw new CniError(E.NETNS_CONFIG, `cannot bring ${env.ifname} up: ${r.err.trim()}`);
    for (const rt of got?.routes ?? []) {
      const gw = rt.gw ?? got?.ips?.find((a) => a.gateway && a.address.includes(':') === rt.dst.includes(':'))?.gateway;
      r = inNs(env.netns, ['route', 'add', rt.dst, ...(gw ? ['via', gw] : []), 'dev', env.ifname]);
      if (r.code !== 0 && !/File exists/.test(r.err)) throw new CniError(E.NETNS_CONFIG, `cannot add route ${rt.dst}: ${r.err.trim()}`);
    }
    const mac = (dev: string, ns?: string) => (ns ? inNs(ns, ['-j', 'link', 'show', 'dev', dev]) : ip(['-j', 'link', 'show', 'dev', dev])).out;
    const addr = (j: string) => { try { return (JSON.parse(j) as { address?: string }[])[0]?.address; } catch { return undefined; } };
    return {
      cniVersion: n.cniVersion,
      interfaces: [{ name: host, mac: addr(mac(host)) }, { name: env.ifname, mac: addr(mac(env.ifname, env.netns)), sandbox: env.netns }],
      ips: (got?.ips ?? []).map((a) => ({ ...a, interface: 1 })),
      routes: got?.routes ?? [],
      dns: got?.dns ?? {},
    };
  } catch (e) {
    for (const u of undo.reverse()) { try { await u(); } catch { /* keep the first error */ } }
    throw e;
  }
}

/** What DEL takes as "already gone": no daemon, the daemon refused (no such port), no switch. */
const GONE_IS_FINE = new Set<number>([E.TRY_AGAIN, E.DAEMON, E.SWITCH_MISSING]);

async function del(n: NetConf, env: Env): Promise<void> {
  checkEnv(env, false);
  const host = hostIfName(env.containerId, env.ifname), kind = n.backend ?? 'af_packet';
  // everything is allowed to be gone already: the daemon, the port, the veth, the namespace
  try { await daemon(n, 'detach', { port: `${kind}:${host}` }); } catch (e) {
    if (!(e instanceof CniError) || !GONE_IS_FINE.has(e.code)) throw e;
  }
  if (linkExists(host)) ip(['link', 'del', host]);
  ipam(n, env, 'DEL');
}

async function check(n: NetConf, env: Env): Promise<void> {
  checkEnv(env, true);
  const host = hostIfName(env.containerId, env.ifname), sw = swOf(n);
  if (!n.prevResult) throw new CniError(E.INVALID_CONFIG, 'CHECK needs prevResult (the result of ADD)');
  if (!linkExists(host)) throw new CniError(E.NETNS_CONFIG, `the host end ${host} of ${env.ifname} is gone`);
  const ports = await daemon(n, 'list', {}) as { name: string; down: string | null }[];
  const p = ports.find((x) => x.name === `${sw}:${host}`);
  if (!p) throw new CniError(E.NETNS_CONFIG, `${host} is not attached to ${sw}`);
  if (p.down) throw new CniError(E.NETNS_CONFIG, `${sw}:${host} is down: ${p.down}`);
  const r = inNs(env.netns, ['-j', 'addr', 'show', 'dev', env.ifname]);
  if (r.code !== 0) throw new CniError(E.NETNS_CONFIG, `the container has no interface ${env.ifname}`);
  const have = (JSON.parse(r.out) as { addr_info: { local: string; prefixlen: number }[] }[])[0]?.addr_info.map((a) => `${a.local}/${a.prefixlen}`) ?? [];
  for (const a of n.prevResult.ips ?? []) if (!have.includes(a.address)) throw new CniError(E.NETNS_CONFIG, `${env.ifname} lacks ${a.address} (has ${have.join(', ') || 'none'})`);
  ipam(n, env, 'CHECK');
}

/** One invocation: returns what to print on stdout and the exit code. */
export async function cni(envIn: NodeJS.ProcessEnv, stdin: string): Promise<{ out: string; code: number }> {
  const env = readEnv(envIn);
  let version = '1.0.0';
  try {
    if (env.command === 'VERSION') return { out: JSON.stringify({ cniVersion: '1.0.0', supportedVersions: SUPPORTED }), code: 0 };
    if (!['ADD', 'DEL', 'CHECK', 'STATUS', 'GC'].includes(env.command)) throw new CniError(E.INVALID_ENV, `CNI_COMMAND '${env.command}' is not one of ADD, DEL, CHECK, VERSION`);
    const n = parseConf(stdin);
    version = n.cniVersion;
    if (env.command === 'ADD') return { out: JSON.stringify(await add(n, env)), code: 0 };
    if (env.command === 'DEL') { await del(n, env); return { out: '', code: 0 }; }
    if (env.command === 'CHECK') { await check(n, env); return { out: '', code: 0 }; }
    if (env.command === 'STATUS') { await daemon(n, 'ping', {}).catch((e: CniError) => { throw new CniError(E.NOT_AVAILABLE, e.message); }); return { out: '', code: 0 }; }
    throw new CniError(E.INVALID_ENV, `CNI_COMMAND ${env.command} is a CNI 1.1 command this plugin does not implement`);
  } catch (e) {
    const err = e instanceof CniError ? e : new CniError(E.IO, (e as Error).message);
    return { out: JSON.stringify({ cniVersion: version, code: err.code, msg: err.message, details: err.details }), code: 1 };
  }
}
