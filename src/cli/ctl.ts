// `wasmap ctl`: talk to a running switch daemon (valectl's job).
import { parseArgs } from 'node:util';
import { ctlRequest } from '../ctl/client.js';
import { defaultSocket } from '../ctl/paths.js';
import { prometheus } from '../ctl/metrics.js';
import { WasmapError } from '../errors.js';
import { table } from './format.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { LookupStatus } from '../switch.js';

export const CTL_HELP = `wasmap ctl — control a running switch daemon

Usage: wasmap ctl [--socket PATH] [--json] VERB ...
  attach NAME PORT [--vnet-hdr 0|10|12] [--accept csum,tso4,tso6,uso] [--io-thread K|none] [--window N]
                                          PORT: tap:IF (created if missing), af_packet:IF
                                          (an existing interface) or a virtual port name.
                                          --vnet-hdr: TAP and AF_PACKET ports carry 12 unless
                                          told (TSO and checksum offload; 0 gives plain
                                          frames), others 0
  attach NAME af_xdp:IF[@QUEUE] [--xdp-mode native|skb|auto] [--zero-copy auto|on|off]
                                          XDP sockets on an existing interface, one per rx
                                          queue (all unless @QUEUE); on veth the peer must
                                          send checksummed frames: ethtool -K PEER tx off
  attach NAME vhost-user:PATH [--name PORT]
                                          a vhost-user socket for a QEMU guest's virtio-net
                                          (port PORT, default: PATH's file name); QEMU:
                                          -chardev socket,id=c0,path=PATH
                                          -netdev vhost-user,id=n0,chardev=c0
                                          -device virtio-net-pci,netdev=n0
                                          with shared guest RAM (memory-backend-memfd,share=on);
                                          see the README, "Connect QEMU VMs"
  attach NAME vxlan:LOCAL_IP[:PORT] --vni N [--remote IP ...] [--name PORT] [--mtu M]
         [--src-ports K] [--age S]       a VXLAN tunnel port (UDP 4789 unless :PORT; IPv6:
                                          vxlan:[ADDR]:PORT) for VNI N, port vxlanN unless
                                          --name; unknown and broadcast destinations go to
                                          every --remote (repeat it, or IP,IP); --mtu is the
                                          underlay's (inner MTU = M - 50 over IPv4, M - 70
                                          over IPv6); K send sockets (outer source ports,
                                          by flow hash); learned entries age out after S s
  attach NAME geneve:LOCAL_IP[:PORT] …  the same with Geneve (UDP 6081); docs/tunnels.md
  fdb NAME PORT list | add MAC REMOTE | del MAC
                                          a tunnel port's forwarding database: learned and
                                          static entries (inner MAC -> remote VTEP)
  detach NAME PORT | vhost-user:PATH
  list [NAME]                             ports, their kind and state
  stats [NAME] [--prometheus]             counters: packets, bytes, drops by reason
  set-lookup NAME FILE.wasm|default [--config JSON|@FILE] [--fallback drop|learning]
                                          a forwarding function decides where NAME's frames
                                          go (docs/forwarding-functions.md); 'default' goes
                                          back to MAC learning. A function that fails is
                                          disabled: the switch drops (or learns) instead
  newif NAME:PORT | PORT                  a persistent virtual port
  delif NAME:PORT | PORT
  capture-status NAME PORT                is PORT being captured, how many frames so far
  capture-stop NAME PORT                  stop a capture (one also stops when the client
                                          that started it, wasmap capture, goes away)
  save [NAME] [FILE]                      the running topology as JSON (to FILE, else stdout):
                                          what wasmap switch NAME --config FILE builds again
  ping                                    is the daemon there and answering
NAME is a switch (valeX); PORT a port of it. With --json, the result — or the error, as
{"ok": false, "error": {"code", "message"}} — is printed as JSON on stdout.
valectl's flags work too: -a valeX:IF (attach tap:IF), -d valeX:IF, -l [valeX], -n IF, -r IF.
The socket defaults to the one of switch NAME (vale0 if none is named): see wasmap switch --help.
`;

type Row = Record<string, unknown>;

// the daemon may run in another directory: a relative socket path means one relative to here
const absVhost = (port: string): string => port.startsWith('vhost-user:') && !port.startsWith('vhost-user:/') && port.length > 11 ? `vhost-user:${resolve(port.slice(11))}` : port;

/** The request for set-lookup: the module's bytes travel in the request (the daemon may run
 *  elsewhere in the file system), the configuration as JSON text (inline or @file). */
function setLookupArgs(sw: string, file: string, config: string | undefined, fallback: string | undefined, name: string | undefined): Record<string, unknown> {
  if (fallback !== undefined && fallback !== 'drop' && fallback !== 'learning') throw new WasmapError('EINVAL', `--fallback must be drop or learning, not '${fallback}'`);
  if (file === 'default') {
    if (config !== undefined) throw new WasmapError('EINVAL', "'default' (the learning lookup) takes no --config");
    return { switch: sw, module: 'default' };
  }
  let bytes: Buffer;
  try { bytes = readFileSync(file); } catch (e) { throw new WasmapError('ENOENT', `cannot read ${file}: ${(e as Error).message}`); }
  if (bytes.length > 16 << 20) throw new WasmapError('EBADFN', `${file} is ${bytes.length} bytes: a forwarding function module is at most 16 MiB`);
  let text: string | undefined;
  if (config !== undefined) {
    if (config.startsWith('@')) {
      try { text = readFileSync(config.slice(1), 'utf8'); } catch (e) { throw new WasmapError('ENOENT', `cannot read the configuration ${config.slice(1)}: ${(e as Error).message}`); }
    } else text = config;
    try { JSON.parse(text); } catch (e) { throw new WasmapError('EINVAL', `--config is not JSON: ${(e as Error).message}`); }
  }
  return { switch: sw, module: bytes.toString('base64'), config: text, fallback, name: name ?? basename(file) };
}

function describeLookup(l: LookupStatus): string {
  const f = l.function;
  if (!f) return `lookup: ${l.mode}${l.previous ? ` (last function: ${l.previous.name}, ${l.previous.reason ? `disabled: ${l.previous.reason}` : 'removed'})` : ''}`;
  const counters = Object.entries(f.counters).map(([k, v]) => `${k}=${v}`).join(' ');
  if (f.state === 'disabled') return `lookup: ${l.mode} — function ${f.name} DISABLED at ${f.disabledAt}: ${f.reason}; ${f.faultDrops} frames dropped with the failed batch, ${f.frames} decided before`;
  return `lookup: function ${f.name} (sha256 ${f.sha256.slice(0, 12)}…, ${f.zeroCopy ? 'zero-copy' : 'copying records'}, fallback ${f.fallback}): ${f.calls} batches, ${f.frames} frames${counters ? `; ${counters}` : ''}`;
}

/** A tunnel port's lines under `ctl stats`: remotes, fdb, both directions, drops by reason. */
function describeTunnel(p: Row): string {
  const t = p.tunnel as { rxFrames: number; rxBytes: number; txFrames: number; txBytes: number; txDatagrams: number; flooded: number; groMerged?: number; drops: Record<string, number>; socket: { datagrams: number; groDatagrams: number; drops: Record<string, number> } };
  const nz = (d: Record<string, number>) => Object.entries(d).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  return [
    `${String(p.name)}: ${String(p.kind)} VNI ${String(p.vni)}, remotes ${(p.remotes as string[]).join(' ') || '(none)'}; fdb ${String(p.learned)} learned, ${String(p.staticEntries)} static${p.down ? ` — ${String(p.down)}` : ''}`,
    `  from the underlay: ${t.rxFrames} frames, ${t.rxBytes} bytes (${t.socket.datagrams} datagrams on the socket, ${t.socket.groDatagrams} coalesced by the kernel; ${t.groMerged ?? 0} segments merged)`,
    `  to the underlay:   ${t.txFrames} frames, ${t.txBytes} bytes in ${t.txDatagrams} datagrams; ${t.flooded} flooded to every remote`,
    `  drops: ${nz(t.drops)}; socket (all VNIs of it): ${nz(t.socket.drops)}`,
  ].join('\n');
}

const SWITCH_NAME = /^vale[A-Za-z0-9_]{0,11}$/;
/** --io-thread K|none|auto of attach (a TAP port's I/O thread). */
function ioThreadArg(v: string | undefined): number | string | undefined {
  if (v === undefined || v === 'none' || v === 'auto') return v;
  if (/^\d+$/.test(v)) return Number(v);
  throw new WasmapError('EINVAL', `--io-thread must be a thread number, 'auto' or 'none', not '${v}'`);
}

/** Tunnel attach flags as request fields (numbers checked by the daemon). */
function tunnelArgs(v: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [flag, key] of [['vni', 'vni'], ['mtu', 'mtu'], ['src-ports', 'srcPorts'], ['age', 'age']] as const) if (v[flag] !== undefined) out[key] = v[flag];
  if (v.remote !== undefined) out.remote = (v.remote as string[]).flatMap((r) => r.split(',')).filter(Boolean);
  return out;
}

const VERBS = 'attach, detach, list, stats, fdb, set-lookup, newif, delif, capture-status, capture-stop, save, ping';

export async function ctl(argv: string[]): Promise<number> {
  // --json: errors too are JSON (on stdout, for the program reading it), exit status 2
  const json = argv.includes('--json');
  try {
    return await ctlMain(argv);
  } catch (e) {
    if (!json) throw e;
    const err = e as Error & { code?: unknown };
    const code = e instanceof WasmapError ? e.code : typeof err.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS') ? 'EINVAL' : 'EINTERNAL';
    console.log(JSON.stringify({ ok: false, error: { code, message: err.message } }, null, 2));
    return e instanceof WasmapError || code === 'EINVAL' ? 2 : 1;
  }
}

/** NAME of a verb that takes one: a switch name, said plainly when it is something else. */
function switchArg(verb: string, s: string | undefined, usage: string): string {
  if (s === undefined) throw new WasmapError('EINVAL', `usage: wasmap ctl ${usage}`);
  if (SWITCH_NAME.test(s)) return s;
  const i = s.indexOf(':');
  const hint = i > 0 && SWITCH_NAME.test(s.slice(0, i)) ? ` (did you mean switch ${s.slice(0, i)}, port ${s.slice(i + 1)}?)` : '';
  throw new WasmapError('EINVAL', `'${s}' is not a switch name: NAME is valeX (vale, then up to 11 letters, digits or _)${hint}; usage: wasmap ctl ${usage}`);
}

async function ctlMain(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: {
    socket: { type: 'string' }, json: { type: 'boolean', default: false }, prometheus: { type: 'boolean', default: false },
    'vnet-hdr': { type: 'string' }, 'io-thread': { type: 'string' }, config: { type: 'string' }, fallback: { type: 'string' }, name: { type: 'string' }, window: { type: 'string' }, accept: { type: 'string' }, 'xdp-mode': { type: 'string' }, 'zero-copy': { type: 'string' }, vni: { type: 'string' }, remote: { type: 'string', multiple: true }, mtu: { type: 'string' }, 'src-ports': { type: 'string' }, age: { type: 'string' }, a: { type: 'string' }, d: { type: 'string' }, l: { type: 'boolean' }, n: { type: 'string' }, r: { type: 'string' },
    help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write(CTL_HELP); return 0; }
  let [verb, ...rest] = positionals;
  const split = (s: string) => { const i = s.indexOf(':'); if (i < 0) throw new WasmapError('EINVAL', `expected valeX:PORT, not '${s}'`); return [s.slice(0, i), s.slice(i + 1)]; };
  if (values.a) { const [sw, p] = split(values.a); verb = 'attach'; rest = [sw, p.includes(':') ? p : `tap:${p}`]; }
  else if (values.d) { verb = 'detach'; rest = split(values.d); }
  else if (values.l) { verb = 'list'; }
  else if (values.n) { verb = 'newif'; rest = [values.n]; }
  else if (values.r) { verb = 'delif'; rest = [values.r]; }
  if (!verb) throw new WasmapError('EINVAL', `give a verb: ${VERBS} (wasmap ctl --help)`);
  const swArg = rest[0] && /^vale/.test(rest[0]) ? rest[0].split(':')[0] : undefined;
  const socket = values.socket ?? defaultSocket(swArg ?? 'vale0');
  const need = (n: number, usage: string) => { if (rest.length < n) throw new WasmapError('EINVAL', `usage: wasmap ctl ${usage}`); };
  let result: unknown;
  switch (verb) {
    case 'attach': need(2, 'attach NAME PORT'); result = await ctlRequest(socket, 'attach', { switch: switchArg(verb, rest[0], 'attach NAME PORT'), port: absVhost(rest[1]), name: values.name, vnetHdr: values['vnet-hdr'] !== undefined ? Number(values['vnet-hdr']) : undefined, accept: values.accept, xdpMode: values['xdp-mode'], zeroCopy: values['zero-copy'], ioThread: ioThreadArg(values['io-thread']), ...tunnelArgs(values), window: values.window }); break;
    case 'fdb': {
      const usage = 'fdb NAME PORT list | add MAC REMOTE | del MAC';
      need(3, usage);
      const op = rest[2];
      if (op === 'add') need(5, usage); else if (op === 'del') need(4, usage); else if (op !== 'list') throw new WasmapError('EINVAL', `usage: wasmap ctl ${usage}`);
      result = await ctlRequest(socket, 'fdb', { switch: switchArg(verb, rest[0], usage), port: rest[1], op, mac: rest[3], remote: rest[4] });
      if (op === 'list' && !values.json) {
        const rows = result as { mac: string; remote: string; static: boolean; ageS: number }[];
        console.log(rows.length ? table(['MAC', 'REMOTE', 'TYPE', 'AGE'], rows.map((r) => [r.mac, r.remote, r.static ? 'static' : 'learned', r.static ? '-' : `${r.ageS}s`])) : '(no entries)');
        return 0;
      }
      break;
    }
    case 'detach': need(2, 'detach NAME PORT'); result = await ctlRequest(socket, 'detach', { switch: switchArg(verb, rest[0], 'detach NAME PORT'), port: absVhost(rest[1]) }); break;
    case 'list': result = await ctlRequest(socket, 'list', rest[0] ? { switch: switchArg(verb, rest[0], 'list [NAME]') } : {}); break;
    case 'stats': result = await ctlRequest(socket, 'stats', rest[0] ? { switch: switchArg(verb, rest[0], 'stats [NAME]') } : {}); break;
    case 'set-lookup': {
      const usage = 'set-lookup NAME FILE.wasm|default [--config JSON|@FILE] [--fallback drop|learning]';
      need(2, usage);
      result = await ctlRequest(socket, 'set-lookup', setLookupArgs(switchArg(verb, rest[0], usage), rest[1], values.config, values.fallback, values.name));
      break;
    }
    case 'newif': need(1, 'newif NAME:PORT'); result = await ctlRequest(socket, 'newif', { name: rest[0].split(':').pop() }); break;
    case 'delif': need(1, 'delif NAME:PORT'); result = await ctlRequest(socket, 'delif', { name: rest[0].split(':').pop() }); break;
    case 'capture-status': case 'capture-stop': need(2, `${verb} NAME PORT`); result = await ctlRequest(socket, verb, { switch: switchArg(verb, rest[0], `${verb} NAME PORT`), port: rest[1] }); break;
    case 'ping': result = await ctlRequest(socket, 'ping'); break;
    case 'save': {
      // the running topology, in the format `wasmap switch --config FILE` builds from
      const t = await ctlRequest(socket, 'topology');
      const text = JSON.stringify(t, null, 2) + '\n';
      const file = rest.find((x) => !/^vale[A-Za-z0-9_]{0,11}$/.test(x));
      if (!file) { process.stdout.write(text); return 0; }
      writeFileSync(file, text, { mode: 0o600 });
      console.log(`saved ${(t as { ports: unknown[] }).ports.length} port(s) of ${socket} to ${file}`);
      return 0;
    }
    default: throw new WasmapError('EINVAL', `unknown verb '${verb}'; verbs: ${VERBS}`);
  }
  if (verb === 'stats' && values.prometheus) { process.stdout.write(prometheus(result as Parameters<typeof prometheus>[0])); return 0; }
  if (values.json) { console.log(JSON.stringify(result, null, 2)); return 0; }
  if (verb === 'list') {
    const rows = result as Row[];
    console.log(rows.length ? table(['port', 'index', 'kind', 'state'], rows.map((r) => [String(r.name), String(r.index), String(r.kind), r.down ? `down: ${String(r.down)}` : r.broken ? `broken by its guest (ring errors ${JSON.stringify(r.broken)})` : 'up'])) : 'no ports');
  } else if (verb === 'stats') {
    for (const s of result as (Row & { ports: Row[]; lookup?: LookupStatus })[]) {
      console.log(`switch ${String(s.name)}: ${String(s.rounds)} rounds, ${String(s.frames)} frames, ${String(s.floodExtra)} flood copies`);
      const fw = s.forwarder as { tid: number; cpuMs: number } | null | undefined;
      if (s.poll) console.log(`poll mode ${String(s.poll)}${s.spinUs !== undefined ? ` (spin ${String(s.spinUs)} µs)` : ''}${fw ? `; forwarding thread ${fw.tid}: ${(fw.cpuMs / 1000).toFixed(2)} s CPU` : ''}`);
      if (s.lookup) console.log(describeLookup(s.lookup));
      console.log(table(['port', 'tx pkts', 'tx bytes', 'rx pkts', 'rx bytes', 'drop full', 'drop other', 'state'], s.ports.map((p) => [
        String(p.name), String(p.txPackets), String(p.txBytes), String(p.rxPackets), String(p.rxBytes), String(p.dropFull),
        String(Number(p.dropBroken) + Number(p.dropNoDst) + Number(p.dropLookup) + Number(p.dropSize) + Number(p.dropHdr)), p.down ? 'down' : 'up'])));
      for (const p of s.ports.filter((x) => x.kind === 'vhost-user')) {
        const q = p.queues as Record<'rx' | 'tx', Record<string, number | string | null>>;
        console.log(`${String(p.name)}: vhost-user ${String(p.path)}, ${p.connected ? `QEMU connected (session ${String(p.sessions)})` : 'no QEMU'}${p.down ? ` — ${String(p.down)}` : ''}`);
        for (const d of ['tx', 'rx'] as const) {
          console.log(`  ${d === 'tx' ? 'from the guest' : 'to the guest  '}: ${String(q[d].frames)} frames${d === 'rx' && q[d].direct !== undefined ? ` (${String(q[d].direct)} written straight into its buffers)` : ''}, dropped ${String(q[d].dropBig)} too big, ${String(q[d].dropBad)} bad; ${String(q[d].kicks)} kicks, ${String(q[d].calls)} interrupts${d === 'rx' ? `, ${String(q[d].stalls)} waits for buffers` : ''}${q[d].broken ? `; BROKEN: ${String(q[d].broken)}` : ''}`);
        }
        // several queue pairs (multiqueue): each on its own line
        const pairs = (p.queues as { pairs?: { rx: Record<string, number>; tx: Record<string, number>; enabled: boolean }[] }).pairs ?? [];
        if (pairs.length > 1) pairs.forEach((x, i) => console.log(`  pair ${i}${x.enabled ? '' : ' (not running)'}: from the guest ${x.tx.frames} frames, ${x.tx.kicks} kicks; to the guest ${x.rx.frames} frames, ${x.rx.stalls} waits for buffers`));
        if (p.queuePairsRefused) console.log(`  ${String(p.queuePairsRefused)}`);
        if (Number(p.downDrops)) console.log(`  ${String(p.downDrops)} frames discarded while no guest could take them`);
      }
      for (const p of s.ports.filter((x) => x.kind === 'vxlan' || x.kind === 'geneve')) console.log(describeTunnel(p));
    }
  } else if (verb === 'set-lookup') console.log(`${rest[0]}: ${describeLookup(result as LookupStatus)}`);
  else console.log(JSON.stringify(result));
  return 0;
}
