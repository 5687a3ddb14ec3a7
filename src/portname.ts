// Port names as netmap spells them, so that names from netmap docs, scripts and pkt-gen
// command lines mean the same here. The parse follows libnetmap's two steps:
// nmreq_header_decode (prefix and nr_name) then nmreq_register_decode (mode, ring, memory id,
// flags), and adds the checks the kernel would make later (nm_bdg_name_validate, the pipe
// rules of netmap_get_pipe_na) so a bad name fails here, with a message, not at attach time.
// wasmap's own backends (tap:, af_packet:, af_xdp:, vhost-user:) have no netmap spelling.
//
// Deliberate differences from libnetmap, all stricter and all EINVAL in netmap too, only later:
//  - the interface part must be an identifier. libnetmap dropped that check in 2023 (765f0979,
//    for FreeBSD VLAN names like em0.123), but netmap's own parser table still expects
//    'netmap:eth0&' to fail, and that table is what we replay;
//  - an empty port before a pipe brace ('netmap:{0', 'vale0:{0') or after 'valeX:' fails
//    (the kernel refuses these: EINVAL in netmap_get_pipe_na, ENXIO for an empty port);
//  - a pipe with a host-ring mode (^ ^N *) fails (the kernel accepts only ALL_NIC and ONE_NIC);
//  - a memory id above 65535 fails instead of wrapping into nr_mem_id's 16 bits.
import { WasmapError } from './errors.js';

export const NR_REG = { DEFAULT: 0, ALL_NIC: 1, SW: 2, NIC_SW: 3, ONE_NIC: 4, PIPE_MASTER: 5, PIPE_SLAVE: 6, NULL: 7, ONE_SW: 8 } as const;
export const NR_FLAG = { MONITOR_TX: 0x100, MONITOR_RX: 0x200, ZCOPY_MON: 0x400, EXCLUSIVE: 0x800, RX_RINGS_ONLY: 0x2000, TX_RINGS_ONLY: 0x4000 } as const;

export interface NetmapPortSpec {
  kind: 'netmap' | 'vale';
  /** nr_name as netmap stores it: 'netmap:' stripped, 'valeX:Y' whole, pipe suffix kept. */
  name: string;
  /** vale only: the part before ':' ('vale0'; 'vale' for the default switch 'vale:'). */
  switchName?: string;
  /** vale only: the port, without a pipe suffix. */
  port?: string;
  /** '{' is the master end, '}' the slave end; parent is the name before the brace. */
  pipe?: { parent: string; end: 'master' | 'slave'; id: string };
  mode: number;
  ringId: number;
  flags: number;
  /** 0 when not given: netmap then picks the port's own allocator. */
  memId: number;
  /** The unparsed '@...' options suffix, '' if none. */
  options: string;
}
export interface BackendPortSpec { kind: 'tap' | 'af_packet' | 'af_xdp' | 'vhost-user' | 'vxlan' | 'geneve'; name: string }
export type PortSpec = NetmapPortSpec | BackendPortSpec;

/** Limits from the netmap and Linux headers, exported so callers can quote them. */
export const PORTNAME_LIMITS = {
  /** sizeof(nmreq_header.nr_name): the name plus its NUL. */
  NAME_SIZE: 64,
  /** IFNAMSIZ: names plus NUL, for Linux interfaces and both halves of a VALE name. */
  IFNAMSIZ: 16,
  /** NETMAP_RING_MASK: ring ids are 0 <= k < this. */
  RING_MASK: 0x0fff,
  /** nr_mem_id is a u16. */
  MEM_ID_MAX: 0xffff,
} as const;

const NETMAP_FORMS =
  'netmap:IFNAME or valeX:PORT (X letters/digits/_, may be empty), ' +
  'a pipe end NAME{ID (master) or NAME}ID (slave), ' +
  'then optionally one of ^ ^N * -N, then @MEMID and /FLAGS (x z t r R T), then @OPTIONS';
const BACKEND_FORMS = 'tap:IFNAME, af_packet:IFNAME, af_xdp:IFNAME[@QUEUE], vhost-user:/path/to.sock, vxlan:LOCAL_IP[:PORT], geneve:LOCAL_IP[:PORT]';
const ALL_FORMS = `${NETMAP_FORMS}; or ${BACKEND_FORMS}`;

// Raw quotes, not JSON: callers and tests look for the input exactly as it was typed.
function invalid(spec: string, why: string, forms: string = ALL_FORMS): WasmapError {
  return new WasmapError('EINVAL', `bad port name '${spec}': ${why}. Valid forms: ${forms}`);
}

const IDENT = /^[A-Za-z0-9_]*$/;
const isIdent = (s: string): boolean => IDENT.test(s);

// Order chosen so that the spellings in netmap's docs and tests ('/Tx') format back unchanged.
const FLAG_CHARS: ReadonlyArray<readonly [string, number]> = [
  ['z', NR_FLAG.ZCOPY_MON], ['t', NR_FLAG.MONITOR_TX], ['r', NR_FLAG.MONITOR_RX],
  ['R', NR_FLAG.RX_RINGS_ONLY], ['T', NR_FLAG.TX_RINGS_ONLY], ['x', NR_FLAG.EXCLUSIVE],
];
const FLAG_BY_CHAR: ReadonlyMap<string, number> = new Map(FLAG_CHARS);
const ALL_FLAGS = FLAG_CHARS.reduce((m, [, bit]) => m | bit, 0);
const FLAG_HELP = 'x exclusive, z zero-copy monitor, t/r monitor tx/rx, T/R tx/rx rings only';

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';

function digitsAt(s: string, i: number): string {
  let j = i;
  while (isDigit(s[j])) j++;
  return s.slice(i, j);
}

const utf8Length = (s: string): number => new TextEncoder().encode(s).length;

// Linux's dev_valid_name: the kernel counts bytes, and ':' is refused there as well
// (it is also wasmap's SWITCH:PORT separator, so allowing it would make names ambiguous).
function linuxIfname(spec: string, kind: string, ifname: string): string {
  const forms = `${kind}:IFNAME, a Linux interface name of 1 to 15 bytes without '/', ':' or whitespace, not '.' or '..'`;
  if (ifname === '') throw invalid(spec, `${kind}: needs an interface name`, forms);
  if (utf8Length(ifname) >= PORTNAME_LIMITS.IFNAMSIZ) {
    throw invalid(spec, `interface name '${ifname}' is longer than ${PORTNAME_LIMITS.IFNAMSIZ - 1} bytes`, forms);
  }
  if (ifname === '.' || ifname === '..') throw invalid(spec, `'${ifname}' is not a usable interface name`, forms);
  const bad = /[/:\s\x00-\x1f\x7f]/.exec(ifname);
  if (bad) throw invalid(spec, `interface names cannot contain ${JSON.stringify(bad[0])}`, forms);
  return ifname;
}

function parseBackend(spec: string): BackendPortSpec | undefined {
  for (const kind of ['tap', 'af_packet'] as const) {
    if (spec.startsWith(`${kind}:`)) return { kind, name: linuxIfname(spec, kind, spec.slice(kind.length + 1)) };
  }
  if (spec.startsWith('af_xdp:')) { // af_xdp:IF@QUEUE: the port is IF
    const body = spec.slice('af_xdp:'.length), at = body.lastIndexOf('@');
    if (at >= 0 && !/^\d{1,4}$/.test(body.slice(at + 1))) throw invalid(spec, "the queue after '@' must be a number", 'af_xdp:IFNAME[@QUEUE]');
    return { kind: 'af_xdp', name: linuxIfname(spec, 'af_xdp', at >= 0 ? body.slice(0, at) : body) };
  }
  for (const kind of ['vxlan', 'geneve'] as const) { // tunnel ports: the local underlay address (src/backends/tunnel.ts checks it)
    if (spec.startsWith(`${kind}:`)) {
      const addr = spec.slice(kind.length + 1);
      if (!/^(\[[0-9A-Fa-f:.]+\](:\d{1,5})?|[0-9A-Fa-f:.]+)$/.test(addr)) throw invalid(spec, `${kind}: needs the local underlay address`, `${kind}:LOCAL_IP[:PORT] (IPv6: ${kind}:[ADDR]:PORT)`);
      return { kind, name: addr };
    }
  }
  if (spec.startsWith('vhost-user:')) {
    const path = spec.slice('vhost-user:'.length);
    const forms = 'vhost-user:PATH, the path of the vhost-user unix socket';
    if (path === '') throw invalid(spec, 'vhost-user: needs a socket path', forms);
    if (path.includes('\0')) throw invalid(spec, 'a socket path cannot contain a NUL byte', forms);
    return { kind: 'vhost-user', name: path };
  }
  return undefined;
}

interface Header { kind: 'netmap' | 'vale'; name: string; switchName?: string; port: string; pipe?: NetmapPortSpec['pipe']; rest: string }

// nmreq_header_decode: which subsystem, and nr_name up to the first mode character.
function parseHeader(spec: string): Header {
  let kind: 'netmap' | 'vale';
  let switchName: string | undefined;
  let body: string;
  if (spec.startsWith('netmap')) {
    if (spec[6] !== ':') throw invalid(spec, "nothing may stand between 'netmap' and ':' (write netmap:IFNAME)");
    kind = 'netmap';
    body = spec.slice(7);
  } else if (spec.startsWith('vale')) {
    const colon = spec.indexOf(':');
    if (colon < 0) throw invalid(spec, "a VALE name needs ':' between the switch and the port (valeX:PORT)");
    switchName = spec.slice(0, colon);
    if (!isIdent(switchName.slice(4))) throw invalid(spec, `switch name '${switchName}' may only contain letters, digits and '_'`);
    if (switchName.length >= PORTNAME_LIMITS.IFNAMSIZ) {
      throw invalid(spec, `switch name '${switchName}' is longer than ${PORTNAME_LIMITS.IFNAMSIZ - 1} characters`);
    }
    kind = 'vale';
    body = spec.slice(colon + 1);
  } else {
    throw invalid(spec, spec === '' ? 'the name is empty' : "it must begin with 'netmap:', 'vale', 'tap:', 'af_packet:', 'af_xdp:', 'vhost-user:', 'vxlan:' or 'geneve:'");
  }

  const end = body.search(/[-*^/@]/);
  const vp = end < 0 ? body : body.slice(0, end);
  const rest = end < 0 ? '' : body.slice(end);
  const brace = vp.search(/[{}]/);
  const port = brace < 0 ? vp : vp.slice(0, brace);
  const what = kind === 'vale' ? 'VALE port' : 'interface';
  if (port === '') throw invalid(spec, `the ${what} name is empty`);
  if (!isIdent(port)) {
    const hint = kind === 'netmap' && port.startsWith('vale') && port.includes(':') ? ` (VALE ports are named without 'netmap:', e.g. ${port})` : '';
    throw invalid(spec, `${what} name '${port}' may only contain letters, digits and '_'${hint}`);
  }
  // The kernel strips a pipe suffix before validating a VALE name, so the limit is on the port alone.
  if (kind === 'vale' && port.length >= PORTNAME_LIMITS.IFNAMSIZ) {
    throw invalid(spec, `VALE port name '${port}' is longer than ${PORTNAME_LIMITS.IFNAMSIZ - 1} characters`);
  }
  const parent = kind === 'vale' ? `${switchName}:${port}` : port;
  let pipe: NetmapPortSpec['pipe'];
  if (brace >= 0) {
    const id = vp.slice(brace + 1);
    if (id === '') throw invalid(spec, `a pipe needs an id after '${vp[brace]}'`);
    if (!isIdent(id)) throw invalid(spec, `pipe id '${id}' may only contain letters, digits and '_' (one '{' or '}' per name)`);
    pipe = { parent, end: vp[brace] === '{' ? 'master' : 'slave', id };
  }
  const name = kind === 'vale' ? `${switchName}:${vp}` : vp;
  if (name.length >= PORTNAME_LIMITS.NAME_SIZE) {
    throw invalid(spec, `the name '${name}' is ${name.length} characters, netmap allows ${PORTNAME_LIMITS.NAME_SIZE - 1}`);
  }
  const h: Header = { kind, name, port, rest };
  if (switchName !== undefined) h.switchName = switchName;
  if (pipe) h.pipe = pipe;
  return h;
}

interface Register { mode: number; ringId: number; flags: number; memId: number; options: string }

// nmreq_register_decode's state machine, state for state, so that the same strings are
// accepted: a ring selector comes first; after it, '/flags' and '@N' may alternate, but a flag
// run only ends at '@'; the first '@' not followed by a digit starts the options.
function parseRegister(spec: string, rest: string): Register {
  type State = 'start' | 'rngsfxok' | 'getnum' | 'flags' | 'flagsok' | 'memid' | 'onesw';
  let state: State = 'start';
  let mode: number = NR_REG.ALL_NIC;
  let ringId = 0, flags = 0, memId = 0;
  let i = 0;
  while (i < rest.length) {
    const c = rest[i];
    switch (state) {
      case 'start':
        if (c === '^') { mode = NR_REG.SW; state = 'onesw'; }
        else if (c === '*') { mode = NR_REG.NIC_SW; state = 'rngsfxok'; }
        else if (c === '-') { mode = NR_REG.ONE_NIC; state = 'getnum'; }
        else if (c === '/') state = 'flags';
        else if (c === '@') state = 'memid';
        else throw invalid(spec, `unknown modifier '${c}'`);
        i++;
        break;
      case 'onesw':
        // '^' alone is all host rings; '^N' is host ring N.
        if (isDigit(c)) { mode = NR_REG.ONE_SW; state = 'getnum'; } else state = 'rngsfxok';
        break;
      case 'rngsfxok':
        if (c === '/') state = 'flags';
        else if (c === '@') state = 'memid';
        else throw invalid(spec, `unexpected '${c}' in '${rest}': one ring selector (^ ^N * -N) comes first, then only /FLAGS and @MEMID`);
        i++;
        break;
      case 'getnum': {
        const num = digitsAt(rest, i);
        if (num === '') throw invalid(spec, `expected a ring number at '${rest.slice(i)}'`);
        const n = Number(num);
        if (n >= PORTNAME_LIMITS.RING_MASK) throw invalid(spec, `ring ${num} is out of range (0 to ${PORTNAME_LIMITS.RING_MASK - 1})`);
        ringId = n;
        i += num.length;
        state = 'rngsfxok';
        break;
      }
      case 'flags':
      case 'flagsok': {
        if (c === '@') { state = 'memid'; i++; break; }
        const bit = FLAG_BY_CHAR.get(c);
        if (bit === undefined) throw invalid(spec, `unknown flag '${c}' (flags: ${FLAG_HELP}; one '/' per group)`);
        flags |= bit;
        i++;
        state = 'flagsok';
        break;
      }
      case 'memid': {
        const num = digitsAt(rest, i);
        if (num === '') {
          return { mode, ringId, flags, memId, options: rest.slice(i - 1) };
        }
        const n = Number(num);
        if (n === 0) throw invalid(spec, 'memory id 0 is not valid (ids start at 1)');
        if (n > PORTNAME_LIMITS.MEM_ID_MAX) throw invalid(spec, `memory id ${num} is larger than ${PORTNAME_LIMITS.MEM_ID_MAX}`);
        if (memId !== 0 && memId !== n) throw invalid(spec, `memory id given twice with different values (${memId}, then ${n})`);
        memId = n;
        i += num.length;
        state = 'rngsfxok';
        break;
      }
    }
  }
  if (state === 'getnum') throw invalid(spec, "'-' needs a ring number after it");
  if (state === 'flags') throw invalid(spec, `'/' needs at least one flag (${FLAG_HELP})`);
  if (state === 'memid') throw invalid(spec, "'@' needs a memory id or an option after it");
  return { mode, ringId, flags, memId, options: '' };
}

/** Parse a port name. Pure: a bad name throws WasmapError('EINVAL') quoting it and listing the valid forms. */
export function parsePortName(spec: string): PortSpec {
  const backend = parseBackend(spec);
  if (backend) return backend;
  const h = parseHeader(spec);
  const r = parseRegister(spec, h.rest);
  // netmap_get_pipe_na: pipes have no host rings.
  if (h.pipe && r.mode !== NR_REG.ALL_NIC && r.mode !== NR_REG.ONE_NIC) {
    throw invalid(spec, 'a pipe end has no host rings: use no ring selector or -N');
  }
  const out: NetmapPortSpec = { kind: h.kind, name: h.name, mode: r.mode, ringId: r.ringId, flags: r.flags, memId: r.memId, options: r.options };
  if (h.kind === 'vale') { out.switchName = h.switchName; out.port = h.port; }
  if (h.pipe) out.pipe = h.pipe;
  return out;
}

/** The port name for a spec, such that parsePortName gives the spec back.
 *  Throws EINVAL for what has no spelling (modes DEFAULT, PIPE_*, NULL; unknown flag bits; options not starting with '@'). */
export function formatPortName(spec: NetmapPortSpec): string {
  const what = `cannot spell port ${JSON.stringify(spec.name)} as a name`;
  let out = spec.kind === 'vale' ? spec.name : `netmap:${spec.name}`;
  switch (spec.mode) {
    case NR_REG.ALL_NIC: break;
    case NR_REG.SW: out += '^'; break;
    case NR_REG.NIC_SW: out += '*'; break;
    case NR_REG.ONE_SW: out += `^${spec.ringId}`; break;
    case NR_REG.ONE_NIC: out += `-${spec.ringId}`; break;
    default: throw new WasmapError('EINVAL', `${what}: mode ${spec.mode} has no suffix (names spell ALL_NIC, SW, NIC_SW, ONE_NIC, ONE_SW)`);
  }
  if (spec.memId) out += `@${spec.memId}`;
  if (spec.flags & ~ALL_FLAGS) throw new WasmapError('EINVAL', `${what}: flags 0x${(spec.flags & ~ALL_FLAGS).toString(16)} have no letter`);
  const letters = FLAG_CHARS.filter(([, bit]) => spec.flags & bit).map(([c]) => c).join('');
  if (letters) out += `/${letters}`;
  // '@' and a digit would read back as a memory id.
  if (spec.options && (spec.options[0] !== '@' || isDigit(spec.options[1]))) {
    throw new WasmapError('EINVAL', `${what}: options must start with '@' and a non-digit, not '${spec.options}'`);
  }
  return out + spec.options;
}
