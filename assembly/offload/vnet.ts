// virtio-net header conversion between ports (netmap's bdg_mismatch_datapath, done our way):
// the frame is first gathered into one contiguous scratch area, then converted into one or
// more output frames in a second area (offsets and lengths in a table), which the switch
// delivers like any other frames. Covers: adding a zero header (0 -> 10/12), converting
// 10 <-> 12, and stripping it (10/12 -> 0), which completes a partial checksum (NEEDS_CSUM)
// and segments TSO (TCPv4, TCPv6) and USO (UDP) frames by gso_size with every header fixed
// (IPv4 length, id and checksum, IPv6 payload length, TCP sequence numbers and flags, UDP
// length, full L4 checksums). A header that is malformed or asks for what we cannot do is an
// error: the frame is dropped and counted, never forwarded half-built.
// The input is the sender's (a guest's): the parser takes at most VN_MAX_TAGS VLAN tags, an
// IPv4 IHL of 5..15 and a TCP data offset of 5..15 within the frame, and every write into the
// output is checked against the room the caller passes (vnet_convert_into) before it is made.
import { csum_add, csum_fold } from './csum';

// struct virtio_net_hdr (little-endian, as the host is)
const VH_FLAGS: u32 = 0; // u8
const VH_GSO_TYPE: u32 = 1; // u8
const VH_GSO_SIZE: u32 = 4; // u16
const VH_CSUM_START: u32 = 6; // u16
const VH_CSUM_OFFSET: u32 = 8; // u16
const F_NEEDS_CSUM: u8 = 1;
const F_DATA_VALID: u8 = 2;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_UDP: u8 = 3; // UFO (IP fragmentation): not done
const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5; // USO
const GSO_ECN: u8 = 0x80;

export const VN_MAX_OUT: u32 = 256; // output frames per input frame
// what a receiving port with a header accepts (netmap's ports with a header take them all)
export const ACCEPT_CSUM: u32 = 1;
export const ACCEPT_TSO4: u32 = 2;
export const ACCEPT_TSO6: u32 = 4;
export const ACCEPT_USO: u32 = 8;
export const ACCEPT_ALL: u32 = 15;

/** Does a frame with this header need converting for a port that accepts `accept`? */
@inline export function vnet_needs(hdr: usize, accept: u32): bool {
  const gso = load<u8>(hdr, VH_GSO_TYPE) & ~GSO_ECN;
  if (gso != GSO_NONE) return (accept & gso_bit(gso)) == 0;
  return (load<u8>(hdr, VH_FLAGS) & F_NEEDS_CSUM) != 0 && (accept & ACCEPT_CSUM) == 0;
}
@inline function gso_bit(gso: u8): u32 {
  return gso == GSO_TCPV4 ? ACCEPT_TSO4 : gso == GSO_TCPV6 ? ACCEPT_TSO6 : gso == GSO_UDP_L4 ? ACCEPT_USO : 0;
}
export const E_VN_HDR: i32 = -1; // malformed or unsupported header
export const E_VN_PARSE: i32 = -2; // the frame's headers do not match what the header says
export const E_VN_SIZE: i32 = -3; // a segment would not fit

@inline function be16(p: usize): u32 { return <u32>bswap<u16>(load<u16>(p)); }
@inline function put16(p: usize, v: u32): void { store<u16>(p, bswap<u16>(<u16>v)); }
@inline function be32(p: usize): u32 { return bswap<u32>(load<u32>(p)); }
@inline function put32(p: usize, v: u32): void { store<u32>(p, bswap<u32>(v)); }

/**
 * Convert the frame at `src` (len bytes, starting with a header of shdr bytes) for a port whose
 * frames carry dhdr header bytes. Output frames are written back to back from `out`, never
 * past `out + room` (checked before every write: E_VN_SIZE when it would not fit); their
 * lengths go to `lens` (u32 each, at most VN_MAX_OUT). Returns the number of output frames or
 * an E_VN_* error. vnet_out_room(len) bytes of room always suffice.
 */
export function vnet_convert_into(src: usize, len: u32, shdr: u32, dhdr: u32, out: usize, room: u32, lens: usize, max_frame: u32, accept: u32): i32 {
  if (len < shdr) return E_VN_PARSE;
  const frame = src + shdr;
  const flen = len - shdr;
  if (shdr == 0) { // no header to honour: add a zero one (nothing to offload)
    if (<u64>dhdr + <u64>flen > <u64>room) return E_VN_SIZE;
    memory.fill(out, 0, dhdr);
    memory.copy(out + dhdr, frame, flen);
    store<u32>(lens, dhdr + flen);
    return 1;
  }
  if (shdr < 10) return E_VN_HDR;
  const flags = load<u8>(src, VH_FLAGS);
  const gso = load<u8>(src, VH_GSO_TYPE) & ~GSO_ECN;
  if ((flags & ~(F_NEEDS_CSUM | F_DATA_VALID)) != 0) return E_VN_HDR;
  if (gso != GSO_NONE && gso != GSO_TCPV4 && gso != GSO_TCPV6 && gso != GSO_UDP_L4) return E_VN_HDR;
  if (dhdr != 0 && gso != GSO_NONE && (accept & gso_bit(gso)) == 0) { // segment, a plain header on each
    return segment(frame, flen, gso, <u32>load<u16>(src, VH_GSO_SIZE), out, room, lens, max_frame, dhdr);
  }
  if (dhdr != 0 && gso == GSO_NONE && (flags & F_NEEDS_CSUM) && (accept & ACCEPT_CSUM) == 0) {
    if (dhdr > room) return E_VN_SIZE;
    const r = vnet_convert_into(src, len, shdr, 0, out + dhdr, room - dhdr, lens, max_frame, accept); // complete it, then a plain header
    if (r < 0) return r;
    memory.fill(out, 0, dhdr);
    if (dhdr == 12) store<u16>(out, 1, 10);
    store<u32>(lens, load<u32>(lens) + dhdr);
    return r;
  }
  if (dhdr != 0) { // 10 <-> 12 (or equal): the receiver takes what is asked; keep the first 10 bytes
    if (<u64>dhdr + <u64>flen > <u64>room) return E_VN_SIZE;
    memory.fill(out, 0, dhdr);
    memory.copy(out, src, 10);
    if (dhdr == 12) store<u16>(out, 1, 10); // num_buffers
    memory.copy(out + dhdr, frame, flen);
    store<u32>(lens, dhdr + flen);
    return 1;
  }
  if (gso == GSO_NONE) {
    if (flen > room) return E_VN_SIZE;
    memory.copy(out, frame, flen);
    if (flags & F_NEEDS_CSUM) {
      const start = <u32>load<u16>(src, VH_CSUM_START), at = start + <u32>load<u16>(src, VH_CSUM_OFFSET);
      if (start >= flen || at + 2 > flen) return E_VN_HDR;
      // the field holds the pseudo-header sum; summing over it and complementing finishes it
      put16(out + at, ~csum_fold(csum_add(out + start, flen - start, 0)) & 0xffff);
    }
    store<u32>(lens, flen);
    return 1;
  }
  return segment(frame, flen, gso, <u32>load<u16>(src, VH_GSO_SIZE), out, room, lens, max_frame, 0);
}

/** vnet_convert_into with the room vnet_out_room(len) (the caller allocated that much). */
export function vnet_convert(src: usize, len: u32, shdr: u32, dhdr: u32, out: usize, lens: usize, max_frame: u32, accept: u32): i32 {
  return vnet_convert_into(src, len, shdr, dhdr, out, vnet_out_room(len), lens, max_frame, accept);
}

// Header parsing limits: what the kernel's own GSO takes, and no more.
export const VN_MAX_TAGS: u32 = 2; // 802.1Q / 802.1ad tags in front of the IP header (QinQ)

// Cut a GSO frame into segments; each output frame starts with `pre` bytes of a plain
// (no-offload) virtio-net header when the receiver has one.
// Every write is checked against `room` first; the header copied into each segment is at
// most 14 + 4 * VN_MAX_TAGS + 60 + 60 bytes (IPv4 IHL and TCP data offset are 4 bits).
function segment(frame: usize, flen: u32, gso: u8, mss: u32, out: usize, room: u32, lens: usize, max_frame: u32, pre: u32, clamp: bool = false): i32 {
  // L2: Ethernet, at most VN_MAX_TAGS 802.1Q / 802.1ad tags
  let l3: u32 = 14;
  if (flen < 14) return E_VN_PARSE;
  let etype = be16(frame + 12);
  let tags: u32 = 0;
  while (etype == 0x8100 || etype == 0x88a8) {
    if (++tags > VN_MAX_TAGS) return E_VN_PARSE;
    if (flen < l3 + 4) return E_VN_PARSE;
    etype = be16(frame + l3 + 2);
    l3 += 4;
  }
  let v4 = false, l4: u32, proto: u32;
  if (etype == 0x0800) {
    if (flen < l3 + 20 || (load<u8>(frame + l3) >> 4) != 4) return E_VN_PARSE;
    v4 = true;
    const ihl = <u32>load<u8>(frame + l3) & 15;
    if (ihl < 5) return E_VN_PARSE; // IP fields would be written over what follows
    l4 = l3 + 4 * ihl;
    proto = load<u8>(frame + l3 + 9);
  } else if (etype == 0x86dd) {
    if (flen < l3 + 40 || (load<u8>(frame + l3) >> 4) != 6) return E_VN_PARSE;
    l4 = l3 + 40; // no extension headers, as the kernel's own GSO
    proto = load<u8>(frame + l3 + 6);
  } else return E_VN_PARSE;
  const tcp = gso != GSO_UDP_L4;
  if ((tcp && proto != 6) || (!tcp && proto != 17) || (gso == GSO_TCPV4 && !v4) || (gso == GSO_TCPV6 && v4)) return E_VN_PARSE;
  if (flen < l4 + (tcp ? 20 : 8)) return E_VN_PARSE;
  const hlen = tcp ? l4 + 4 * (<u32>load<u8>(frame + l4 + 12) >> 4) : l4 + 8;
  if (hlen > flen || (tcp && hlen < l4 + 20)) return E_VN_PARSE;
  const payload = flen - hlen;
  if (mss == 0) return E_VN_HDR;
  // a tunnel cuts to what fits its underlay: a smaller MSS than the sender's is still valid TCP/UDP
  if (clamp && hlen < max_frame && hlen + mss > max_frame) mss = max_frame - hlen;
  const nseg: u32 = payload == 0 ? 1 : (payload + mss - 1) / mss;
  if (nseg > VN_MAX_OUT) return E_VN_SIZE;
  if (hlen + (payload < mss ? payload : mss) > max_frame) return E_VN_SIZE;
  const seq0 = tcp ? be32(frame + l4 + 4) : 0;
  const id0 = v4 ? be16(frame + l3 + 4) : 0;
  const tflags = tcp ? <u32>load<u8>(frame + l4 + 13) : 0;
  const end = <u64>out + <u64>room;
  let o = out;
  for (let i: u32 = 0; i < nseg; i++) {
    const off0 = i * mss;
    const plen0 = payload - off0 < mss ? payload - off0 : mss;
    if (<u64>o + <u64>pre + <u64>hlen + <u64>plen0 > end) return E_VN_SIZE; // never past the room
    if (pre) { memory.fill(o, 0, pre); if (pre == 12) store<u16>(o, 1, 10); o += pre; }
    const off = i * mss;
    const plen = payload - off < mss ? payload - off : mss;
    const last = i + 1 == nseg;
    memory.copy(o, frame, hlen);
    memory.copy(o + hlen, frame + hlen + off, plen);
    const seglen = hlen + plen;
    // IP
    if (v4) {
      put16(o + l3 + 2, seglen - l3);
      put16(o + l3 + 4, (id0 + i) & 0xffff);
      store<u16>(o + l3 + 10, 0);
      put16(o + l3 + 10, ~csum_fold(csum_add(o + l3, l4 - l3, 0)) & 0xffff);
    } else {
      put16(o + l3 + 4, seglen - l4);
    }
    // pseudo-header sum
    let ps: u64 = <u64>proto + <u64>(seglen - l4);
    ps = v4 ? csum_add(o + l3 + 12, 8, ps) : csum_add(o + l3 + 8, 32, ps);
    if (tcp) {
      put32(o + l4 + 4, seq0 + off);
      // FIN and PSH only on the last segment, CWR only on the first
      let f = tflags;
      if (!last) f &= ~0x09;
      if (i > 0) f &= ~0x80;
      store<u8>(o + l4 + 13, <u8>f);
      store<u16>(o + l4 + 16, 0);
      put16(o + l4 + 16, ~csum_fold(csum_add(o + l4, seglen - l4, ps)) & 0xffff);
    } else {
      put16(o + l4 + 4, seglen - l4);
      store<u16>(o + l4 + 6, 0);
      let c = ~csum_fold(csum_add(o + l4, seglen - l4, ps)) & 0xffff;
      put16(o + l4 + 6, c == 0 ? 0xffff : c);
    }
    store<u32>(lens + 4 * <usize>i, seglen + pre);
    o += seglen;
  }
  return <i32>nseg;
}

/**
 * Segment a GSO frame (src: `shdr` header bytes, then the frame) into frames of at most
 * max_frame bytes each, cutting smaller than the header's gso_size when that would not fit (a
 * tunnel's inner MTU is below the sender's); each output frame is preceded by `pre` zero bytes
 * (room for an encapsulation header). E_VN_HDR when the frame is not a GSO frame.
 */
export function vnet_segment_to(src: usize, len: u32, shdr: u32, out: usize, room: u32, lens: usize, max_frame: u32, pre: u32): i32 {
  if (shdr < 10 || len < shdr) return E_VN_HDR;
  const flags = load<u8>(src, VH_FLAGS);
  const gso = load<u8>(src, VH_GSO_TYPE) & ~GSO_ECN;
  if ((flags & ~(F_NEEDS_CSUM | F_DATA_VALID)) != 0) return E_VN_HDR;
  if (gso != GSO_TCPV4 && gso != GSO_TCPV6 && gso != GSO_UDP_L4) return E_VN_HDR;
  return segment(src + shdr, len - shdr, gso, <u32>load<u16>(src, VH_GSO_SIZE), out, room, lens, max_frame, pre, true);
}

/** The bytes vnet_convert may write for an input of len bytes. */
export function vnet_out_room(len: u32): u32 { return len + 16 + VN_MAX_OUT * 216; }
