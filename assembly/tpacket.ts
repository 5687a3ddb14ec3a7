// AF_PACKET's TPACKET_V2 rings, mapped by the native host into this memory: the datapath reads
// received frames and writes frames to send *in place* in the kernel's ring, with no system
// call per frame. Between a TPACKET ring and a port's netmap rings the module copies frames
// (the port keeps its own region, as every VALE port does).
// Frame status words are shared with the kernel: read them with atomic loads and hand frames
// back with atomic stores, so the kernel sees the data before the status that releases it.
import {
  SLOT_SIZE, SLOT_BUF_IDX, SLOT_LEN, SLOT_FLAGS, NS_MOREFRAG, RING_HEAD, RING_CUR, RING_TAIL,
  RING_SLOTS, KR_RING, KR_NSLOTS, KR_BUF_BASE, KR_BUF_SIZE, KR_NBUFS, BUF_RESERVED,
} from './abi';
import { ring_dist } from './ring';

// struct tpacket2_hdr (linux/if_packet.h)
const TP_STATUS: u32 = 0;
const TP_LEN: u32 = 4;
const TP_SNAPLEN: u32 = 8;
const TP_MAC: u32 = 12; // u16
const TP_HDR_ALIGNED: u32 = 32; // TPACKET_ALIGN(sizeof(struct tpacket2_hdr)): tx data starts here
const TP_STATUS_USER: u32 = 1; // rx: the frame is ours
const TP_STATUS_SEND_REQUEST: u32 = 1; // tx: please send
const TP_STATUS_WRONG_FORMAT: u32 = 4; // tx: the kernel refused the frame
const TP_STATUS_TX_BUSY: u32 = 3; // tx: SEND_REQUEST or SENDING

// per-ring cursor and counters, in private memory (TPK_*): next frame, frames moved, refused
export const TPK_SIZE: u32 = 32;
const TPK_CUR: u32 = 0;
const TPK_MOVED: u32 = 8; // u64
const TPK_REFUSED: u32 = 16; // u64: tx: frames the kernel marked WRONG_FORMAT, or too big for a frame; rx: frames too big for a buffer, truncated or malformed (dropped)

/**
 * Kernel rx ring → a port's tx ring (as its user): copy frames the kernel handed over into free
 * tx slots, give the frames back, advance head and cur. Returns frames moved. A frame that does
 * not fit one buffer, was truncated by the kernel (snaplen < len) or whose offsets point past
 * its ring frame is given back and counted in TPK_REFUSED of this (rx) state, never shortened.
 */
export function tpk_pull(st: usize, ring: usize, nframes: u32, fsize: u32, k: usize, max: u32): u32 {
  const r = <usize>load<u32>(k, KR_RING);
  const n = load<u32>(k, KR_NSLOTS);
  let head = load<u32>(r, RING_HEAD);
  const tail = load<u32>(r, RING_TAIL);
  if (head >= n || tail >= n) return 0;
  let room = ring_dist(head, tail, n);
  if (room > max) room = max;
  const base = <usize>load<u32>(k, KR_BUF_BASE), bsize = load<u32>(k, KR_BUF_SIZE), nbufs = load<u32>(k, KR_NBUFS);
  let cur = load<u32>(st, TPK_CUR);
  let moved: u32 = 0, refused: u32 = 0;
  while (moved < room && moved + refused < nframes) { // each ring frame at most once per call
    const f = ring + <usize>cur * <usize>fsize;
    if ((atomic.load<u32>(f, TP_STATUS) & TP_STATUS_USER) == 0) break;
    const mac = <u32>load<u16>(f, TP_MAC);
    const len = load<u32>(f, TP_SNAPLEN), wire = load<u32>(f, TP_LEN);
    if (mac > fsize || len > fsize - mac || len != wire || len > bsize || len > 65535) { // never shortened
      atomic.store<u32>(f, 0, TP_STATUS);
      cur = cur + 1 == nframes ? 0 : cur + 1;
      refused++;
      continue;
    }
    const s = r + RING_SLOTS + <usize>(SLOT_SIZE * head);
    const idx = load<u32>(s, SLOT_BUF_IDX);
    if (idx < BUF_RESERVED || idx >= nbufs) break; // our own ring is corrupted: stop
    memory.copy(base + <usize>idx * <usize>bsize, f + mac, len);
    store<u16>(s, <u16>len, SLOT_LEN);
    store<u16>(s, 0, SLOT_FLAGS);
    atomic.store<u32>(f, 0, TP_STATUS); // TP_STATUS_KERNEL: the kernel may fill it again
    head = head + 1 == n ? 0 : head + 1;
    cur = cur + 1 == nframes ? 0 : cur + 1;
    moved++;
  }
  store<u32>(r, head, RING_HEAD);
  store<u32>(r, head, RING_CUR);
  store<u32>(st, cur, TPK_CUR);
  store<u64>(st, load<u64>(st, TPK_MOVED) + moved, TPK_MOVED);
  if (refused) store<u64>(st, load<u64>(st, TPK_REFUSED) + refused, TPK_REFUSED);
  return moved;
}

/**
 * A port's rx ring (as its user) → kernel tx ring: copy whole frames (MOREFRAG chains joined)
 * into free tx frames and mark them SEND_REQUEST; advance head past them. Returns frames
 * queued (the host then kicks the socket once). A frame too large for a tx frame is dropped
 * and counted.
 */
export function tpk_push(st: usize, k: usize, ring: usize, nframes: u32, fsize: u32): u32 {
  const r = <usize>load<u32>(k, KR_RING);
  const n = load<u32>(k, KR_NSLOTS);
  let head = load<u32>(r, RING_HEAD);
  const tail = load<u32>(r, RING_TAIL);
  if (head >= n || tail >= n) return 0;
  const base = <usize>load<u32>(k, KR_BUF_BASE), bsize = load<u32>(k, KR_BUF_SIZE), nbufs = load<u32>(k, KR_NBUFS);
  const room = fsize - TP_HDR_ALIGNED;
  let cur = load<u32>(st, TPK_CUR);
  let queued: u32 = 0, refused: u32 = 0;
  while (head != tail) {
    const f = ring + <usize>cur * <usize>fsize;
    const status = atomic.load<u32>(f, TP_STATUS);
    if (status & TP_STATUS_TX_BUSY) break; // the kernel has not sent it yet: the ring is full
    // gather one frame; stop at an unfinished chain
    let i = head, len: u32 = 0, whole = false, fits = true;
    while (i != tail) {
      const s = r + RING_SLOTS + <usize>(SLOT_SIZE * i);
      const l = <u32>load<u16>(s, SLOT_LEN);
      const idx = load<u32>(s, SLOT_BUF_IDX);
      if (idx < BUF_RESERVED || idx >= nbufs || l > bsize || len + l > room) fits = false;
      else memory.copy(f + TP_HDR_ALIGNED + len, base + <usize>idx * <usize>bsize, l);
      len += l;
      i = i + 1 == n ? 0 : i + 1;
      if ((load<u16>(s, SLOT_FLAGS) & NS_MOREFRAG) == 0) { whole = true; break; }
    }
    if (!whole) break;
    head = i;
    if (status & TP_STATUS_WRONG_FORMAT) { refused++; atomic.store<u32>(f, 0, TP_STATUS); } // the last use was refused
    if (!fits) { refused++; continue; }
    store<u32>(f, len, TP_LEN);
    atomic.store<u32>(f, TP_STATUS_SEND_REQUEST, TP_STATUS);
    cur = cur + 1 == nframes ? 0 : cur + 1;
    queued++;
  }
  store<u32>(r, head, RING_HEAD);
  store<u32>(r, head, RING_CUR);
  store<u32>(st, cur, TPK_CUR);
  store<u64>(st, load<u64>(st, TPK_MOVED) + queued, TPK_MOVED);
  store<u64>(st, load<u64>(st, TPK_REFUSED) + refused, TPK_REFUSED);
  return queued;
}
