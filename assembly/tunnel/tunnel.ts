// VXLAN (RFC 7348) and Geneve (RFC 8926) tunnel ports: encapsulation, decapsulation, the
// per-port forwarding database (inner MAC -> remote VTEP) and the message arrays the native
// host hands to recvmmsg/sendmmsg. No system call is made here and nothing is allocated: the
// host relocates the offsets in the arrays built below (adds the memory's base) and calls the
// kernel once per batch (src/backends/tunnel.ts).
//
// Layout: one socket state (TS_*) per LOCAL_IP:PORT (several VNI ports share it and are told
// apart by VNI here), one port state (TP_*) per VNI port. The outer Ethernet/IP/UDP headers
// are the kernel's (a UDP socket): only the 8-byte VXLAN / Geneve header is ours.
//
// Everything read from the wire is hostile: every length is checked before the byte it
// names is read, a datagram is parsed once, and every drop is counted by reason.
import {
  SLOT_SIZE, SLOT_BUF_IDX, SLOT_LEN, SLOT_FLAGS, NS_MOREFRAG, RING_HEAD, RING_CUR, RING_TAIL,
  RING_SLOTS, KR_RING, KR_NSLOTS, KR_BUF_BASE, KR_BUF_SIZE, KR_NBUFS, BUF_RESERVED,
} from '../abi';
import { ring_dist } from '../ring';
import { vnet_convert_into, vnet_segment_to, VN_MAX_OUT } from '../offload/vnet';
import { csum_add, csum_fold } from '../offload/csum';

export const TUN_VXLAN: u32 = 0;
export const TUN_GENEVE: u32 = 1;
const TH: u32 = 8; // our encapsulation header on send (VXLAN, or Geneve without options)
const VH: u32 = 12; // the port's virtio-net header (as a TAP port's)
const MAX_FRAGS: u32 = 64;

// ---- socket state (one per LOCAL_IP:PORT) ----
export const TS_KIND: u32 = 0; // TUN_VXLAN | TUN_GENEVE
export const TS_V6: u32 = 4; // 1: IPv6 underlay
export const TS_DPORT: u32 = 8; // UDP port of remotes (host order), as Linux's dstport
export const TS_NPORTS: u32 = 12;
export const TS_RXN: u32 = 16; // messages per recvmmsg
export const TS_RXBUF: u32 = 20; // bytes per receive buffer (64 KiB: a GRO datagram)
export const TS_RXAREA: u32 = 24;
export const TS_NSOCK: u32 = 28; // send sockets (outer source ports) 1..TX_SOCKS
export const TS_TXAREA: u32 = 32;
export const TS_GSO: u32 = 36; // 1: the kernel takes UDP_SEGMENT
export const TS_TXCOUNT: u32 = 40; // u32 × TX_SOCKS: messages built for each send socket
const TS_NIOV: u32 = 72; const TS_NHDR: u32 = 76; const TS_SCR: u32 = 80;
const TS_RX_HAVE: u32 = 84; const TS_RX_NEXT: u32 = 88; // received messages, the next to decapsulate
// u64 counters (socket-wide: no VNI known yet)
export const TS_RX_DGRAMS: u32 = 128;
export const TS_RX_BYTES: u32 = 136;
export const TS_D_TRUNC: u32 = 144; // datagram longer than a receive buffer (cut by the kernel)
export const TS_D_SHORT: u32 = 152; // shorter than the tunnel header (or its options)
export const TS_D_FLAGS: u32 = 160; // VXLAN: I flag missing or reserved bits set
export const TS_D_VERSION: u32 = 168; // Geneve version != 0
export const TS_D_CRITICAL: u32 = 176; // Geneve C bit or a critical option (we know none)
export const TS_D_PROTO: u32 = 184; // Geneve protocol type not Ethernet (0x6558)
export const TS_D_OPTS: u32 = 192; // Geneve options that overrun their length
export const TS_D_VNI: u32 = 200; // no port for that VNI
export const TS_D_OAM: u32 = 208; // Geneve O bit (control messages: not for the data path)
export const TS_RX_GRO: u32 = 216; // datagrams that came coalesced (UDP_GRO), counted once each
export const TS_RX_SEGS: u32 = 224; // tunnel datagrams after splitting GRO ones
const TS_PORTS: u32 = 256; // {vni u32, port state u32} × TUN_MAX_PORTS
export const TUN_MAX_PORTS: u32 = 64;
export const TS_SIZE: u32 = TS_PORTS + 8 * TUN_MAX_PORTS;

// ---- port state (one per VNI) ----
export const TP_VNI: u32 = 0;
export const TP_SS: u32 = 4; // its socket state
export const TP_TXK: u32 = 8; // the port's tx kring: decapsulated frames go in here (as its user)
export const TP_RXK: u32 = 12; // the port's rx kring: frames to encapsulate come from here
export const TP_NREM: u32 = 16; // remotes in the flood list
export const TP_MAXF: u32 = 20; // largest inner frame (Ethernet header on, no vnet header) that fits the underlay MTU
export const TP_AGE: u32 = 24; // seconds a learned entry lives
export const TP_RX_FRAMES: u32 = 64; // decapsulated frames handed to the switch
export const TP_RX_BYTES: u32 = 72;
export const TP_TX_FRAMES: u32 = 80; // frames from the switch that left encapsulated
export const TP_TX_BYTES: u32 = 88;
export const TP_TX_DGRAMS: u32 = 96; // datagrams built (segments × remotes)
export const TP_FLOODED: u32 = 104; // frames flooded to the remote list (head-end replication)
export const TP_D_RING_FULL: u32 = 112; // no room in the port's tx ring
export const TP_D_INNER_SHORT: u32 = 120; // inner frame shorter than an Ethernet header
export const TP_D_TOO_BIG: u32 = 128; // over the inner MTU and not segmentable
export const TP_D_BAD_FRAME: u32 = 136; // bad virtio-net header / slots / unsegmentable GSO frame
export const TP_D_NO_REMOTE: u32 = 144; // to flood but the remote list is empty
export const TP_FDB_FULL: u32 = 152; // a source not learned: its fdb bucket was full
export const TP_LEARNED: u32 = 160; // new entries learned
export const TP_MOVED: u32 = 168; // entries whose remote changed
export const TP_D_SEND_FULL: u32 = 176; // messages the kernel would not take (socket buffer full) — counted by the host side
export const TP_D_SEND_ERR: u32 = 184; // messages the kernel refused (no route, too big) — counted by the host side
// receive coalescing (GRO of the inner TCP stream): the train being built in the tx ring
const TP_G_OPEN: u32 = 192; const TP_G_CUR: u32 = 196; const TP_G_LAST: u32 = 200; const TP_G_FILL: u32 = 204;
const TP_G_LEN: u32 = 208; const TP_G_SEGS: u32 = 212; const TP_G_MSS: u32 = 216; const TP_G_SEQ: u32 = 220;
const TP_G_HL: u32 = 224; const TP_G_FLAGS: u32 = 228;
export const TP_GRO_MERGED: u32 = 232; // u64: inner TCP segments merged into the frame before them
const TP_REMOTES: u32 = 256; // 16 bytes each (IPv4: the first 4)
export const TUN_MAX_REMOTES: u32 = 64;
export const TP_FDB: u32 = TP_REMOTES + 16 * TUN_MAX_REMOTES;
export const FDB_N: u32 = 1024; // entries; a MAC lives in one bucket of FDB_WAYS
const FDB_WAYS: u32 = 16;
export const FDB_ENTRY: u32 = 32; // key u64 (mac | valid | static), ip[16] @8, seen u32 @24
export const TP_SIZE: u32 = TP_FDB + FDB_N * FDB_ENTRY;
const K_VALID: u64 = 1 << 48;
const K_STATIC: u64 = 1 << 49;
const MAC_MASK: u64 = 0xffffffffffff;

// ---- message arrays (struct mmsghdr, Linux x86-64/aarch64: 64 bytes) ----
const MH_NAME: u32 = 0; const MH_NAMELEN: u32 = 8; const MH_IOV: u32 = 16; const MH_IOVLEN: u32 = 24;
const MH_CONTROL: u32 = 32; const MH_CONTROLLEN: u32 = 40; const MH_FLAGS: u32 = 48; const MH_LEN: u32 = 56;
const MH: u32 = 64;
const MSG_TRUNC: u32 = 0x20;
const SOL_UDP: u32 = 17; const UDP_SEGMENT: u32 = 103; const UDP_GRO: u32 = 104;

/** Bytes of the receive area for n messages of buf bytes. */
export function tun_rx_area_size(n: u32, buf: u32): u32 { return n * (MH + 16 + 32 + 32) + n * buf + 64; }
@inline function rx_msgs(ss: usize): usize { return <usize>load<u32>(ss, TS_RXAREA); }

// the send area: messages per socket, their names and controls, iovecs, headers, scratch
export const TX_SOCKS: u32 = 8;
export const TX_MSGS: u32 = 64; // per socket per batch
const TX_IOVS: u32 = 2048;
const TX_HDRS: u32 = 512;
const TXA_MSGS: u32 = 0;
const TXA_NAMES: u32 = TXA_MSGS + TX_SOCKS * TX_MSGS * MH;
const TXA_CTRL: u32 = TXA_NAMES + TX_SOCKS * TX_MSGS * 32;
const TXA_IOV: u32 = TXA_CTRL + TX_SOCKS * TX_MSGS * 32;
const TXA_HDR: u32 = TXA_IOV + TX_IOVS * 16;
const TXA_GATHER: u32 = TXA_HDR + TX_HDRS * 16;
const GATHER: u32 = 65536 + 64 * 2048; // a whole chain of the port's slots
const TXA_LENS: u32 = TXA_GATHER + GATHER;
const TXA_SCR: u32 = TXA_LENS + 4 * VN_MAX_OUT;
const TX_SCRATCH: u32 = 1 << 20;
export const TUN_TX_AREA: u32 = TXA_SCR + TX_SCRATCH;
// UDP GSO: one send of at most this many bytes (IPv4 limits a datagram to 65535 with headers)
const GSO_BYTES: u32 = 65000;
const GSO_SEGS: u32 = 64; // UDP_MAX_SEGMENTS on older kernels

@inline function be16(p: usize): u32 { return <u32>bswap<u16>(load<u16>(p)); }
@inline function inc(p: usize, off: u32, v: u64 = 1): void { store<u64>(p + off, load<u64>(p + off) + v); }

/** Set up a socket state (zeroed by the caller). */
export function tun_sock_init(ss: usize, kind: u32, v6: u32, dport: u32, rxarea: usize, rxn: u32, rxbuf: u32, txarea: usize, nsock: u32, gso: u32): void {
  store<u32>(ss, kind, TS_KIND); store<u32>(ss, v6, TS_V6); store<u32>(ss, dport, TS_DPORT);
  store<u32>(ss, <u32>rxarea, TS_RXAREA); store<u32>(ss, rxn, TS_RXN); store<u32>(ss, rxbuf, TS_RXBUF);
  store<u32>(ss, <u32>txarea, TS_TXAREA); store<u32>(ss, nsock < 1 ? 1 : nsock > TX_SOCKS ? TX_SOCKS : nsock, TS_NSOCK); store<u32>(ss, gso, TS_GSO);
}

/** Join port state ps (VNI vni) to socket ss. -1: the VNI is taken on this socket; -2: full. */
export function tun_port_add(ss: usize, ps: usize, vni: u32, txk: usize, rxk: usize, maxf: u32, age: u32): i32 {
  const n = load<u32>(ss, TS_NPORTS);
  for (let i: u32 = 0; i < n; i++) if (load<u32>(ss + TS_PORTS + 8 * i) == vni) return -1;
  if (n >= TUN_MAX_PORTS) return -2;
  store<u32>(ps, vni, TP_VNI); store<u32>(ps, <u32>ss, TP_SS); store<u32>(ps, <u32>txk, TP_TXK); store<u32>(ps, <u32>rxk, TP_RXK);
  store<u32>(ps, maxf, TP_MAXF); store<u32>(ps, age, TP_AGE);
  store<u32>(ss + TS_PORTS + 8 * n, vni); store<u32>(ss + TS_PORTS + 8 * n, <u32>ps, 4);
  store<u32>(ss, n + 1, TS_NPORTS);
  return 0;
}

/** Take port state ps off its socket (its frames' VNI then counts as unknown). */
export function tun_port_del(ss: usize, ps: usize): void {
  const n = load<u32>(ss, TS_NPORTS);
  for (let i: u32 = 0; i < n; i++) {
    if (load<u32>(ss + TS_PORTS + 8 * i, 4) != <u32>ps) continue;
    const last = ss + TS_PORTS + 8 * (n - 1);
    store<u64>(ss + TS_PORTS + 8 * i, load<u64>(last));
    store<u32>(ss, n - 1, TS_NPORTS);
    return;
  }
}

/** The remote list (flood targets): ips = count × 16 bytes. */
export function tun_set_remotes(ps: usize, ips: usize, count: u32): i32 {
  if (count > TUN_MAX_REMOTES) return -1;
  memory.copy(ps + TP_REMOTES, ips, 16 * count);
  store<u32>(ps, count, TP_NREM);
  return 0;
}

// ---- forwarding database ----
@inline function mac_at(p: usize): u64 { return (<u64>load<u32>(p) | (<u64>load<u16>(p, 4) << 32)); }
@inline function bucket(mac: u64): u32 {
  const h = (mac * 0x9E3779B97F4A7C15) >> 40;
  return (<u32>h & (FDB_N - 1)) & ~(FDB_WAYS - 1);
}
@inline function live(e: usize, now: u32, age: u32): bool {
  const k = load<u64>(e);
  if ((k & K_VALID) == 0) return false;
  if (k & K_STATIC) return true;
  return now - load<u32>(e, 24) <= age;
}
// the entry of mac (live or not), or 0
function fdb_find(ps: usize, mac: u64): usize {
  const b = bucket(mac);
  for (let i: u32 = 0; i < FDB_WAYS; i++) {
    const e = ps + TP_FDB + <usize>((b + i) * FDB_ENTRY);
    const k = load<u64>(e);
    if ((k & K_VALID) != 0 && (k & MAC_MASK) == mac) return e;
  }
  return 0;
}
@inline function ip_eq(a: usize, b: usize): bool { return load<u64>(a) == load<u64>(b) && load<u64>(a, 8) == load<u64>(b, 8); }

/** Learn (or refresh) mac -> ip; static entries are never overwritten. */
function fdb_learn(ps: usize, mac: u64, ip: usize, now: u32): void {
  const age = load<u32>(ps, TP_AGE);
  let e = fdb_find(ps, mac);
  if (e) {
    const k = load<u64>(e);
    if (k & K_STATIC) return;
    if (now - load<u32>(e, 24) > age) inc(ps, TP_LEARNED); // it had aged out: learned anew
    else if (!ip_eq(e + 8, ip)) inc(ps, TP_MOVED);
    memory.copy(e + 8, ip, 16);
    store<u32>(e, now, 24);
    return;
  }
  const b = bucket(mac);
  for (let i: u32 = 0; i < FDB_WAYS; i++) {
    const c = ps + TP_FDB + <usize>((b + i) * FDB_ENTRY);
    if (!live(c, now, age)) { e = c; break; }
  }
  if (!e) { inc(ps, TP_FDB_FULL); return; }
  store<u64>(e, mac | K_VALID);
  memory.copy(e + 8, ip, 16);
  store<u32>(e, now, 24);
  inc(ps, TP_LEARNED);
}

/** A static entry mac -> ip (16 bytes at ip). mac as hi (2 bytes) and lo (4 bytes) in wire order. -1: bucket full. */
export function tun_fdb_add(ps: usize, mac_hi: u32, mac_lo: u32, ip: usize, now: u32): i32 {
  const mac = mac_from(mac_hi, mac_lo);
  let e = fdb_find(ps, mac);
  if (!e) {
    const b = bucket(mac), age = load<u32>(ps, TP_AGE);
    for (let i: u32 = 0; i < FDB_WAYS; i++) {
      const c = ps + TP_FDB + <usize>((b + i) * FDB_ENTRY);
      if (!live(c, now, age)) { e = c; break; }
    }
    if (!e) return -1;
  }
  store<u64>(e, mac | K_VALID | K_STATIC);
  memory.copy(e + 8, ip, 16);
  store<u32>(e, now, 24);
  return 0;
}
/** Remove mac's entry (static or learned). 1 when there was one. */
export function tun_fdb_del(ps: usize, mac_hi: u32, mac_lo: u32): i32 {
  const e = fdb_find(ps, mac_from(mac_hi, mac_lo));
  if (!e) return 0;
  store<u64>(e, 0);
  return 1;
}
// mac bytes m0..m5 in wire order: hi = m0 << 8 | m1, lo = m2 << 24 | .. | m5
function mac_from(hi: u32, lo: u32): u64 {
  let m: u64 = 0;
  m |= <u64>((hi >> 8) & 0xff); m |= <u64>(hi & 0xff) << 8;
  m |= <u64>((lo >> 24) & 0xff) << 16; m |= <u64>((lo >> 16) & 0xff) << 24;
  m |= <u64>((lo >> 8) & 0xff) << 32; m |= <u64>(lo & 0xff) << 40;
  return m;
}
/** Live entries: learned ones (statics = 0) or static ones (statics = 1). */
export function tun_fdb_count(ps: usize, now: u32, statics: u32): u32 {
  const age = load<u32>(ps, TP_AGE);
  let c: u32 = 0;
  for (let i: u32 = 0; i < FDB_N; i++) {
    const e = ps + TP_FDB + <usize>(i * FDB_ENTRY);
    if (!live(e, now, age)) continue;
    if (((load<u64>(e) & K_STATIC) != 0) == (statics != 0)) c++;
  }
  return c;
}
/** Is the entry at index i live (for listing)? */
export function tun_fdb_live(ps: usize, i: u32, now: u32): u32 {
  return i < FDB_N && live(ps + TP_FDB + <usize>(i * FDB_ENTRY), now, load<u32>(ps, TP_AGE)) ? 1 : 0;
}

// ---- receive ----

/** Write the receive messages (offsets, relocated by the host) and return their address. */
export function tun_rx_prepare(ss: usize): usize {
  const n = load<u32>(ss, TS_RXN), bsz = load<u32>(ss, TS_RXBUF);
  const m = rx_msgs(ss), iov = m + <usize>(n * MH), names = iov + <usize>(n * 16), ctrl = names + <usize>(n * 32);
  const bufs = (ctrl + <usize>(n * 32) + 63) & ~(<usize>63);
  for (let i: u32 = 0; i < n; i++) {
    const h = m + <usize>(i * MH), v = iov + <usize>(i * 16);
    store<u64>(h, <u64>(names + <usize>(i * 32)), MH_NAME); store<u32>(h, 32, MH_NAMELEN); store<u32>(h, 0, MH_NAMELEN + 4);
    store<u64>(h, <u64>v, MH_IOV); store<u64>(h, 1, MH_IOVLEN);
    store<u64>(h, <u64>(ctrl + <usize>(i * 32)), MH_CONTROL); store<u64>(h, 32, MH_CONTROLLEN);
    store<u32>(h, 0, MH_FLAGS); store<u32>(h, 0, MH_FLAGS + 4); store<u64>(h, 0, MH_LEN);
    store<u64>(v, <u64>(bufs + <usize>i * <usize>bsz)); store<u64>(v, <u64>bsz, 8);
  }
  return m;
}

// the source address of the datagram being decapsulated (16 bytes; IPv4 in the first 4)
const SRC_IP = memory.data(16);

/**
 * Decapsulate the n datagrams recvmmsg left in the receive area (a GRO datagram is split at
 * its gso_size first) and hand each inner frame to the port of its VNI. `now`: seconds (fdb
 * ageing). Returns frames delivered.
 */
export function tun_rx(ss: usize, n: u32, now: u32): u32 {
  const max = load<u32>(ss, TS_RXN), bsz = load<u32>(ss, TS_RXBUF);
  if (n > max) n = max;
  if (n > 0) { store<u32>(ss, n, TS_RX_HAVE); store<u32>(ss, 0, TS_RX_NEXT); } // a fresh batch (else: go on with the one pending)
  n = load<u32>(ss, TS_RX_HAVE);
  const m = rx_msgs(ss), names = m + <usize>(max * (MH + 16)), ctrl = names + <usize>(max * 32);
  const bufs = (ctrl + <usize>(max * 32) + 63) & ~(<usize>63);
  let moved: u32 = 0;
  let i = load<u32>(ss, TS_RX_NEXT);
  for (; i < n; i++) {
    const h = m + <usize>(i * MH);
    const len = load<u32>(h, MH_LEN), flags = load<u32>(h, MH_FLAGS);
    // back-pressure: a message whose frames may not fit every port's tx ring waits (in the
    // receive area, the socket's queue behind it) until the switch has taken what is there
    const gso = gro_size(h, ctrl + <usize>(i * 32));
    if (!rx_room(ss, len, gso)) break;
    inc(ss, TS_RX_DGRAMS); inc(ss, TS_RX_BYTES, len);
    if ((flags & MSG_TRUNC) != 0 || len > bsz) { inc(ss, TS_D_TRUNC); continue; }
    const name = names + <usize>(i * 32);
    store<u64>(SRC_IP, 0); store<u64>(SRC_IP, 0, 8);
    const fam = load<u16>(name);
    if (fam == 2) store<u32>(SRC_IP, load<u32>(name, 4));
    else if (fam == 10) { store<u64>(SRC_IP, load<u64>(name, 8)); store<u64>(SRC_IP, load<u64>(name, 16), 8); }
    // UDP_GRO: the kernel coalesced datagrams of gso_size bytes (the last may be shorter)
    const buf = bufs + <usize>i * <usize>bsz;
    if (gso > 0 && gso < len) {
      inc(ss, TS_RX_GRO);
      for (let off: u32 = 0; off < len; off += gso) moved += decap(ss, buf + off, len - off < gso ? len - off : gso, now);
    } else moved += decap(ss, buf, len, now);
  }
  store<u32>(ss, i, TS_RX_NEXT);
  tun_rx_flush(ss);
  return moved;
}

/** Received messages not yet decapsulated (their ports' rings were full). */
export function tun_rx_pending(ss: usize): u32 { return load<u32>(ss, TS_RX_HAVE) - load<u32>(ss, TS_RX_NEXT); }

// The UDP_GRO segment size in message h's control data (0: one datagram).
function gro_size(h: usize, c0: usize): u32 {
  let gso: u32 = 0;
  const cl = load<u64>(h, MH_CONTROLLEN);
  let c = c0;
  while (<u64>(c - c0) + 16 <= cl && cl <= 32) {
    const l = load<u64>(c);
    if (l < 16 || <u64>(c - c0) + l > cl) break;
    if (load<u32>(c, 8) == SOL_UDP && load<u32>(c, 12) == UDP_GRO && l >= 18) gso = l >= 20 ? load<u32>(c, 16) : <u32>load<u16>(c, 16);
    c += <usize>((l + 7) & ~7);
  }
  return gso;
}

// Do the frames of a message of len bytes in segments of gso fit every port's tx ring? (A port
// whose ring is all free takes it anyway: what does not fit is dropped and counted.)
function rx_room(ss: usize, len: u32, gso: u32): bool {
  const seg = gso > 0 && gso < len ? gso : len, segs = (len + seg - 1) / (seg == 0 ? 1 : seg);
  const np = load<u32>(ss, TS_NPORTS);
  for (let i: u32 = 0; i < np; i++) {
    const ps = <usize>load<u32>(ss + TS_PORTS + 8 * i, 4), k = <usize>load<u32>(ps, TP_TXK);
    const r = <usize>load<u32>(k, KR_RING), n = load<u32>(k, KR_NSLOTS), bsize = load<u32>(k, KR_BUF_SIZE);
    const need: u32 = (segs == 0 ? 1 : segs) * ((VH + seg + bsize - 1) / bsize);
    const from = load<u32>(ps, TP_G_OPEN) ? load<u32>(ps, TP_G_CUR) : load<u32>(r, RING_HEAD);
    const room = ring_dist(from, load<u32>(r, RING_TAIL), n);
    if (room < need && ring_dist(load<u32>(r, RING_HEAD), load<u32>(r, RING_TAIL), n) + 1 < n) return false;
  }
  return true;
}

/** Hand every port's coalesced TCP train to the switch (end of a receive batch). */
export function tun_rx_flush(ss: usize): void {
  const n = load<u32>(ss, TS_NPORTS);
  for (let i: u32 = 0; i < n; i++) {
    const ps = <usize>load<u32>(ss + TS_PORTS + 8 * i, 4);
    if (load<u32>(ps, TP_G_OPEN)) gro_flush(ps);
  }
}

// ---- inner TCP coalescing ----
// A TAP (or VM) takes a 64 KiB TSO frame in one write; handing it 45 MTU-sized frames instead
// costs 45 writes and 45 passes of the inner stack. So consecutive segments of one TCP/IPv4
// flow in a receive batch are merged into one frame with a GSO virtio-net header (as Linux's
// GRO does): same addresses, ports, ack, window, options and IP fields, in-order sequence
// numbers, full-size segments (a shorter or PSH one ends the train), only ACK/PSH flags.
// Each segment's TCP checksum is verified before it is merged (the merged frame says
// NEEDS_CSUM, which the receiving stack trusts); a bad one is delivered alone, as it came.

@inline function put16(p: usize, v: u32): void { store<u16>(p, bswap<u16>(<u16>v)); }

/** The payload offset of an inner frame that may join or start a train, else 0. */
function gro_candidate(f: usize, fl: u32): u32 {
  if (fl < 54 || be16(f + 12) != 0x0800 || load<u8>(f, 14) != 0x45) return 0;
  const tot = be16(f + 16);
  if (14 + tot != fl || (be16(f + 20) & 0x3fff) != 0 || load<u8>(f, 23) != 6) return 0;
  const doff = <u32>load<u8>(f, 46) >> 4;
  const hl: u32 = 34 + 4 * doff;
  if (doff < 5 || hl >= fl) return 0;
  if ((<u32>load<u8>(f, 47) & ~(<u32>0x18)) != 0) return 0; // ACK and PSH only
  const tl = tot - 20;
  if (csum_fold(csum_add(f + 34, tl, csum_add(f + 26, 8, <u64>(6 + tl)))) != 0xffff) return 0;
  return hl;
}

@inline function slot_of(r: usize, i: u32): usize { return r + RING_SLOTS + <usize>(SLOT_SIZE * i); }

/** Deliver inner frame f to port ps: into its open train when it continues it, else alone. */
function deliver(ps: usize, f: usize, fl: u32): bool {
  const k = <usize>load<u32>(ps, TP_TXK);
  const hl = gro_candidate(f, fl);
  if (load<u32>(ps, TP_G_OPEN)) {
    if (hl != 0 && gro_continues(ps, k, f, fl, hl) && gro_append(ps, k, f + hl, fl - hl)) {
      const flags = <u32>load<u8>(f, 47);
      store<u32>(ps, load<u32>(ps, TP_G_FLAGS) | flags, TP_G_FLAGS);
      store<u32>(ps, load<u32>(ps, TP_G_SEQ) + (fl - hl), TP_G_SEQ);
      store<u32>(ps, load<u32>(ps, TP_G_SEGS) + 1, TP_G_SEGS);
      inc(ps, TP_GRO_MERGED);
      if ((flags & 0x08) != 0 || fl - hl < load<u32>(ps, TP_G_MSS)) gro_flush(ps);
      return true;
    }
    gro_flush(ps);
  }
  if (hl == 0 || (load<u8>(f, 47) & 0x08) != 0) return ring_put(k, f, fl);
  // start a train: written like any frame, published (head advanced) only at the flush
  if (!ring_put(k, f, fl)) return false;
  const r = <usize>load<u32>(k, KR_RING), n = load<u32>(k, KR_NSLOTS);
  const cur = load<u32>(r, RING_HEAD);
  const bsize = load<u32>(k, KR_BUF_SIZE), cap: u32 = bsize > 65535 ? 65535 : bsize;
  const total = VH + fl, used = (total + cap - 1) / cap;
  const first = cur >= used ? cur - used : cur + n - used;
  store<u32>(r, first, RING_HEAD); store<u32>(r, first, RING_CUR); // not yet the switch's
  store<u32>(ps, 1, TP_G_OPEN); store<u32>(ps, cur, TP_G_CUR);
  store<u32>(ps, cur == 0 ? n - 1 : cur - 1, TP_G_LAST); store<u32>(ps, total - (used - 1) * cap, TP_G_FILL);
  store<u32>(ps, total, TP_G_LEN); store<u32>(ps, 1, TP_G_SEGS); store<u32>(ps, fl - hl, TP_G_MSS);
  store<u32>(ps, bswap<u32>(load<u32>(f, 38)) + (fl - hl), TP_G_SEQ); store<u32>(ps, hl, TP_G_HL);
  store<u32>(ps, <u32>load<u8>(f, 47), TP_G_FLAGS);
  return true;
}

// Does segment f continue the open train? (its first frame's headers sit in the head slot)
function gro_continues(ps: usize, k: usize, f: usize, fl: u32, hl: u32): bool {
  if (hl != load<u32>(ps, TP_G_HL)) return false;
  const pay = fl - hl;
  if (pay > load<u32>(ps, TP_G_MSS) || bswap<u32>(load<u32>(f, 38)) != load<u32>(ps, TP_G_SEQ)) return false;
  if (load<u32>(ps, TP_G_LEN) - VH - 14 + pay > 65535) return false;
  const r = <usize>load<u32>(k, KR_RING);
  const s = slot_of(r, load<u32>(r, RING_HEAD));
  const o = <usize>load<u32>(k, KR_BUF_BASE) + <usize>load<u32>(s, SLOT_BUF_IDX) * <usize>load<u32>(k, KR_BUF_SIZE) + VH;
  // Ethernet (14), IP version..tos (2), flags/frag (2 at 20), ttl/proto (2 at 22), addresses (8 at 26)
  if (memory.compare(o, f, 16) != 0 || load<u16>(o, 20) != load<u16>(f, 20) || load<u16>(o, 22) != load<u16>(f, 22)) return false;
  if (load<u64>(o, 26) != load<u64>(f, 26)) return false;
  // TCP ports (4 at 34), ack (4 at 42), data offset (1 at 46), window (2 at 48), options
  if (load<u32>(o, 34) != load<u32>(f, 34) || load<u32>(o, 42) != load<u32>(f, 42) || load<u8>(o, 46) != load<u8>(f, 46) || load<u16>(o, 48) != load<u16>(f, 48)) return false;
  return hl == 54 || memory.compare(o + 54, f + 54, hl - 54) == 0;
}

// Append n payload bytes to the train; false (nothing written) when the ring has no room.
function gro_append(ps: usize, k: usize, p: usize, n: u32): bool {
  const r = <usize>load<u32>(k, KR_RING), ns = load<u32>(k, KR_NSLOTS);
  const tail = load<u32>(r, RING_TAIL), head = load<u32>(r, RING_HEAD);
  const base = <usize>load<u32>(k, KR_BUF_BASE), bsize = load<u32>(k, KR_BUF_SIZE), nbufs = load<u32>(k, KR_NBUFS);
  const cap: u32 = bsize > 65535 ? 65535 : bsize;
  let cur = load<u32>(ps, TP_G_CUR), last = load<u32>(ps, TP_G_LAST), fill = load<u32>(ps, TP_G_FILL);
  const more = fill + n > cap ? (fill + n - cap + cap - 1) / cap : 0;
  if (more > ring_dist(cur, tail, ns) || ring_dist(head, cur, ns) + more > MAX_FRAGS) return false;
  for (let j: u32 = 0; j < more; j++) {
    const idx = load<u32>(slot_of(r, (cur + j) % ns), SLOT_BUF_IDX);
    if (idx < BUF_RESERVED || idx >= nbufs) return false;
  }
  let done: u32 = 0;
  while (done < n) {
    if (fill == cap) {
      store<u16>(slot_of(r, last), NS_MOREFRAG, SLOT_FLAGS);
      last = cur; cur = cur + 1 == ns ? 0 : cur + 1; fill = 0;
      store<u16>(slot_of(r, last), 0, SLOT_FLAGS);
    }
    const c = n - done < cap - fill ? n - done : cap - fill;
    const s = slot_of(r, last);
    memory.copy(base + <usize>load<u32>(s, SLOT_BUF_IDX) * <usize>bsize + fill, p + done, c);
    fill += c; done += c;
    store<u16>(s, <u16>fill, SLOT_LEN);
  }
  store<u32>(ps, cur, TP_G_CUR); store<u32>(ps, last, TP_G_LAST); store<u32>(ps, fill, TP_G_FILL);
  store<u32>(ps, load<u32>(ps, TP_G_LEN) + n, TP_G_LEN);
  return true;
}

// Close the train: a merged one gets its headers fixed and a TSO virtio-net header; then the
// switch may take it (head advanced past it).
function gro_flush(ps: usize): void {
  const k = <usize>load<u32>(ps, TP_TXK), r = <usize>load<u32>(k, KR_RING);
  store<u32>(ps, 0, TP_G_OPEN);
  const cur = load<u32>(ps, TP_G_CUR);
  if (load<u32>(ps, TP_G_SEGS) > 1) {
    const s = slot_of(r, load<u32>(r, RING_HEAD));
    const b = <usize>load<u32>(k, KR_BUF_BASE) + <usize>load<u32>(s, SLOT_BUF_IDX) * <usize>load<u32>(k, KR_BUF_SIZE);
    const f = b + VH, tot = load<u32>(ps, TP_G_LEN) - VH - 14, hl = load<u32>(ps, TP_G_HL);
    // virtio_net_hdr: NEEDS_CSUM, GSO_TCPV4, hdr_len, gso_size, csum_start, csum_offset
    store<u8>(b, 1); store<u8>(b, 1, 1); store<u16>(b, <u16>hl, 2); store<u16>(b, <u16>load<u32>(ps, TP_G_MSS), 4);
    store<u16>(b, 34, 6); store<u16>(b, 16, 8); store<u16>(b, 0, 10);
    put16(f + 16, tot);
    store<u16>(f, 0, 24);
    put16(f + 24, ~csum_fold(csum_add(f + 14, 20, 0)) & 0xffff);
    store<u8>(f, <u8>load<u32>(ps, TP_G_FLAGS), 47);
    // the partial checksum: the pseudo-header's sum, for whoever completes it
    put16(f + 50, csum_fold(csum_add(f + 26, 8, <u64>(6 + tot - 20))));
  }
  store<u32>(r, cur, RING_HEAD);
  store<u32>(r, cur, RING_CUR);
}

function port_of(ss: usize, vni: u32): usize {
  const n = load<u32>(ss, TS_NPORTS);
  for (let i: u32 = 0; i < n; i++) if (load<u32>(ss + TS_PORTS + 8 * i) == vni) return <usize>load<u32>(ss + TS_PORTS + 8 * i, 4);
  return 0;
}

/** One tunnel datagram (UDP payload p, len bytes). Returns 1 when its frame went to a port. */
export function decap(ss: usize, p: usize, len: u32, now: u32): u32 {
  inc(ss, TS_RX_SEGS);
  if (len < 8) { inc(ss, TS_D_SHORT); return 0; }
  let hl: u32 = 8;
  const b0 = <u32>load<u8>(p), b1 = <u32>load<u8>(p, 1);
  if (load<u32>(ss, TS_KIND) == TUN_VXLAN) {
    // RFC 7348: flags 0x08 (I), the rest reserved; as Linux, anything else set is refused
    if (b0 != 0x08 || b1 != 0 || load<u16>(p, 2) != 0 || load<u8>(p, 7) != 0) { inc(ss, TS_D_FLAGS); return 0; }
  } else {
    // RFC 8926: Ver(2) OptLen(6) | O C Rsvd(6) | Protocol Type(16) | VNI(24) Rsvd(8)
    if ((b0 >> 6) != 0) { inc(ss, TS_D_VERSION); return 0; }
    const optlen = (b0 & 0x3f) * 4;
    if (len < 8 + optlen) { inc(ss, TS_D_SHORT); return 0; }
    if (b1 & 0x80) { inc(ss, TS_D_OAM); return 0; }
    if (b1 & 0x40) { inc(ss, TS_D_CRITICAL); return 0; }
    if (be16(p + 2) != 0x6558) { inc(ss, TS_D_PROTO); return 0; }
    // options: class(16) type(8, high bit critical) R(3) length(5, 4-byte words); we act on
    // none, so each is skipped — unless it is critical, which a receiver must not ignore
    let o: u32 = 8;
    const end: u32 = 8 + optlen;
    while (o < end) {
      if (o + 4 > end) { inc(ss, TS_D_OPTS); return 0; }
      const t = <u32>load<u8>(p + o, 2), ol = (<u32>load<u8>(p + o, 3) & 0x1f) * 4;
      if (t & 0x80) { inc(ss, TS_D_CRITICAL); return 0; }
      o += 4 + ol;
    }
    if (o != end) { inc(ss, TS_D_OPTS); return 0; }
    hl = end;
  }
  const vni = (<u32>load<u8>(p, 4) << 16) | (<u32>load<u8>(p, 5) << 8) | <u32>load<u8>(p, 6);
  const ps = port_of(ss, vni);
  if (!ps) { inc(ss, TS_D_VNI); return 0; }
  const f = p + hl, fl = len - hl;
  if (fl < 14) { inc(ps, TP_D_INNER_SHORT); return 0; }
  // learn the inner source behind the outer source (a unicast, non-zero MAC only)
  const src = mac_at(f + 6);
  if ((load<u8>(f, 6) & 1) == 0 && src != 0) fdb_learn(ps, src, SRC_IP, now);
  if (!deliver(ps, f, fl)) { inc(ps, TP_D_RING_FULL); return 0; }
  inc(ps, TP_RX_FRAMES); inc(ps, TP_RX_BYTES, fl);
  return 1;
}

/** Put [VH zero bytes][frame] into the free slots of a tx ring (as its user), chained with
 *  MOREFRAG when longer than a buffer. false when it does not fit (nothing written). */
function ring_put(k: usize, f: usize, fl: u32): bool {
  const r = <usize>load<u32>(k, KR_RING), n = load<u32>(k, KR_NSLOTS);
  let head = load<u32>(r, RING_HEAD);
  const tail = load<u32>(r, RING_TAIL);
  if (head >= n || tail >= n) return false;
  const base = <usize>load<u32>(k, KR_BUF_BASE), bsize = load<u32>(k, KR_BUF_SIZE), nbufs = load<u32>(k, KR_NBUFS);
  const cap: u32 = bsize > 65535 ? 65535 : bsize;
  if (cap <= VH) return false;
  const total = VH + fl, need = (total + cap - 1) / cap;
  if (need > MAX_FRAGS || need > ring_dist(head, tail, n)) return false;
  let done: u32 = 0;
  for (let j: u32 = 0; j < need; j++) {
    const s = r + RING_SLOTS + <usize>(SLOT_SIZE * ((head + j) % n));
    const idx = load<u32>(s, SLOT_BUF_IDX);
    if (idx < BUF_RESERVED || idx >= nbufs) return false; // our own ring is corrupt: touch nothing more
  }
  for (let j: u32 = 0; j < need; j++) {
    const s = r + RING_SLOTS + <usize>(SLOT_SIZE * head);
    const b = base + <usize>load<u32>(s, SLOT_BUF_IDX) * <usize>bsize;
    const l = total - done < cap ? total - done : cap;
    if (done == 0) { memory.fill(b, 0, VH); memory.copy(b + VH, f, l - VH); }
    else memory.copy(b, f + done - VH, l);
    done += l;
    store<u16>(s, <u16>l, SLOT_LEN);
    store<u16>(s, done < total ? NS_MOREFRAG : 0, SLOT_FLAGS);
    head = head + 1 == n ? 0 : head + 1;
  }
  store<u32>(r, head, RING_HEAD);
  store<u32>(r, head, RING_CUR);
  return true;
}

// ---- send ----

/** Messages built for send socket i by the last tun_tx (at tun_tx_msgs(ss, i)). */
export function tun_tx_count(ss: usize, i: u32): u32 { return i < TX_SOCKS ? load<u32>(ss + TS_TXCOUNT + 4 * i) : 0; }
export function tun_tx_msgs(ss: usize, i: u32): usize { return <usize>load<u32>(ss, TS_TXAREA) + TXA_MSGS + <usize>(i * TX_MSGS * MH); }

// the inner flow's hash (ECMP entropy: which send socket, so which outer source port)
function flow_hash(f: usize, fl: u32): u32 {
  let h: u64 = mac_at(f) ^ (mac_at(f + 6) * 0x9E3779B97F4A7C15);
  let l3: u32 = 14, et = be16(f + 12);
  if ((et == 0x8100 || et == 0x88a8) && fl >= 18) { et = be16(f + 16); l3 = 18; }
  if (et == 0x0800 && fl >= l3 + 20) {
    h ^= <u64>load<u32>(f + l3 + 12) * 0xC2B2AE3D27D4EB4F;
    h ^= <u64>load<u32>(f + l3 + 16) * 0x165667B19E3779F9;
    const proto = <u32>load<u8>(f + l3 + 9), l4 = l3 + 4 * (<u32>load<u8>(f + l3) & 15);
    const frag = be16(f + l3 + 6) & 0x3fff;
    if ((proto == 6 || proto == 17) && frag == 0 && fl >= l4 + 4) h ^= <u64>load<u32>(f + l4) * 0x27D4EB2F165667C5;
    h ^= proto;
  } else if (et == 0x86dd && fl >= l3 + 44) {
    h ^= load<u64>(f + l3 + 8) * 0xC2B2AE3D27D4EB4F; h ^= load<u64>(f + l3 + 16);
    h ^= load<u64>(f + l3 + 24) * 0x165667B19E3779F9; h ^= load<u64>(f + l3 + 32);
    const nh = <u32>load<u8>(f + l3 + 6);
    if (nh == 6 || nh == 17) h ^= <u64>load<u32>(f + l3 + 40) * 0x27D4EB2F165667C5;
  }
  h ^= h >> 29; h *= 0xBF58476D1CE4E5B9; h ^= h >> 32;
  return <u32>h;
}

@inline function put_th(p: usize, kind: u32, vni: u32): void {
  // VXLAN: 08 00 00 00 | VNI 00; Geneve: 00 00 65 58 | VNI 00 (no options)
  store<u32>(p, kind == TUN_VXLAN ? 0x08 : 0x58650000);
  store<u32>(p, bswap<u32>(vni << 8), 4);
}

// where the frame goes: the remote of its destination in the fdb (T_IP), or all remotes
const T_IP = memory.data(16);

/**
 * The port's rx ring (as its user) -> messages for sendmmsg, one array per send socket
 * (tun_tx_count / tun_tx_msgs). Frames that fit go out as they are, gathered by iovecs from
 * the port's buffers behind an 8-byte header; a TSO/USO frame is segmented to the inner MTU
 * into scratch (each segment behind its header) and sent as one UDP GSO message when the
 * kernel has UDP_SEGMENT; a partial checksum is completed. Unknown, broadcast and multicast
 * destinations are flooded to every remote (head-end replication). Head is advanced past the
 * frames taken: the caller sends at once (before the switch's next round reuses them).
 * Returns frames taken (sent or dropped and counted); stops early when an array is full.
 */
export function tun_tx(ps: usize, now: u32): u32 {
  const ss = <usize>load<u32>(ps, TP_SS), k = <usize>load<u32>(ps, TP_RXK);
  const ta = <usize>load<u32>(ss, TS_TXAREA);
  const kind = load<u32>(ss, TS_KIND), vni = load<u32>(ps, TP_VNI), maxf = load<u32>(ps, TP_MAXF);
  const nsock = load<u32>(ss, TS_NSOCK), gso_ok = load<u32>(ss, TS_GSO) != 0;
  const nrem = load<u32>(ps, TP_NREM), age = load<u32>(ps, TP_AGE);
  for (let i: u32 = 0; i < TX_SOCKS; i++) store<u32>(ss + TS_TXCOUNT + 4 * i, 0);
  store<u32>(ss, 0, TS_NIOV); store<u32>(ss, 0, TS_NHDR); store<u32>(ss, 0, TS_SCR);
  const r = <usize>load<u32>(k, KR_RING), n = load<u32>(k, KR_NSLOTS);
  let head = load<u32>(r, RING_HEAD);
  const tail = load<u32>(r, RING_TAIL);
  if (head >= n || tail >= n) return 0;
  const base = <usize>load<u32>(k, KR_BUF_BASE), bsize = load<u32>(k, KR_BUF_SIZE), nbufs = load<u32>(k, KR_NBUFS);
  const gather = ta + TXA_GATHER, lens = ta + TXA_LENS, scr = ta + TXA_SCR;
  let taken: u32 = 0;
  while (head != tail) {
    // the frame's chain: [head, i)
    let i = head, plen: u32 = 0, nsl: u32 = 0, ok = true, whole = false;
    while (i != tail) {
      const s = r + RING_SLOTS + <usize>(SLOT_SIZE * i);
      const idx = load<u32>(s, SLOT_BUF_IDX), l = <u32>load<u16>(s, SLOT_LEN);
      if (idx < BUF_RESERVED || idx >= nbufs || l > bsize) ok = false;
      plen += l; nsl++;
      i = i + 1 == n ? 0 : i + 1;
      if ((load<u16>(s, SLOT_FLAGS) & NS_MOREFRAG) == 0) { whole = true; break; }
    }
    if (!whole) break; // an unfinished chain: the switch delivers whole frames, so wait
    const s0 = r + RING_SLOTS + <usize>(SLOT_SIZE * head);
    const b0 = base + <usize>load<u32>(s0, SLOT_BUF_IDX) * <usize>bsize, l0 = <u32>load<u16>(s0, SLOT_LEN);
    if (!ok || nsl > MAX_FRAGS || plen < VH + 14) { inc(ps, TP_D_BAD_FRAME); head = i; taken++; continue; }
    const fl = plen - VH;
    // a frame whose headers sit in its first slot and that needs nothing done goes out from the
    // port's buffers; anything else is gathered first (one copy)
    const direct = l0 >= VH + 54 && (load<u8>(b0) & 1) == 0 && load<u8>(b0, 1) == 0 && fl <= maxf;
    let f: usize;
    if (direct) f = b0 + VH;
    else {
      let o: u32 = 0, j = head;
      for (let c: u32 = 0; c < nsl; c++) {
        const s = r + RING_SLOTS + <usize>(SLOT_SIZE * j);
        const l = <u32>load<u16>(s, SLOT_LEN);
        memory.copy(gather + o, base + <usize>load<u32>(s, SLOT_BUF_IDX) * <usize>bsize, l);
        o += l; j = j + 1 == n ? 0 : j + 1;
      }
      f = gather + VH;
    }
    // where to: the fdb, else everyone
    let flood = (load<u8>(f) & 1) != 0;
    if (!flood) {
      const e = fdb_find(ps, mac_at(f));
      if (e && live(e, now, age)) memory.copy(T_IP, e + 8, 16); else flood = true;
    }
    const targets = flood ? nrem : 1;
    if (targets == 0) { inc(ps, TP_D_NO_REMOTE); head = i; taken++; continue; }
    const sock = flow_hash(f, fl) % nsock;
    const cnt = load<u32>(ss + TS_TXCOUNT + 4 * sock);
    const niov = load<u32>(ss, TS_NIOV);
    // build the payload: iovecs [from, to) of the iov pool, in `chunks` messages
    let chunks: u32 = 1, segsz: u32 = 0, nseg: u32 = 1, per: u32 = 1;
    if (direct) {
      const nh = load<u32>(ss, TS_NHDR);
      if (nh >= TX_HDRS || niov + (1 + nsl) * targets > TX_IOVS || cnt + targets > TX_MSGS) break;
      const hp = ta + TXA_HDR + <usize>(nh * 16);
      put_th(hp, kind, vni);
      store<u32>(ss, nh + 1, TS_NHDR);
      let v = ta + TXA_IOV + <usize>(niov * 16);
      store<u64>(v, <u64>hp); store<u64>(v, TH, 8); v += 16;
      let j = head;
      for (let c: u32 = 0; c < nsl; c++) {
        const s = r + RING_SLOTS + <usize>(SLOT_SIZE * j);
        const l = <u32>load<u16>(s, SLOT_LEN), b = base + <usize>load<u32>(s, SLOT_BUF_IDX) * <usize>bsize;
        store<u64>(v, <u64>(c == 0 ? b + VH : b)); store<u64>(v, <u64>(c == 0 ? l - VH : l), 8); v += 16;
        j = j + 1 == n ? 0 : j + 1;
      }
      store<u32>(ss, niov + 1 + nsl, TS_NIOV);
    } else {
      const used = load<u32>(ss, TS_SCR), out = scr + <usize>used, room = TX_SCRATCH - used;
      const vflags = load<u8>(gather), gsot = load<u8>(gather, 1) & 0x7f;
      let rc: i32;
      if (gsot != 0) rc = vnet_segment_to(gather, plen, VH, out, room, lens, maxf, TH);
      else if (fl > maxf) { inc(ps, TP_D_TOO_BIG); head = i; taken++; continue; }
      else if (vflags & 1) {
        rc = room < TH ? -3 : vnet_convert_into(gather, plen, VH, 0, out + TH, room - TH, lens, 65535, 0);
        if (rc > 0) store<u32>(lens, load<u32>(lens) + TH);
      } else if (room < TH + fl) rc = -3;
      else { memory.copy(out + TH, f, fl); store<u32>(lens, TH + fl); rc = 1; }
      if (rc == -3 && used > 0) break; // scratch full: the next batch
      if (rc <= 0) { inc(ps, rc == -3 ? TP_D_TOO_BIG : TP_D_BAD_FRAME); head = i; taken++; continue; }
      nseg = <u32>rc;
      segsz = load<u32>(lens);
      per = gso_ok ? GSO_BYTES / segsz : 1;
      if (per > GSO_SEGS) per = GSO_SEGS;
      if (per < 1) per = 1;
      chunks = (nseg + per - 1) / per;
      if (niov + chunks * targets > TX_IOVS || cnt + chunks * targets > TX_MSGS) {
        if (cnt > 0 || niov > 0) break;
        inc(ps, TP_D_TOO_BIG); head = i; taken++; continue; // more than one batch can carry
      }
      // a header in front of every segment, and one iovec per chunk of `per` segments
      let o = out, total: u32 = 0, v = ta + TXA_IOV + <usize>(niov * 16);
      for (let c: u32 = 0; c < nseg; c++) {
        const sl = load<u32>(lens + 4 * <usize>c);
        put_th(o, kind, vni);
        if (c % per == 0) { store<u64>(v, <u64>o); store<u64>(v, 0, 8); v += 16; }
        store<u64>(v - 16, load<u64>(v - 16, 8) + sl, 8);
        o += sl; total += sl;
      }
      store<u32>(ss, used + ((total + 63) & ~63), TS_SCR);
      store<u32>(ss, niov + chunks, TS_NIOV);
    }
    // each target's messages get their own copy of the iovecs: the host rewrites the offsets
    // in them into pointers, once per message
    const per_t: u32 = direct ? 1 + nsl : chunks;
    for (let t: u32 = 1; t < targets; t++) memory.copy(ta + TXA_IOV + <usize>((niov + t * per_t) * 16), ta + TXA_IOV + <usize>(niov * 16), per_t * 16);
    store<u32>(ss, niov + per_t * targets, TS_NIOV);
    // one message per chunk per target, all to this flow's socket
    const msgs = ta + TXA_MSGS + <usize>(sock * TX_MSGS * MH);
    const v6 = load<u32>(ss, TS_V6) != 0, dport = load<u32>(ss, TS_DPORT);
    let m = cnt;
    for (let t: u32 = 0; t < targets; t++) {
      const ip = flood ? ps + TP_REMOTES + <usize>(t * 16) : T_IP;
      for (let c: u32 = 0; c < chunks; c++) {
        const h = msgs + <usize>(m * MH), slot = sock * TX_MSGS + m;
        const name = ta + TXA_NAMES + <usize>(slot * 32), ctl = ta + TXA_CTRL + <usize>(slot * 32);
        memory.fill(name, 0, 32);
        if (v6) { store<u16>(name, 10); store<u16>(name, bswap<u16>(<u16>dport), 2); memory.copy(name + 8, ip, 16); }
        else { store<u16>(name, 2); store<u16>(name, bswap<u16>(<u16>dport), 2); store<u32>(name, load<u32>(ip), 4); }
        store<u64>(h, <u64>name, MH_NAME); store<u64>(h, v6 ? 28 : 16, MH_NAMELEN);
        const first = niov + t * per_t + (direct ? 0 : c), niv: u32 = direct ? 1 + nsl : 1;
        store<u64>(h, <u64>(ta + TXA_IOV + <usize>(first * 16)), MH_IOV); store<u64>(h, niv, MH_IOVLEN);
        const segs_here = nseg - c * per < per ? nseg - c * per : per;
        if (!direct && segs_here > 1) {
          // cmsg: len 18, SOL_UDP, UDP_SEGMENT, u16 gso_size (every segment but the last has it)
          store<u64>(ctl, 18); store<u32>(ctl, SOL_UDP, 8); store<u32>(ctl, UDP_SEGMENT, 12); store<u16>(ctl, <u16>segsz, 16);
          store<u64>(h, <u64>ctl, MH_CONTROL); store<u64>(h, 24, MH_CONTROLLEN);
        } else { store<u64>(h, 0, MH_CONTROL); store<u64>(h, 0, MH_CONTROLLEN); }
        store<u64>(h, 0, MH_FLAGS); store<u64>(h, 0, MH_LEN);
        m++;
      }
    }
    store<u32>(ss + TS_TXCOUNT + 4 * sock, m);
    if (flood) inc(ps, TP_FLOODED);
    inc(ps, TP_TX_FRAMES); inc(ps, TP_TX_BYTES, fl); inc(ps, TP_TX_DGRAMS, <u64>(nseg * targets));
    head = i; taken++;
  }
  store<u32>(r, head, RING_HEAD);
  store<u32>(r, head, RING_CUR);
  return taken;
}
