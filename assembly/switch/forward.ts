// VALE forwarding. One round: validate every port's rx ring (what its user released), then
// for each port with pending tx slots take batches of whole packets, look each one up, queue
// it per destination, reserve room in each destination's rx ring and copy; finally publish
// every tail. Every frame taken ends as a delivery or a counted drop:
//   sum(tx) + flood_extra == sum(rx) + sum(all drops).
import {
  SLOT_SIZE, SLOT_BUF_IDX, SLOT_LEN, SLOT_FLAGS, NS_MOREFRAG, RING_SLOTS, KR_RING, KR_NSLOTS,
  KR_HWCUR, KR_HWTAIL, KR_RHEAD, KR_BUF_BASE, KR_BUF_SIZE, KR_NBUFS, KR_OWNER, KR_ERR,
  SW_MAX_PORTS, SW_BATCH_MAX, SW_DST_BCAST, SW_DST_DROP, SW_HDR_SIZE, SW_NPORTS, SW_NOW, SW_AGE,
  SW_BATCH, SW_TABLE_MASK, SW_TABLE, SW_PORTS, SW_FRAGS, SW_PKTS, SW_ACTIVE, SW_BCAST_HEAD,
  SW_DSTS, SW_FLOOD_EXTRA, SW_SEG_EXTRA, SW_VN_IN, SW_VN_OUT, SW_VN_LENS, SW_VN_IN_MAX, SW_ROUNDS, SW_FRAMES, SW_PT_PORTS, SW_TABLE_BUCKETS, MAC_ENTRY_SIZE,
  PORT_SIZE, P_TX, P_RX, P_GEN, P_QHEAD, P_QTAIL, P_RXOK, P_LAST_ERR, P_TX_PKTS, P_TX_BYTES,
  P_RX_PKTS, P_RX_BYTES, P_DROP_FULL, P_DROP_BROKEN, P_DROP_NODST, P_DROP_LOOKUP, P_DROP_SIZE,
  P_TX_ERRORS, P_CSB, P_HDR_LEN, P_ACCEPT, P_DROP_HDR, PK_SIZE, PK_FIRST, PK_NFRAGS, PK_REWRITE, PK_NEXT, PK_BYTES, BUF_RESERVED,
  SW_LOOKUP, LK_LEARN, LK_FN, FN_MAX_BATCH,
  DIR_TX, DIR_RX, KR_DIR, E_OK, E_INVAL, E_BUF_IDX, E_BROKEN, SW_SNAP, SN_SIZE, SN_LEARN,
  KR_PTRS, KR_PTR_SIZE, KR_RXVQ, KR_RXMT, NS_INDIRECT, NETMAP_MAX_FRAGS,
} from '../abi';
import {
  vq_rx_open, vq_rx_shut, vq_rx_touch, vq_rx_next, vq_rx_took, rx_addr, rx_cap, rx_id, rx_more, copy_exact, VQ_FEATURES, VQF_MRG_RXBUF, VQ_HDR_LEN,
} from '../virtio/vring';
import { snap_at, snap_take, snap_put_first, snap_len, copy_frag } from './snap';
import { ring_next, ring_prev, ring_add, sync_prologue, sync_finalize, tx_scan, scan_pkts, ring_break } from '../ring';
import { rx_room } from '../pipe';
import { learn_lookup, lookup_ctx } from './learn';
import { pt_pull_all, pt_publish_all, pt_detach } from '../csb';
import { fn_fill, fn_decide, fn_dst, fn_gather_rewritten, fn_rewrite_into, fn_bytes, pk_split } from './fn';
import { vnet_convert_into, vnet_out_room, vnet_needs, VN_MAX_OUT, ACCEPT_ALL } from '../offload/vnet';

const FRAG_SLACK: u32 = 64; // a batch may overshoot by one packet's fragments

export function sw_priv_size(): u32 {
  return SW_HDR_SIZE + PORT_SIZE * SW_MAX_PORTS + 256 /* active list */ +
    MAC_ENTRY_SIZE * SW_TABLE_BUCKETS + 8 * (SW_BATCH_MAX + FRAG_SLACK) + PK_SIZE * (SW_BATCH_MAX + FRAG_SLACK) + 256 +
    SW_VN_IN_MAX + vnet_out_room(SW_VN_IN_MAX) + 4 * VN_MAX_OUT + 64 + SN_SIZE * (SW_BATCH_MAX + FRAG_SLACK);
}
// Scratch room, each checked before it is written: frag records (tx_scan: at most batch + 63
// slots), PK records and snapshots (one per packet, at most as many as frag records), the
// active and destination lists (254 ports), SW_VN_IN (SW_VN_IN_MAX, checked against PK_BYTES
// or the checked rewrite length), SW_VN_OUT (vnet_out_room(SW_VN_IN_MAX), passed to
// vnet_convert_into, which checks every write), SW_VN_LENS (VN_MAX_OUT lengths).
const VN_OUT_ROOM: u32 = vnet_out_room(SW_VN_IN_MAX);

/** Lay out a switch in a zeroed span of sw_priv_size() bytes. */
export function sw_init(sw: usize): void {
  memory.fill(sw, 0, sw_priv_size());
  let p = sw + SW_HDR_SIZE;
  store<u32>(sw, <u32>p, SW_PORTS); p += PORT_SIZE * SW_MAX_PORTS;
  store<u32>(sw, <u32>p, SW_ACTIVE); p += 256;
  store<u32>(sw, <u32>p, SW_TABLE); p += MAC_ENTRY_SIZE * SW_TABLE_BUCKETS;
  store<u32>(sw, <u32>p, SW_FRAGS); p += 8 * (SW_BATCH_MAX + FRAG_SLACK);
  store<u32>(sw, <u32>p, SW_PKTS); p += PK_SIZE * (SW_BATCH_MAX + FRAG_SLACK);
  store<u32>(sw, <u32>p, SW_DSTS); p += 256;
  store<u32>(sw, <u32>p, SW_VN_IN); p += SW_VN_IN_MAX;
  store<u32>(sw, <u32>p, SW_VN_OUT); p += vnet_out_room(SW_VN_IN_MAX);
  store<u32>(sw, <u32>p, SW_VN_LENS); p += 4 * VN_MAX_OUT;
  p = (p + 63) & ~(<usize>63); // each snapshot starts a cache line (sw_priv_size has the 64 spare bytes)
  store<u32>(sw, <u32>p, SW_SNAP);
  store<u32>(sw, SW_TABLE_BUCKETS - 1, SW_TABLE_MASK);
  store<u32>(sw, 300, SW_AGE);
  store<u32>(sw, SW_BATCH_MAX, SW_BATCH);
}

@inline export function sw_port(sw: usize, i: u32): usize { return <usize>load<u32>(sw, SW_PORTS) + <usize>PORT_SIZE * <usize>i; }
@inline function bump(p: usize, off: u32, n: u64): void { store<u64>(p + off, load<u64>(p + off) + n); }

/** Plug a tx and an rx kring in as a port. Returns the port index or E_INVAL (full, bad rings). */
export function sw_attach(sw: usize, tx: usize, rx: usize): i32 {
  if (tx == 0 || rx == 0 || load<u32>(tx, KR_DIR) != DIR_TX || load<u32>(rx, KR_DIR) != DIR_RX) return E_INVAL;
  if (load<u32>(tx, KR_OWNER) != 0 || load<u32>(rx, KR_OWNER) != 0) return E_INVAL; // already on a switch
  let i: u32 = 0;
  while (i < SW_MAX_PORTS && load<u32>(sw_port(sw, i), P_TX) != 0) i++;
  if (i == SW_MAX_PORTS) return E_INVAL;
  const p = sw_port(sw, i);
  const gen = load<u32>(p, P_GEN) + 1;
  memory.fill(p, 0, PORT_SIZE);
  store<u32>(p, <u32>tx, P_TX);
  store<u32>(p, <u32>rx, P_RX);
  store<u32>(p, gen, P_GEN);
  store<u32>(tx, i + 1, KR_OWNER);
  store<u32>(rx, i + 1, KR_OWNER);
  const n = load<u32>(sw, SW_NPORTS);
  store<u8>(<usize>load<u32>(sw, SW_ACTIVE) + n, <u8>i);
  store<u32>(sw, n + 1, SW_NPORTS);
  return <i32>i;
}

/** Unplug port i between rounds. Frames still queued to it later count as drops at the sender. */
export function sw_detach(sw: usize, i: u32): i32 {
  if (i >= SW_MAX_PORTS) return E_INVAL;
  const p = sw_port(sw, i);
  const tx = <usize>load<u32>(p, P_TX);
  if (tx == 0) return E_INVAL;
  if (load<u32>(p, P_CSB) != 0) pt_detach(sw, i); // the rings' user fields go back into them
  store<u32>(tx, 0, KR_OWNER);
  store<u32>(<usize>load<u32>(p, P_RX), 0, KR_OWNER);
  store<u32>(p, 0, P_TX);
  store<u32>(p, 0, P_RX);
  store<u32>(p, load<u32>(p, P_GEN) + 1, P_GEN);
  // forget what was learned on it now: a generation can wrap, an empty entry cannot resolve
  const table = <usize>load<u32>(sw, SW_TABLE);
  for (let e: u32 = 0; e < SW_TABLE_BUCKETS; e++) {
    const a = table + <usize>MAC_ENTRY_SIZE * <usize>e;
    if (load<u32>(a, 8) == i && load<u64>(a) != 0) { store<u64>(a, 0); store<u64>(a, 0, 8); }
  }
  const active = <usize>load<u32>(sw, SW_ACTIVE);
  const n = load<u32>(sw, SW_NPORTS);
  for (let j: u32 = 0; j < n; j++) {
    if (<u32>load<u8>(active + j) == i) { // keep the order of the others
      memory.copy(active + j, active + j + 1, n - j - 1);
      break;
    }
  }
  store<u32>(sw, n - 1, SW_NPORTS);
  return E_OK;
}

/** Deliver the queued packets of the current batch to port d (its own queue merged, in batch
 *  order, with the broadcast queue when `bcast`). */
function deliver(sw: usize, src: u32, d: u32, bcast: bool, src_bsize: u32, src_hdr: u32, fnmode: bool): void {
  const p = sw_port(sw, d);
  const rx = <usize>load<u32>(p, P_RX);
  const frags = <usize>load<u32>(sw, SW_FRAGS);
  const pkts = <usize>load<u32>(sw, SW_PKTS);
  let qa = load<u32>(p, P_QHEAD); // unicast queue, PK index + 1
  let qb: u32 = bcast ? load<u32>(sw, SW_BCAST_HEAD) : 0;
  let ok = load<u32>(p, P_RXOK) != 0;
  const hdr_ok = load<u32>(p, P_HDR_LEN) == src_hdr;
  const accept = load<u32>(p, P_ACCEPT);
  const check_accept = hdr_ok && src_hdr != 0 && accept != ACCEPT_ALL; // look at each frame's header
  const n = load<u32>(rx, KR_NSLOTS);
  const nbufs = load<u32>(rx, KR_NBUFS);
  const bsize = load<u32>(rx, KR_BUF_SIZE);
  const base = <usize>load<u32>(rx, KR_BUF_BASE);
  const slots = <usize>load<u32>(rx, KR_RING) + RING_SLOTS;
  const check_size = src_bsize > bsize;
  let room = ok ? rx_room(rx) : 0;
  let j = load<u32>(rx, KR_HWTAIL);
  // a vhost-user port whose RX queue runs: frames go straight into the guest's buffers (vring.ts)
  const dvq = <usize>load<u32>(rx, KR_RXVQ), dmt = <usize>load<u32>(rx, KR_RXMT), rptrs = <usize>load<u32>(rx, KR_PTRS);
  const direct = dvq != 0 && dmt != 0 && rptrs != 0 && hdr_ok && src_hdr == VQ_HDR_LEN;
  if (direct && qa != 0 && vq_rx_open(dvq, rx, j)) { // touch ahead the guest chains this batch's frames will take
    let cnt: u32 = 0;
    for (let q = qa; q != 0 && cnt < 64; q = load<u32>(pkts + <usize>PK_SIZE * <usize>(q - 1), PK_NEXT)) cnt++;
    vq_rx_touch(dvq, dmt, cnt);
  }
  let delivered: u64 = 0, bytes: u64 = 0, full: u64 = 0, broken: u64 = 0, oversize: u64 = 0, hdrdrop: u64 = 0;
  while (qa != 0 || qb != 0) {
    let k: u32;
    if (qb == 0 || (qa != 0 && qa < qb)) { k = qa - 1; qa = load<u32>(pkts + <usize>PK_SIZE * <usize>k, PK_NEXT); }
    else { k = qb - 1; qb = load<u32>(pkts + <usize>PK_SIZE * <usize>k, PK_NEXT); }
    const pk = pkts + <usize>PK_SIZE * <usize>k;
    const nf = <u32>load<u16>(pk, PK_NFRAGS);
    if (!ok) { broken++; continue; }
    const rw = load<u16>(pk, PK_REWRITE) != 0;
    const sn = snap_at(sw, k, fnmode); // the packet's first bytes as decided on (vnet header included)
    if (rw && hdr_ok && nf == 1 && room != 0 && !(check_accept && vnet_needs(sn, accept))) {
      // a rewritten one-buffer frame: written once, straight into the receiver's buffer
      if (dvq != 0) vq_rx_shut(dvq); // through the ring: the frames after it too
      const s = slots + <usize>(SLOT_SIZE * j);
      const didx = load<u32>(s, SLOT_BUF_IDX);
      if (didx >= BUF_RESERVED && didx < nbufs) {
        const l = fn_rewrite_into(sw, k, pk, frags, src_hdr, base + <usize>didx * <usize>bsize, bsize, src_bsize);
        if (l >= 0) {
          store<u16>(s, <u16>l, SLOT_LEN);
          store<u16>(s, <u16>(1 << 8), SLOT_FLAGS);
          j = ring_next(j, n);
          room--;
          delivered++;
          bytes += <u64>l;
          continue;
        }
      } // a bad slot or a frame too long for one buffer: the general path below sorts it out
    }
    if (!hdr_ok || rw || (check_accept && vnet_needs(sn, accept))) {
      // header conversion: gather, convert, deliver what comes out
      if (dvq != 0) vq_rx_shut(dvq);
      const r = convert_deliver(sw, k, fnmode, pk, frags, src_hdr, load<u32>(p, P_HDR_LEN), rx, j, room, accept);
      if (r < 0) { if (r == -1) hdrdrop++; else if (r == -2) full++; else { broken++; ok = false; store<u32>(p, 0, P_RXOK); } continue; }
      const used = <u32>r;
      j = ring_add(j, used, n);
      room -= used;
      delivered += conv_frames;
      bytes += conv_bytes;
      continue;
    }
    if (nf > room) { full++; continue; }
    const first = frags + 8 * <usize>load<u32>(pk, PK_FIRST);
    if (check_size) {
      let big = false;
      for (let f: u32 = 0; f < nf; f++) if (<u32>load<u16>(first + 8 * <usize>f, 4) > bsize) big = true;
      if (big) { oversize++; continue; }
    }
    if (direct && vq_rx_open(dvq, rx, j)) {
      const c = rx_direct(dvq, dmt, slots, rptrs, j, n, room, first, nf, load<u32>(pk, PK_BYTES), sn, snap_len(<u32>load<u16>(first, 4), src_hdr, fnmode));
      if (c != 0) {
        j = ring_add(j, c, n);
        room -= c;
        delivered++;
        bytes += load<u32>(pk, PK_BYTES);
        continue;
      }
    }
    if (dvq != 0) vq_rx_shut(dvq); // through the ring: the frames after it too
    // the receiver owns the indices of its free slots too: check each before writing into it
    let jj = j;
    let f: u32 = 0;
    const rflags: u16 = <u16>(nf << 8);
    for (; f < nf; f++) {
      const fr = first + 8 * <usize>f;
      const s = slots + <usize>(SLOT_SIZE * jj);
      const didx = load<u32>(s, SLOT_BUF_IDX);
      if (didx < BUF_RESERVED || didx >= nbufs) break;
      const len = load<u16>(fr, 4);
      if (f == 0) snap_put_first(base + <usize>didx * <usize>bsize, <usize>load<u32>(fr), len, sn, snap_len(len, src_hdr, fnmode), fnmode);
      else copy_frag(base + <usize>didx * <usize>bsize, <usize>load<u32>(fr), len);
      store<u16>(s, len, SLOT_LEN);
      store<u16>(s, f + 1 < nf ? rflags | NS_MOREFRAG : rflags, SLOT_FLAGS);
      jj = ring_next(jj, n);
    }
    if (f < nf) { // corrupted by its user: that ring is broken from here on (nothing published)
      ring_break(rx, E_BUF_IDX);
      store<i32>(p, E_BUF_IDX, P_LAST_ERR);
      store<u32>(p, 0, P_RXOK);
      broken++;
      ok = false;
      continue;
    }
    j = jj;
    room -= nf;
    delivered++;
    bytes += load<u32>(pk, PK_BYTES);
  }
  store<u32>(rx, j, KR_HWTAIL);
  bump(p, P_RX_PKTS, delivered);
  bump(p, P_RX_BYTES, bytes);
  if (full) bump(p, P_DROP_FULL, full);
  if (broken) bump(p, P_DROP_BROKEN, broken);
  if (oversize) bump(p, P_DROP_SIZE, oversize);
  if (hdrdrop) bump(p, P_DROP_HDR, hdrdrop);
  store<u32>(p, 0, P_QHEAD);
  store<u32>(p, 0, P_QTAIL);
}

// Bytes [from, from+len) of a packet (nf fragment records from `first`; its first s bytes as
// decided on, from the snapshot sn) to dst, exactly: nothing is written past dst+len (a guest
// buffer may end right there) and nothing read outside a fragment. Short pieces of a fragment
// are copied as one 16-byte stride ending where they end, the bytes before rewritten by the
// snapshot or the fragment before (it is copied first, the snapshot last).
function frame_copy(dst: usize, from: u32, len: u32, first: usize, nf: u32, sn: usize, s: u32): void {
  const to = from + len;
  let pos: u32 = 0;
  for (let f: u32 = 0; f < nf && pos < to; f++) {
    const fr = first + 8 * <usize>f;
    const end = pos + <u32>load<u16>(fr, 4);
    const lo0 = max(pos, from), hi = min(end, to);
    let lo = max(lo0, s);
    if (lo < hi) {
      if (hi - lo < 16 && hi - lo0 >= 16) lo = hi - 16;
      copy_exact(dst + <usize>(lo - from), <usize>load<u32>(fr) + <usize>(lo - pos), hi - lo);
    }
    pos = end;
  }
  if (from < s) copy_exact(dst, sn + <usize>from, min(s, to) - from);
}

// Deliver a packet (nf fragments from `first`, `total` bytes with its virtio-net header, its
// first s bytes from the snapshot sn) straight into the RX chains of vhost-user queue vq (see
// vring.ts, direct receive), from ring slot j on: one chain, or with MRG_RXBUF as many as it
// takes (num_buffers in the header). Each chain gets a ring slot (its length, NS_INDIRECT,
// MOREFRAG but the last, the count in the high byte) and a KR_PTRS entry (address, chain id).
// Returns the chains filled; 0 when it cannot (no chain, a chain vq_rx_next does not take, too
// small without MRG_RXBUF or with more descriptors, no room): nothing is taken then (bytes
// written into chains still the device's are no one's business), the caller goes the old way.
function rx_direct(vq: usize, mt: usize, slots: usize, ptrs: usize, j: u32, n: u32, room: u32, first: usize, nf: u32, total: u32, sn: usize, s: u32): u32 {
  if (total < VQ_HDR_LEN) return 0;
  const mrg = (load<u32>(vq, VQ_FEATURES) & VQF_MRG_RXBUF) != 0;
  let off: u32 = 0, c: u32 = 0, jj = j, hdr: usize = 0;
  while (off < total) {
    if (c == room || c == NETMAP_MAX_FRAGS || vq_rx_next(vq, mt, c) == 0 || (c == 0 && rx_cap < VQ_HDR_LEN) ||
      (rx_cap < total - off && (!mrg || rx_more))) {
      let u = j;
      for (let x: u32 = 0; x < c; x++) { store<u64>(ptrs + <usize>(KR_PTR_SIZE * u), 0); u = ring_next(u, n); }
      return 0;
    }
    if (c == 0) hdr = rx_addr;
    const w = min(rx_cap, total - off);
    frame_copy(rx_addr, off, w, first, nf, sn, s);
    store<u16>(slots + <usize>(SLOT_SIZE * jj), <u16>w, SLOT_LEN);
    const e = ptrs + <usize>(KR_PTR_SIZE * jj);
    store<u32>(e, <u32>rx_addr);
    store<u32>(e, rx_id, 4);
    off += w; c++; jj = ring_next(jj, n);
  }
  const fl: u16 = <u16>(c << 8) | NS_INDIRECT;
  if (c == 1) store<u16>(slots + <usize>(SLOT_SIZE * j), fl, SLOT_FLAGS);
  else {
    let u = j;
    for (let x: u32 = 0; x < c; x++) { store<u16>(slots + <usize>(SLOT_SIZE * u), x + 1 < c ? fl | NS_MOREFRAG : fl, SLOT_FLAGS); u = ring_next(u, n); }
  }
  store<u16>(hdr, <u16>c, 10); // num_buffers (virtio_net_hdr_v1), over the sender's
  vq_rx_took(vq, c);
  return c;
}

let conv_frames: u64 = 0, conv_bytes: u64 = 0;

/** Convert one packet for a port with another header length and write the result into the
 *  rx ring from slot j. Returns slots used, or -1 (cannot convert), -2 (no room), -3 (the
 *  receiver's slots are corrupted). Sets conv_frames / conv_bytes. */
function convert_deliver(sw: usize, k0: u32, fnmode: bool, pk: usize, frags: usize, shdr: u32, dhdr: u32, rx: usize, j: u32, room: u32, accept: u32): i32 {
  const total = load<u32>(pk, PK_BYTES);
  if (total > SW_VN_IN_MAX) return -1;
  const vin = <usize>load<u32>(sw, SW_VN_IN), vout = <usize>load<u32>(sw, SW_VN_OUT), lens = <usize>load<u32>(sw, SW_VN_LENS);
  const nf = <u32>load<u16>(pk, PK_NFRAGS);
  const first = frags + 8 * <usize>load<u32>(pk, PK_FIRST);
  let at: u32 = 0;
  if (load<u16>(pk, PK_REWRITE) != 0) { // the forwarding function gave it a new header
    at = fn_gather_rewritten(sw, k0, pk, frags, shdr, vin); // checked: <= SW_VN_IN_MAX
  } else { // total <= SW_VN_IN_MAX (checked above): the fragments' lengths sum to it
    for (let f: u32 = 0; f < nf; f++) {
      const fr = first + 8 * <usize>f;
      const l = <u32>load<u16>(fr, 4);
      memory.copy(vin + at, <usize>load<u32>(fr), l);
      at += l;
    }
    memory.copy(vin, snap_at(sw, k0, fnmode), snap_len(<u32>load<u16>(first, 4), shdr, fnmode)); // the first bytes as decided on
  }
  // a slot's length is a u16: a 65536-byte buffer takes at most 65535 bytes of a frame
  const bsize0 = load<u32>(rx, KR_BUF_SIZE), bsize = bsize0 < 65535 ? bsize0 : 65535;
  const nout = vnet_convert_into(vin, at, shdr, dhdr, vout, VN_OUT_ROOM, lens, bsize * 64, accept);
  if (nout < 0) return -1;
  let need: u32 = 0;
  for (let i: u32 = 0; i < <u32>nout; i++) {
    const l = load<u32>(lens + 4 * <usize>i);
    const k = l == 0 ? 1 : (l + bsize - 1) / bsize;
    if (k > 64) return -1;
    need += k;
  }
  if (need > room) return -2;
  const n = load<u32>(rx, KR_NSLOTS), nbufs = load<u32>(rx, KR_NBUFS);
  const base = <usize>load<u32>(rx, KR_BUF_BASE);
  const slots = <usize>load<u32>(rx, KR_RING) + RING_SLOTS;
  let src = vout, jj = j, bytes: u64 = 0;
  for (let i: u32 = 0; i < <u32>nout; i++) {
    let rem = load<u32>(lens + 4 * <usize>i);
    bytes += rem;
    const k: u32 = rem == 0 ? 1 : (rem + bsize - 1) / bsize;
    for (let f: u32 = 0; f < k; f++) {
      const s = slots + <usize>(SLOT_SIZE * jj);
      const didx = load<u32>(s, SLOT_BUF_IDX);
      if (didx < BUF_RESERVED || didx >= nbufs) { ring_break(rx, E_BUF_IDX); return -3; }
      const c = rem < bsize ? rem : bsize;
      memory.copy(base + <usize>didx * <usize>bsize0, src, c);
      store<u16>(s, <u16>c, SLOT_LEN);
      store<u16>(s, <u16>((k << 8) | (f + 1 < k ? NS_MOREFRAG : 0)), SLOT_FLAGS);
      src += c; rem -= c;
      jj = ring_next(jj, n);
    }
  }
  conv_frames = <u64>nout;
  conv_bytes = bytes;
  if (nout > 1) store<u64>(sw, load<u64>(sw, SW_SEG_EXTRA) + <u64>(nout - 1), SW_SEG_EXTRA);
  return <i32>need;
}

/** Forward what port `src` has pending; returns frames taken, or an error if its ring is broken. */
function forward_port(sw: usize, src: u32): i32 {
  const sp = sw_port(sw, src);
  const tx = <usize>load<u32>(sp, P_TX);
  const err = sync_prologue(tx);
  if (err < 0) {
    if (err != E_BROKEN) { store<i32>(sp, err, P_LAST_ERR); bump(sp, P_TX_ERRORS, 1); }
    return err;
  }
  const n = load<u32>(tx, KR_NSLOTS);
  const frags = <usize>load<u32>(sw, SW_FRAGS);
  const pkts = <usize>load<u32>(sw, SW_PKTS);
  const active = <usize>load<u32>(sw, SW_ACTIVE);
  const dsts = <usize>load<u32>(sw, SW_DSTS);
  const nports = load<u32>(sw, SW_NPORTS);
  const snaps = <usize>load<u32>(sw, SW_SNAP);
  const bsize = load<u32>(tx, KR_BUF_SIZE);
  // a function's batch must fit its 1024 records, fragments of the last packet included
  let batch = load<u32>(sw, SW_BATCH);
  if (load<u32>(sw, SW_LOOKUP) == LK_FN && batch > FN_MAX_BATCH - FRAG_SLACK) batch = FN_MAX_BATCH - FRAG_SLACK;
  const hdr = load<u32>(sp, P_HDR_LEN); // frames start with a virtio-net header this long
  let total: i32 = 0;
  lookup_ctx(sw, src);
  while (true) {
    const hwcur = load<u32>(tx, KR_HWCUR);
    const take = tx_scan(tx, hwcur, batch, frags, true);
    if (take < 0) { store<i32>(sp, take, P_LAST_ERR); bump(sp, P_TX_ERRORS, 1); break; }
    if (take == 0) break;
    const npk = scan_pkts;
    // who decides this batch: the learning lookup, the forwarding function (asked once for
    // the whole batch, before pass 1), or nobody (a failed function's drop fallback)
    const mode = load<u32>(sw, SW_LOOKUP);
    let bytes: u64 = 0;
    if (mode == LK_FN) {
      fn_fill(sw, src, hdr, npk, frags, pkts, bsize);
      bytes = fn_bytes;
      fn_decide(sw, hdr, npk, frags, pkts); // on failure every record says drop
    }
    // pass 1: split into packets, look each up, queue per destination (in batch order)
    let f: u32 = 0;
    let nodst: u64 = 0, lookdrop: u64 = 0;
    let bq_head: u32 = 0, bq_tail: u32 = 0;
    let ndst: u32 = 0; // distinct unicast destinations, kept in the dsts list below
    for (let k: u32 = 0; k < npk; k++) {
      const pk = pkts + <usize>PK_SIZE * <usize>k;
      let dst: u32;
      if (mode == LK_FN) dst = fn_dst(sw, k); // fn_fill split the packets
      else {
        const fr = frags + 8 * <usize>f;
        f = pk_split(pk, frags, f);
        bytes += load<u32>(pk, PK_BYTES);
        const fl0 = <u32>load<u16>(fr, 4);
        if (mode != LK_LEARN || fl0 < 14 + hdr) dst = SW_DST_DROP;
        else { // decide on a private copy of the first bytes; deliveries write them from it
          const sn = snaps + <usize>SN_LEARN * <usize>k;
          snap_take(sn, <usize>load<u32>(fr), snap_len(fl0, hdr, false), false, bsize);
          dst = learn_lookup(sw, src, sn + hdr, load<u16>(fr, 6));
        }
      }
      if (dst < SW_MAX_PORTS) {
        if (dst == src) { lookdrop++; continue; }
        const dp = sw_port(sw, dst);
        if (load<u32>(dp, P_TX) == 0) { nodst++; continue; }
        const tail = load<u32>(dp, P_QTAIL);
        if (tail == 0) {
          store<u32>(dp, k + 1, P_QHEAD);
          store<u8>(dsts + ndst, <u8>dst);
          ndst++;
        } else store<u32>(pkts + <usize>PK_SIZE * <usize>(tail - 1), k + 1, PK_NEXT);
        store<u32>(dp, k + 1, P_QTAIL);
      } else if (dst == SW_DST_BCAST) {
        if (nports < 2) { nodst++; continue; }
        if (bq_tail == 0) bq_head = k + 1; else store<u32>(pkts + <usize>PK_SIZE * <usize>(bq_tail - 1), k + 1, PK_NEXT);
        bq_tail = k + 1;
        store<u64>(sw, load<u64>(sw, SW_FLOOD_EXTRA) + <u64>(nports - 2), SW_FLOOD_EXTRA);
      } else lookdrop++;
    }
    store<u32>(sw, bq_head, SW_BCAST_HEAD);
    // pass 2: deliver; with floods, every other port; otherwise the unicast destinations
    if (bq_head != 0) {
      for (let a: u32 = 0; a < nports; a++) {
        const d = <u32>load<u8>(active + a);
        if (d != src) deliver(sw, src, d, true, bsize, hdr, mode == LK_FN);
      }
    } else {
      for (let a: u32 = 0; a < ndst; a++) deliver(sw, src, <u32>load<u8>(dsts + a), false, bsize, hdr, mode == LK_FN);
    }
    bump(sp, P_TX_PKTS, npk);
    bump(sp, P_TX_BYTES, bytes);
    if (nodst) bump(sp, P_DROP_NODST, nodst);
    if (lookdrop) bump(sp, P_DROP_LOOKUP, lookdrop);
    store<u64>(sw, load<u64>(sw, SW_FRAMES) + npk, SW_FRAMES);
    // the switch is synchronous, like VALE: every taken slot is free again at once
    const next = ring_add(hwcur, <u32>take, n);
    store<u32>(tx, next, KR_HWCUR);
    store<u32>(tx, ring_prev(next, n), KR_HWTAIL);
    total += <i32>npk;
    if (<u32>take < batch || scan_pkts == 0) break;
  }
  sync_finalize(tx);
  return total;
}

/** One forwarding round over all ports. `now` is the host's clock in seconds (for aging).
 *  Returns the frames taken from tx rings. */
export function sw_round(sw: usize, now: u32): u32 {
  store<u32>(sw, now, SW_NOW);
  const active = <usize>load<u32>(sw, SW_ACTIVE);
  const nports = load<u32>(sw, SW_NPORTS);
  const pt = load<u32>(sw, SW_PT_PORTS) != 0;
  if (pt) pt_pull_all(sw); // passthrough guests: what they wrote in their CSBs
  // rxsync for everyone: take back what each user released, remember who is healthy
  for (let a: u32 = 0; a < nports; a++) {
    const p = sw_port(sw, <u32>load<u8>(active + a));
    const rx = <usize>load<u32>(p, P_RX);
    const err = sync_prologue(rx);
    if (err < 0) { store<u32>(p, 0, P_RXOK); store<i32>(p, err, P_LAST_ERR); }
    else { store<u32>(rx, load<u32>(rx, KR_RHEAD), KR_HWCUR); store<u32>(p, 1, P_RXOK); }
  }
  let total: u32 = 0;
  for (let a: u32 = 0; a < nports; a++) {
    const r = forward_port(sw, <u32>load<u8>(active + a));
    if (r > 0) total += <u32>r;
  }
  for (let a: u32 = 0; a < nports; a++) {
    const p = sw_port(sw, <u32>load<u8>(active + a));
    if (load<u32>(p, P_RXOK)) sync_finalize(<usize>load<u32>(p, P_RX));
  }
  if (pt) pt_publish_all(sw);
  store<u64>(sw, load<u64>(sw, SW_ROUNDS) + 1, SW_ROUNDS);
  return total;
}

/** Set the batch bound (1..1024 slots) and the MAC age limit in seconds. */
export function sw_configure(sw: usize, batch: u32, age: u32): i32 {
  if (batch < 1 || batch > SW_BATCH_MAX) return E_INVAL;
  store<u32>(sw, batch, SW_BATCH);
  store<u32>(sw, age, SW_AGE);
  return E_OK;
}

/** Declare that port i's frames carry a virtio-net header of len bytes (0, 10 or 12). */
export function sw_set_hdr(sw: usize, i: u32, len: u32): i32 {
  if (i >= SW_MAX_PORTS || load<u32>(sw_port(sw, i), P_TX) == 0 || (len != 0 && len != 10 && len != 12)) return E_INVAL;
  store<u32>(sw_port(sw, i), len, P_HDR_LEN);
  store<u32>(sw_port(sw, i), ACCEPT_ALL, P_ACCEPT);
  return E_OK;
}

/** What port i takes as offloads when its frames carry a header (ACCEPT_* bits). */
export function sw_set_accept(sw: usize, i: u32, accept: u32): i32 {
  if (i >= SW_MAX_PORTS || load<u32>(sw_port(sw, i), P_TX) == 0 || accept > ACCEPT_ALL) return E_INVAL;
  store<u32>(sw_port(sw, i), accept, P_ACCEPT);
  return E_OK;
}
