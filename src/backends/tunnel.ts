// VXLAN and Geneve tunnel ports (`vxlan:LOCAL_IP[:PORT]`, `geneve:LOCAL_IP[:PORT]`, --vni N,
// --remote IP …): a switch port whose peer is a UDP socket on the underlay. Encapsulation,
// decapsulation and the fdb (inner MAC → remote VTEP, learned, aged, static entries) are the
// datapath's (assembly/tunnel/tunnel.ts); this file opens the sockets and moves batches.
//
// - Several VNI ports on one LOCAL_IP:PORT share one receiving socket (a TunnelSocket): the
//   first port pulls for all and the datapath hands each datagram to the port of its VNI
//   (never another's; an unknown VNI is dropped and counted on the socket).
// - No system call per frame: one recvmmsg fills up to 64 buffers of 64 KiB (UDP_GRO: the
//   kernel may coalesce a train of datagrams into one), one sendmmsg per send socket and
//   batch; a TSO frame from a TAP or a VM is segmented to the inner MTU in wasm and leaves as
//   one UDP GSO message (UDP_SEGMENT) where the kernel has it.
// - Outer UDP source port: a bound UDP socket has one source port, so the port sends through a
//   small pool of sockets bound to LOCAL_IP with ephemeral ports (--src-ports N, default 4) and
//   the inner flow's hash picks the socket: a flow keeps its port (no reordering) while flows
//   spread over N ports for ECMP, as Linux's vxlan spreads them over its port range.
// - The port carries a 12-byte virtio-net header (as TAP ports), so TSO frames cross the
//   switch whole. MTU: the underlay MTU (--mtu, default 1500) minus outer IP (20 or 40), UDP
//   (8) and our header (8) is the largest inner frame: 1464 bytes = inner MTU 1450 over IPv4.
import { isIPv4, isIPv6 } from 'node:net';
import type { NativeHost } from '../host.js';
import type { Datapath } from '../datapath.js';
import type { SwitchPort, PortStats } from '../switch.js';
import { WasmapError } from '../errors.js';
import type { AttachContext, Backend, Fields, Verdict } from './backend.js';

export type TunnelKind = 'vxlan' | 'geneve';
export const TUNNEL_PORTS: Record<TunnelKind, number> = { vxlan: 4789, geneve: 6081 };
const RX_MSGS = 64;
const RX_BUF = 65536;
const PORT_NAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

type Fns = Record<string, (...a: number[]) => number>;
const fns = (dp: Datapath): Fns => dp.fn as unknown as Fns;
const g = (dp: Datapath, name: string): number => Number((dp.abi as unknown as Record<string, number>)[name]);

/** 'IP', 'IP:PORT', '[IP6]:PORT' or a bare IPv6 address → address, port, family. */
export function parseLocal(kind: TunnelKind, body: string): { ip: string; port: number; v6: boolean } {
  let ip = body, port = TUNNEL_PORTS[kind];
  const bad = (why: string) => new WasmapError('EINVAL', `bad ${kind} address '${body}': ${why}; write ${kind}:LOCAL_IP[:PORT] (IPv6: ${kind}:[ADDR]:PORT)`);
  if (body.startsWith('[')) {
    const end = body.indexOf(']');
    if (end < 0) throw bad("no ']'");
    ip = body.slice(1, end);
    const rest = body.slice(end + 1);
    if (rest) { if (!/^:\d{1,5}$/.test(rest)) throw bad('expected :PORT after ]'); port = Number(rest.slice(1)); }
  } else if ((body.match(/:/g) ?? []).length === 1) {
    const i = body.indexOf(':');
    ip = body.slice(0, i);
    if (!/^\d{1,5}$/.test(body.slice(i + 1))) throw bad('the port must be a number');
    port = Number(body.slice(i + 1));
  }
  if (port < 1 || port > 65535) throw bad('the port must be 1..65535');
  if (!isIPv4(ip) && !isIPv6(ip)) throw bad(`'${ip}' is not an IPv4 or IPv6 address`);
  return { ip, port, v6: isIPv6(ip) };
}

/** An address as 16 bytes (IPv4 in the first 4), as the datapath keeps them. */
export function ipBytes(ip: string): Uint8Array {
  const b = new Uint8Array(16);
  if (isIPv4(ip)) { ip.split('.').forEach((x, i) => { b[i] = Number(x); }); return b; }
  if (!isIPv6(ip)) throw new WasmapError('EINVAL', `'${ip}' is not an IPv4 or IPv6 address`);
  let s = ip.replace(/%.*$/, '');
  const m = /(\d+\.\d+\.\d+\.\d+)$/.exec(s); // a trailing dotted quad (::ffff:1.2.3.4)
  if (m) { const q = m[1].split('.').map(Number); s = s.slice(0, -m[1].length) + `${((q[0] << 8) | q[1]).toString(16)}:${((q[2] << 8) | q[3]).toString(16)}`; }
  const [a, z] = s.split('::');
  const hs = (x: string | undefined) => (x ? x.split(':').filter((y) => y !== '') : []);
  const head = hs(a), tail = z === undefined ? [] : hs(z);
  const groups = [...head, ...new Array(8 - head.length - tail.length).fill('0'), ...tail];
  groups.forEach((x, i) => { const v = parseInt(x, 16); b[2 * i] = v >> 8; b[2 * i + 1] = v & 255; });
  return b;
}
export function ipText(b: Uint8Array, v6: boolean): string {
  if (!v6) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const gs: string[] = [];
  for (let i = 0; i < 8; i++) gs.push(((b[2 * i] << 8) | b[2 * i + 1]).toString(16));
  return gs.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/^0::/, '::').replace(/:::/, '::');
}

/** One receiving socket and its send sockets, shared by the VNI ports on one LOCAL_IP:PORT. */
class TunnelSocket {
  readonly members: TunnelPort[] = [];
  private readonly sent = new Float64Array(2); // [socket full, refused] since the last look
  readonly ss: number; private readonly rxArea: number; private readonly rxBytes: number; readonly txArea: number;
  readonly sendFds: number[] = []; readonly srcPorts: number[] = [];
  readonly gso: boolean; readonly gro: boolean;
  rxFd = -1;
  down: string | null = null;
  /** Received messages wait for room in the ports' rings: do not sleep on the socket. */
  pending = false;

  constructor(private readonly host: NativeHost, private readonly dp: Datapath, readonly key: string, readonly kind: TunnelKind,
              readonly ip: string, readonly port: number, readonly v6: boolean, nsock: number) {
    const f = fns(dp);
    this.rxBytes = f.tun_rx_area_size(RX_MSGS, RX_BUF);
    this.ss = dp.alloc(g(dp, 'TS_SIZE'));
    this.rxArea = dp.alloc(this.rxBytes, 4096, false);
    this.txArea = dp.alloc(g(dp, 'TUN_TX_AREA'), 4096, false);
    try {
      const r = host.udpOpen(ip, port, true);
      this.rxFd = r.fd; this.gro = r.gro;
      let gso = true;
      for (let i = 0; i < nsock; i++) {
        const s = host.udpOpen(ip, 0, false);
        this.sendFds.push(s.fd); this.srcPorts.push(s.port); gso &&= s.gso;
      }
      this.gso = gso;
    } catch (e) {
      this.free();
      const err = e as Error & { code?: string };
      throw new WasmapError(err.code ?? 'EIO', `${kind}:${ip}:${port}: ${err.message}`);
    }
    f.tun_sock_init(this.ss, kind === 'vxlan' ? 0 : 1, v6 ? 1 : 0, port, this.rxArea, RX_MSGS, RX_BUF, this.txArea, nsock, this.gso ? 1 : 0);
  }

  private free(): void {
    for (const fd of [this.rxFd, ...this.sendFds]) if (fd >= 0) { try { this.host.closeFd(fd); } catch { /* gone */ } }
    this.rxFd = -1; this.sendFds.length = 0;
    this.dp.release(this.ss, g(this.dp, 'TS_SIZE'));
    this.dp.release(this.rxArea, this.rxBytes);
    this.dp.release(this.txArea, g(this.dp, 'TUN_TX_AREA'));
  }
  close(): void { this.free(); }

  /** Underlay → the members' tx rings: up to 4 recvmmsg batches. Frames delivered. */
  recv(): number {
    if (this.down || this.rxFd < 0) return 0;
    const f = fns(this.dp), now = Math.floor(Date.now() / 1000);
    let moved = 0;
    // messages left from the last pass (the ports' rings were full) go first; the socket's
    // queue waits behind them (back-pressure, not drops)
    this.pending = false;
    if (f.tun_rx_pending(this.ss)) {
      moved += f.tun_rx(this.ss, 0, now);
      if (f.tun_rx_pending(this.ss)) { this.pending = true; return moved; }
    }
    for (let round = 0; round < 4; round++) {
      const msgs = f.tun_rx_prepare(this.ss);
      const n = this.host.udpRecv(this.dp.u8, this.rxFd, msgs, RX_MSGS);
      if (n < 0) { this.down = `receive on ${this.kind}:${this.ip}:${this.port} failed: errno ${-n}`; break; }
      if (n === 0) break;
      moved += f.tun_rx(this.ss, n, now);
      if (f.tun_rx_pending(this.ss)) { this.pending = true; break; }
      if (n < RX_MSGS) break;
    }
    return moved;
  }

  /** Send what tun_tx built: one sendmmsg per send socket. [socket full, refused] drops added to `into`. */
  send(into: Float64Array): number {
    const f = fns(this.dp);
    let msgs = 0;
    this.sent.fill(0);
    for (let i = 0; i < this.sendFds.length; i++) {
      const n = f.tun_tx_count(this.ss, i);
      if (!n) continue;
      const r = this.host.udpSend(this.dp.u8, this.sendFds[i], f.tun_tx_msgs(this.ss, i), n, this.sent);
      if (r < 0) { this.down = `send on ${this.kind}:${this.ip} failed: errno ${-r}`; break; }
      msgs += r;
    }
    into[0] += this.sent[0]; into[1] += this.sent[1];
    return msgs;
  }

  stats(): Fields {
    const c = (name: string) => Number(this.dp.u64(this.ss + g(this.dp, name)));
    return {
      datagrams: c('TS_RX_DGRAMS'), bytes: c('TS_RX_BYTES'), groDatagrams: c('TS_RX_GRO'), segments: c('TS_RX_SEGS'),
      drops: { truncated: c('TS_D_TRUNC'), short: c('TS_D_SHORT'), badFlags: c('TS_D_FLAGS'), badVersion: c('TS_D_VERSION'), critical: c('TS_D_CRITICAL'), badProtocol: c('TS_D_PROTO'), badOptions: c('TS_D_OPTS'), unknownVni: c('TS_D_VNI'), oam: c('TS_D_OAM') },
    };
  }
}

// the sockets of each memory (one daemon can run several switches over one Datapath)
const sockets = new WeakMap<Datapath, Map<string, TunnelSocket>>();

export interface FdbEntry { mac: string; remote: string; static: boolean; ageS: number }

export class TunnelPort implements Backend {
  down: string | null = null;
  private readonly sendDrops = new Float64Array(2); // messages: [socket buffer full, refused by the kernel]
  private remotes: string[] = [];
  readonly ps: number;

  constructor(private readonly host: NativeHost, private readonly dp: Datapath, readonly kind: TunnelKind, readonly port: SwitchPort,
              readonly sock: TunnelSocket, readonly vni: number, remotes: string[], readonly mtu: number, readonly ageS: number) {
    const f = fns(dp);
    this.ps = dp.alloc(g(dp, 'TP_SIZE'));
    const maxf = mtu - (sock.v6 ? 40 : 20) - 8 - 8;
    const rc = f.tun_port_add(sock.ss, this.ps, vni, port.tx.kring, port.rx.kring, maxf, ageS);
    if (rc < 0) {
      dp.release(this.ps, g(dp, 'TP_SIZE'));
      throw new WasmapError(rc === -1 ? 'EBUSY' : 'ENOSPC', rc === -1 ? `VNI ${vni} already has a port on ${kind}:${sock.ip}:${sock.port}` : `${kind}:${sock.ip}:${sock.port} carries ${g(dp, 'TUN_MAX_PORTS')} VNIs already`);
    }
    this.setRemotes(remotes);
  }

  get innerMtu(): number { return this.mtu - (this.sock.v6 ? 40 : 20) - 8 - 8 - 14; }

  setRemotes(list: string[]): void {
    const max = g(this.dp, 'TUN_MAX_REMOTES');
    if (list.length > max) throw new WasmapError('EINVAL', `at most ${max} remotes per tunnel port`);
    const buf = new Uint8Array(16 * Math.max(1, list.length));
    list.forEach((ip, i) => buf.set(ipBytes(ip), 16 * i));
    const at = this.dp.alloc(buf.length);
    this.dp.u8.set(buf, at);
    fns(this.dp).tun_set_remotes(this.ps, at, list.length);
    this.dp.release(at, buf.length);
    this.remotes = [...list];
  }

  pull(): number {
    if (this.down || this.sock.members[0] !== this) return 0; // the first port receives for all
    const n = this.sock.recv();
    if (this.sock.down) this.down = this.sock.down;
    return n;
  }

  push(): number {
    if (this.sock.down && !this.down) this.down = this.sock.down; // the shared socket died: every VNI on it is down
    if (this.down) return 0;
    const f = fns(this.dp), now = Math.floor(Date.now() / 1000);
    let moved = 0;
    for (let round = 0; round < 16; round++) {
      const n = f.tun_tx(this.ps, now);
      if (!n) break;
      this.sock.send(this.sendDrops);
      if (this.sock.down) { this.down = this.sock.down; break; }
      moved += n;
    }
    return moved;
  }

  sleepFds(fds: number[]): Verdict {
    if (!this.down && this.sock.members[0] === this && this.sock.rxFd >= 0) fds.push(this.sock.rxFd);
    return this.sock.pending && this.sock.members[0] === this ? 'nap' : 'sleep';
  }

  private c(name: string): number { return Number(this.dp.u64(this.ps + g(this.dp, name))); }

  info(): Fields {
    return { local: this.sock.v6 ? `[${this.sock.ip}]:${this.sock.port}` : `${this.sock.ip}:${this.sock.port}`, vni: this.vni, remotes: this.remotes, mtu: this.mtu, innerMtu: this.innerMtu,
      srcPorts: this.sock.srcPorts, gso: this.sock.gso, gro: this.sock.gro };
  }

  stats(): Fields {
    const f = fns(this.dp), now = Math.floor(Date.now() / 1000);
    return {
      local: this.info().local, vni: this.vni, remotes: this.remotes, learned: f.tun_fdb_count(this.ps, now, 0), staticEntries: f.tun_fdb_count(this.ps, now, 1),
      // kernelRx/kernelTx: frames from / to the underlay (as the other kernel-facing ports say)
      kernelRx: this.c('TP_RX_FRAMES'), kernelTx: this.c('TP_TX_FRAMES'), kernelDrops: this.dropTotal(),
      tunnel: {
        rxFrames: this.c('TP_RX_FRAMES'), rxBytes: this.c('TP_RX_BYTES'), txFrames: this.c('TP_TX_FRAMES'), txBytes: this.c('TP_TX_BYTES'),
        txDatagrams: this.c('TP_TX_DGRAMS'), flooded: this.c('TP_FLOODED'), groMerged: this.c('TP_GRO_MERGED'), fdbLearned: this.c('TP_LEARNED'), fdbMoved: this.c('TP_MOVED'), fdbFull: this.c('TP_FDB_FULL'),
        drops: { ringFull: this.c('TP_D_RING_FULL'), innerShort: this.c('TP_D_INNER_SHORT'), tooBig: this.c('TP_D_TOO_BIG'), badFrame: this.c('TP_D_BAD_FRAME'), noRemote: this.c('TP_D_NO_REMOTE'), sendFull: this.sendDrops[0], sendRefused: this.sendDrops[1] },
        socket: this.sockLeft ?? this.sock.stats(),
      },
    };
  }
  private dropTotal(): number {
    return this.c('TP_D_RING_FULL') + this.c('TP_D_INNER_SHORT') + this.c('TP_D_TOO_BIG') + this.c('TP_D_BAD_FRAME') + this.c('TP_D_NO_REMOTE') + this.sendDrops[0] + this.sendDrops[1];
  }

  // ---- fdb (ctl fdb add|del|list) ----
  private macParts(mac: string): [number, number] {
    if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac)) throw new WasmapError('EINVAL', `'${mac}' is not a MAC address (aa:bb:cc:dd:ee:ff)`);
    const b = mac.split(':').map((x) => parseInt(x, 16));
    if (b[0] & 1) throw new WasmapError('EINVAL', `${mac} is a group address: broadcast and multicast go to every remote, they take no entry`);
    return [((b[0] << 8) | b[1]) >>> 0, ((b[2] << 24) | (b[3] << 16) | (b[4] << 8) | b[5]) >>> 0];
  }
  fdbAdd(mac: string, remote: string): FdbEntry {
    const [hi, lo] = this.macParts(mac);
    if ((this.sock.v6 ? !isIPv6(remote) : !isIPv4(remote))) throw new WasmapError('EINVAL', `remote '${remote}' is not an ${this.sock.v6 ? 'IPv6' : 'IPv4'} address (the underlay of ${this.port.name})`);
    const at = this.dp.alloc(16);
    this.dp.u8.set(ipBytes(remote), at);
    const rc = fns(this.dp).tun_fdb_add(this.ps, hi, lo, at, Math.floor(Date.now() / 1000));
    this.dp.release(at, 16);
    if (rc < 0) throw new WasmapError('ENOSPC', `no room for ${mac} in ${this.port.name}'s fdb (its bucket is full of static entries)`);
    return { mac: mac.toLowerCase(), remote, static: true, ageS: 0 };
  }
  fdbDel(mac: string): { deleted: boolean } {
    const [hi, lo] = this.macParts(mac);
    return { deleted: fns(this.dp).tun_fdb_del(this.ps, hi, lo) === 1 };
  }
  fdbList(): FdbEntry[] {
    const f = fns(this.dp), now = Math.floor(Date.now() / 1000), n = g(this.dp, 'FDB_N'), size = g(this.dp, 'FDB_ENTRY'), base = this.ps + g(this.dp, 'TP_FDB');
    const out: FdbEntry[] = [];
    for (let i = 0; i < n; i++) {
      if (!f.tun_fdb_live(this.ps, i, now)) continue;
      const e = base + i * size, u8 = this.dp.u8;
      const mac = Array.from(u8.subarray(e, e + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
      const isStatic = (u8[e + 6] & 2) !== 0;
      out.push({ mac, remote: ipText(u8.slice(e + 8, e + 24), this.sock.v6), static: isStatic, ageS: isStatic ? 0 : now - this.dp.u32(e + 24) });
    }
    return out.sort((a, b) => a.mac.localeCompare(b.mac));
  }

  /** Off the socket (a fault or a detach): its VNI is then unknown there, and the next port
   *  receives for the others; the socket goes with the last port. */
  private leave(): void {
    if (this.sockLeft) return;
    this.sockLeft = this.sock.stats(); // kept for stats: the socket's memory may go now
    fns(this.dp).tun_port_del(this.sock.ss, this.ps);
    const i = this.sock.members.indexOf(this);
    if (i >= 0) this.sock.members.splice(i, 1);
    if (!this.sock.members.length) { this.sock.close(); sockets.get(this.dp)?.delete(this.sock.key); }
  }
  private sockLeft: Fields | null = null;

  close(reason: string, detach?: () => PortStats): { stats?: PortStats } & Fields {
    this.leave();
    if (!detach) { this.down = reason; return {}; } // a fault: listed down (counters kept) until detached
    const out = { tunnel: this.stats().tunnel };
    const stats = detach();
    this.dp.release(this.ps, g(this.dp, 'TP_SIZE'));
    return { stats, ...out };
  }
}

const list = (v: unknown): string[] => (v === undefined || v === null ? [] : Array.isArray(v) ? v.map(String) : String(v).split(',')).map((s) => s.trim()).filter(Boolean);
function intArg(args: Record<string, unknown>, key: string, flag: string, dflt: number, lo: number, hi: number): number {
  const v = args[key];
  if (v === undefined || v === null) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < lo || n > hi) throw new WasmapError('EINVAL', `${flag} must be a whole number ${lo}..${hi}, not '${String(v)}'`);
  return n;
}

/** `vxlan:LOCAL_IP[:PORT]` / `geneve:…` with --vni N [--remote IP …] [--name PORT] [--mtu M] [--src-ports N] [--age S]. */
export function openTunnel(c: AttachContext): TunnelPort {
  const i = c.spec.indexOf(':');
  const kind = c.spec.slice(0, i) as TunnelKind;
  const { ip, port, v6 } = parseLocal(kind, c.spec.slice(i + 1));
  if (c.args.vni === undefined || c.args.vni === null) throw new WasmapError('EINVAL', `${kind} ports need --vni N (0..16777215)`);
  const vni = intArg(c.args, 'vni', '--vni', 0, 0, 0xffffff);
  const mtu = intArg(c.args, 'mtu', '--mtu', 1500, v6 ? 1280 : 576, 65535);
  const nsock = intArg(c.args, 'srcPorts', '--src-ports', 4, 1, 8);
  const age = intArg(c.args, 'age', '--age', 300, 1, 86400 * 365);
  const remotes = list(c.args.remote);
  for (const r of remotes) if (v6 ? !isIPv6(r) : !isIPv4(r)) throw new WasmapError('EINVAL', `remote '${r}' is not an ${v6 ? 'IPv6' : 'IPv4'} address (the underlay is ${v6 ? 'IPv6' : 'IPv4'}: ${ip})`);
  const name = typeof c.args.name === 'string' && c.args.name ? c.args.name : `${kind}${vni}`;
  if (!PORT_NAME_RE.test(name)) throw new WasmapError('EINVAL', `bad port name '${name}': 1 to 15 letters, digits, '_', '-' or '.'`);
  if (c.sw.port(name)) throw new WasmapError('EBUSY', `${c.sw.name}:${name} already exists; name the port with --name`);
  let map = sockets.get(c.dp);
  if (!map) { map = new Map(); sockets.set(c.dp, map); }
  const key = `${ip}|${port}`;
  let sock = map.get(key);
  if (sock && sock.kind !== kind) throw new WasmapError('EBUSY', `${ip}:${port} already carries ${sock.kind}, not ${kind}`);
  const fresh = !sock;
  if (!sock) sock = new TunnelSocket(c.host, c.dp, key, kind, ip, port, v6, nsock);
  const sp = (() => { try { return c.sw.attach(name); } catch (e) { if (fresh) sock!.close(); throw e; } })();
  try {
    c.sw.setHeaderLength(name, 12);
    const tp = new TunnelPort(c.host, c.dp, kind, sp, sock, vni, remotes, mtu, age);
    sock.members.push(tp);
    if (fresh) map.set(key, sock);
    return tp;
  } catch (e) {
    c.sw.detach(name);
    if (fresh) sock.close();
    throw e;
  }
}
