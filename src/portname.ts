// Port names as netmap spells them (libnetmap's nmreq_header_decode/nmreq_register_decode),
// plus wasmap's own backends. Pure: a bad name throws WasmapError EINVAL and changes nothing.
//   netmap:NAME | valeX:NAME, NAME = ident | ident{ident | ident}ident,
//   then any of  ^ ^N * -N  (ring mode), @N (memory id), /flags, and finally @options.
import { WasmapError } from './errors.js';

export const NR_REG = { DEFAULT: 0, ALL_NIC: 1, SW: 2, NIC_SW: 3, ONE_NIC: 4, PIPE_MASTER: 5, PIPE_SLAVE: 6, NULL: 7, ONE_SW: 8 } as const;
export const NR_FLAG = { MONITOR_TX: 0x100, MONITOR_RX: 0x200, ZCOPY_MON: 0x400, EXCLUSIVE: 0x800, RX_RINGS_ONLY: 0x2000, TX_RINGS_ONLY: 0x4000 } as const;

export interface NetmapPortSpec {
  kind: 'netmap' | 'vale';
  name: string;
  switchName?: string;
  port?: string;
  pipe?: { parent: string; end: 'master' | 'slave'; id: string };
  mode: number; ringId: number; flags: number; memId: number;
  options: string;
}
export interface BackendPortSpec { kind: 'tap' | 'af_packet' | 'vhost-user'; name: string }
export type PortSpec = NetmapPortSpec | BackendPortSpec;

const FORMS = "netmap:IF, valeX:PORT, NAME{ID / NAME}ID (pipes), optional ^ ^N * -N @MEMID /flags(xztrRT) @options; or tap:IFNAME, af_packet:IFNAME, vhost-user:PATH";
const bad = (spec: string, why: string) => new WasmapError('EINVAL', `bad port name '${spec}': ${why} (forms: ${FORMS})`);
const IDENT = /^[A-Za-z0-9_]+/;
const FLAG_BITS: Record<string, number> = { x: NR_FLAG.EXCLUSIVE, z: NR_FLAG.ZCOPY_MON, t: NR_FLAG.MONITOR_TX, r: NR_FLAG.MONITOR_RX, R: NR_FLAG.RX_RINGS_ONLY, T: NR_FLAG.TX_RINGS_ONLY };

function ifname(spec: string, name: string): string {
  if (name.length < 1 || name.length > 15 || /[\s/:]/.test(name) || name === '.' || name === '..') {
    throw bad(spec, 'a Linux interface name is 1 to 15 characters without spaces, "/" or ":"');
  }
  return name;
}

export function parsePortName(spec: string): PortSpec {
  for (const kind of ['tap', 'af_packet'] as const) {
    if (spec.startsWith(kind + ':')) return { kind, name: ifname(spec, spec.slice(kind.length + 1)) };
  }
  if (spec.startsWith('vhost-user:')) {
    const path = spec.slice('vhost-user:'.length);
    if (!path) throw bad(spec, 'vhost-user needs a socket path');
    return { kind: 'vhost-user', name: path };
  }
  const colon = spec.indexOf(':');
  if (colon < 0) throw bad(spec, 'no subsystem prefix');
  const prefix = spec.slice(0, colon);
  let kind: 'netmap' | 'vale';
  if (prefix === 'netmap') kind = 'netmap';
  else if (/^vale[A-Za-z0-9_]*$/.test(prefix)) kind = 'vale';
  else throw bad(spec, `unknown subsystem '${prefix}' (netmap or valeX)`);
  let rest = spec.slice(colon + 1);
  const head = IDENT.exec(rest);
  if (!head) throw bad(spec, 'the port name must start with letters, digits or _');
  let vp = head[0];
  rest = rest.slice(vp.length);
  let pipe: NetmapPortSpec['pipe'];
  if (rest[0] === '{' || rest[0] === '}') {
    const id = IDENT.exec(rest.slice(1));
    if (!id) throw bad(spec, 'a pipe needs an id after { or }');
    pipe = { parent: kind === 'vale' ? `${prefix}:${vp}` : vp, end: rest[0] === '{' ? 'master' : 'slave', id: id[0] };
    vp = `${vp}${rest[0]}${id[0]}`;
    rest = rest.slice(1 + id[0].length);
    if (rest[0] === '{' || rest[0] === '}') throw bad(spec, 'a pipe name has one { or }');
  }
  let mode: number = NR_REG.ALL_NIC, ringId = 0, flags = 0, memId = 0, options = '', moded = false;
  while (rest.length > 0) {
    const ch = rest[0];
    if (ch === '^' || ch === '*' || ch === '-') {
      if (moded) throw bad(spec, 'one ring selector at most');
      moded = true;
      const num = /^\d+/.exec(rest.slice(1));
      if (ch === '*') { mode = NR_REG.NIC_SW; rest = rest.slice(1); continue; }
      if (ch === '-' && !num) throw bad(spec, "'-' needs a ring number");
      if (num) {
        ringId = Number(num[0]);
        if (ringId >= 4095) throw bad(spec, `ring ${ringId} is out of range (0..4094)`);
        mode = ch === '-' ? NR_REG.ONE_NIC : NR_REG.ONE_SW;
        rest = rest.slice(1 + num[0].length);
      } else { mode = NR_REG.SW; rest = rest.slice(1); }
    } else if (ch === '@') {
      const num = /^\d+/.exec(rest.slice(1));
      if (num) {
        const id = Number(num[0]);
        if (id === 0 || (memId !== 0 && memId !== id)) throw bad(spec, memId ? `memory id given twice (${memId}, ${id})` : 'memory id must be > 0');
        memId = id;
        rest = rest.slice(1 + num[0].length);
      } else {
        if (rest.length === 1) throw bad(spec, "'@' needs a memory id or an option");
        options = rest;
        rest = '';
      }
    } else if (ch === '/') {
      const f = /^[A-Za-z]*/.exec(rest.slice(1))![0];
      if (!f) throw bad(spec, "'/' needs flags: x z t r R T");
      for (const c of f) {
        const bit = FLAG_BITS[c];
        if (bit === undefined) throw bad(spec, `unknown flag '${c}' (x exclusive, z zero-copy monitor, t/r monitor tx/rx, R/T rx/tx rings only)`);
        flags |= bit;
      }
      rest = rest.slice(1 + f.length);
    } else {
      throw bad(spec, `unexpected '${ch}'`);
    }
  }
  const name = kind === 'vale' ? `${prefix}:${vp}` : vp;
  const out: NetmapPortSpec = { kind, name, mode, ringId, flags, memId, options };
  if (pipe) out.pipe = pipe;
  if (kind === 'vale') {
    const port = pipe ? vp.split(/[{}]/)[0] : vp;
    if (prefix.length > 15) throw bad(spec, `switch name '${prefix}' is longer than 15 characters`);
    if (port.length + 1 > 16) throw bad(spec, `port name '${port}' is longer than 15 characters`);
    out.switchName = prefix;
    out.port = port;
  }
  if (name.length >= 64) throw bad(spec, 'a port name is shorter than 64 characters');
  return out;
}

export function formatPortName(s: NetmapPortSpec): string {
  let out = s.kind === 'netmap' ? `netmap:${s.name}` : s.name;
  if (s.mode === NR_REG.SW) out += '^';
  else if (s.mode === NR_REG.ONE_SW) out += `^${s.ringId}`;
  else if (s.mode === NR_REG.NIC_SW) out += '*';
  else if (s.mode === NR_REG.ONE_NIC) out += `-${s.ringId}`;
  if (s.memId) out += `@${s.memId}`;
  const f = Object.entries(FLAG_BITS).filter(([, b]) => s.flags & b).map(([c]) => c).join('');
  if (f) out += `/${f}`;
  return out + s.options;
}
