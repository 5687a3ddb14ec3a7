// AF_PACKET's TPACKET_V2 rings, mapped by the native host into this memory: the datapath reads
// received frames and writes frames to send *in place* in the kernel's ring, with no system
// call per frame. Between a TPACKET ring and a port's netmap rings the module copies frames
// (the port keeps its own region, as every VALE port does).
// Frame status words are shared with the kernel: read them with atomic loads and hand frames
// back with atomic stores, so the kernel sees the data before the status that releases it.
//
// The socket carries the virtio-net header (PACKET_VNET_HDR, 10 bytes), so the kernel hands
// over and takes 64 KiB GSO frames with partial checksums; either the ring frames are big enough
// for them, or (small ring frames) the kernel truncates a bigger frame in the ring, marks it
// TP_STATUS_COPY and queues it whole on the socket, where the host receives it into a copy area
// (recv puts the same 10-byte header first). A frame larger than a port buffer is spread over a
// MOREFRAG chain, as TAP ports do.
// - rx: the kernel writes the 10-byte header just before the MAC header (at tp_mac - 10; with
//   PACKET_VNET_HDR_SZ 12 too: tpacket_rcv only ever writes struct virtio_net_hdr there, so the
//   12-byte form is built here, num_buffers 0 as a TAP gives it).
// - tx: a frame's data (at TPACKET_ALIGN(sizeof(tpacket2_hdr)) = 32) starts with the header.
// A port with no header (`--vnet-hdr 0`) gets plain frames: a partial checksum is completed and
// a GSO frame segmented here (offload/vnet.ts) before the switch sees it; on tx a zero header
// goes in front.
import {
  SLOT_SIZE, SLOT_BUF_IDX, SLOT_LEN, SLOT_FLAGS, NS_MOREFRAG, RING_HEAD, RING_CUR, RING_TAIL,
  RING_SLOTS, KR_RING, KR_NSLOTS, KR_BUF_BASE, KR_BUF_SIZE, KR_NBUFS, BUF_RESERVED,
} from './abi';
import { ring_dist } from './ring';
import { vnet_convert_into, vnet_out_room, VN_MAX_OUT } from './offload/vnet';

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
const VH: u32 = 10; // the socket's header: struct virtio_net_hdr
const MAX_FRAGS: u32 = 64; // netmap's limit for one packet

// per-ring cursor and counters, in private memory (TPK_*): next frame, frames moved, refused
export const TPK_SIZE: u32 = 72;
const TPK_CUR: u32 = 0;
const TPK_MOVED: u32 = 8; // u64
const TPK_REFUSED: u32 = 16; // u64: tx: frames the kernel marked WRONG_FORMAT, too big for a frame or with a header the kernel would refuse; rx: frames truncated, malformed, too big for MAX_FRAGS buffers or whose header cannot be converted (dropped)
const TPK_LAST: u32 = 24; // tx: the frame queued last (+1; 0: none), to see if the kernel took it
const TPK_BIG: u32 = 28; // tx: 1 when the push stopped at a frame of `big` bytes or more (sent another way)
// rx, the copy path (frames larger than a ring frame, received from the socket): the copy
// area's address, buffer size and buffer count; buffers filled by the host, the next to use;
// frames to receive (set when tpk_pull stopped for them); 1 when the host found none to receive
const TPK_CB_AT: u32 = 32;
const TPK_CB_SIZE: u32 = 36;
const TPK_CB_K: u32 = 40;
const TPK_CB_N: u32 = 44;
const TPK_CB_I: u32 = 48;
const TPK_WANT: u32 = 52;
const TPK_DRY: u32 = 56;
const TPK_COPIED: u32 = 64; // u64: frames taken through the copy path
const CB_MAX: u32 = 16; // buffers in a copy area at most: their lengths take the first 64 bytes
const CB_LENS: u32 = 64;
const TP_STATUS_COPY: u32 = 2; // rx: the frame was too big for a ring frame: truncated here, whole in the socket's queue

/** Scratch a port without a header needs (converted frames and their lengths), for ring frames of fsize bytes. */
export function tpk_scratch_size(fsize: u32): u32 { return vnet_out_room(fsize) + 4 * VN_MAX_OUT; }

// the chain writer's cursor (one call at a time: the module runs in one thread per memory)
let c_head: u32 = 0;
let c_ok: bool = true;

/** Slots a frame of len bytes takes with buffers of cap bytes. */
@inline function slots_for(len: u32, cap: u32): u32 { return len == 0 ? 1 : (len + cap - 1) / cap; }

// Write [pre zero bytes][len bytes from src] (pre is after the first hlen bytes of src, which
// come first: [src[0..hlen)][pre zeros][src[hlen..len)]) into slots from c_head, chained with
// MOREFRAG. The caller has checked the room. A slot of ours with a bad buffer index stops it
// (c_ok false): our own ring is corrupted.
function chain_put(r: usize, n: u32, base: usize, bsize: u32, nbufs: u32, cap: u32, src: usize, hlen: u32, pre: u32, len: u32): void {
  const total = len + pre;
  let done: u32 = 0; // bytes of the output written
  while (true) {
    const s = r + RING_SLOTS + <usize>(SLOT_SIZE * c_head);
    const idx = load<u32>(s, SLOT_BUF_IDX);
    if (idx < BUF_RESERVED || idx >= nbufs) { c_ok = false; return; }
    const b = base + <usize>idx * <usize>bsize;
    const l = total - done < cap ? total - done : cap;
    // output byte o comes from src[o] for o < hlen, is zero for hlen <= o < hlen + pre, else src[o - pre]
    let o = done, w: u32 = 0;
    while (w < l) {
      let k: u32;
      if (o < hlen) { k = hlen - o < l - w ? hlen - o : l - w; memory.copy(b + w, src + o, k); }
      else if (o < hlen + pre) { k = hlen + pre - o < l - w ? hlen + pre - o : l - w; memory.fill(b + w, 0, k); }
      else { k = l - w; memory.copy(b + w, src + o - pre, k); }
      w += k; o += k;
    }
    done += l;
    store<u16>(s, <u16>l, SLOT_LEN);
    store<u16>(s, done < total ? NS_MOREFRAG : 0, SLOT_FLAGS);
    c_head = c_head + 1 == n ? 0 : c_head + 1;
    if (done >= total) return;
  }
}

// The frame writer's cursor and the room left while tpk_pull runs (one call at a time).
let p_head: u32 = 0;
let p_room: u32 = 0;

// Put one received frame (vh: its 10-byte virtio_net_hdr, then len bytes of frame) into a port's
// tx ring from p_head. Returns 1 (taken), 0 (refused: the caller counts it), -1 (no room: it
// waits) or -2 (a slot of ours is corrupt: stop).
function put_frame(r: usize, n: u32, base: usize, bsize: u32, nbufs: u32, cap: u32, hdr: u32, scratch: usize, sroom: u32, vh: usize, len: u32): i32 {
  if (hdr != 0) { // [10 bytes of header][hdr - 10 zero bytes (num_buffers)][frame]
    const need = slots_for(VH + (hdr - VH) + len, cap);
    if (need > MAX_FRAGS) return 0;
    if (need > p_room) return -1;
    c_head = p_head; chain_put(r, n, base, bsize, nbufs, cap, vh, VH, hdr - VH, VH + len);
    if (!c_ok) return -2;
    p_head = c_head; p_room -= need;
    return 1;
  }
  if ((load<u8>(vh) & 1) == 0 && load<u8>(vh, 1) == 0) { // nothing to do: a plain frame
    const need = slots_for(len, cap);
    if (need > MAX_FRAGS) return 0;
    if (need > p_room) return -1;
    c_head = p_head; chain_put(r, n, base, bsize, nbufs, cap, vh + VH, 0, 0, len);
    if (!c_ok) return -2;
    p_head = c_head; p_room -= need;
    return 1;
  }
  // a partial checksum or a GSO frame: completed / segmented into plain frames
  const lens = scratch + <usize>sroom;
  const nout = vnet_convert_into(vh, VH + len, VH, 0, scratch, sroom, lens, cap, 0);
  if (nout <= 0) return 0;
  let need: u32 = 0;
  for (let i: u32 = 0; i < <u32>nout; i++) need += slots_for(load<u32>(lens + 4 * <usize>i), cap);
  if (need > p_room) return -1; // converted again next time: rare (the ring is nearly full)
  c_head = p_head;
  let o = scratch;
  for (let i: u32 = 0; i < <u32>nout && c_ok; i++) {
    const l = load<u32>(lens + 4 * <usize>i);
    chain_put(r, n, base, bsize, nbufs, cap, o, 0, 0, l);
    o += l;
  }
  if (!c_ok) return -2;
  p_head = c_head; p_room -= need;
  return 1;
}

/** Bytes of a copy area of k buffers of size bytes (their lengths, then the buffers). */
export function tpk_copy_bytes(size: u32, k: u32): u32 { return CB_LENS + k * size; }

/** Give an rx state a copy area (tpk_copy_bytes(size, k) bytes at cb): frames the kernel
 *  marked TP_STATUS_COPY are then taken from it, in ring order, after the host received them
 *  from the socket into it (tpk_want, tpk_copies). Without one such frames are refused. */
export function tpk_copy_setup(st: usize, cb: usize, size: u32, k: u32): void {
  store<u32>(st, <u32>cb, TPK_CB_AT); store<u32>(st, size, TPK_CB_SIZE); store<u32>(st, k < CB_MAX ? k : CB_MAX, TPK_CB_K);
  store<u32>(st, 0, TPK_CB_N); store<u32>(st, 0, TPK_CB_I); store<u32>(st, 0, TPK_WANT); store<u32>(st, 0, TPK_DRY);
}

/** After tpk_pull: how many frames to receive from the socket into the copy area (0: none).
 *  It stopped at a TP_STATUS_COPY frame with no received frame left for it. */
export function tpk_want(st: usize): u32 { return load<u32>(st, TPK_WANT); }

/** The host received n frames into the copy area's first n buffers (their lengths, as recv
 *  returned them with MSG_TRUNC, in the area's length words). With n 0 where frames were
 *  wanted, the next TP_STATUS_COPY frame has no data to come: it is refused (and counted). */
export function tpk_copies(st: usize, n: u32): void {
  const k = load<u32>(st, TPK_CB_K);
  store<u32>(st, n < k ? n : k, TPK_CB_N); store<u32>(st, 0, TPK_CB_I);
  store<u32>(st, n == 0 && load<u32>(st, TPK_WANT) != 0 ? 1 : 0, TPK_DRY);
  store<u32>(st, 0, TPK_WANT);
}

/**
 * Kernel rx ring → a port's tx ring (as its user): copy frames the kernel handed over into free
 * tx slots (a chain when a frame is longer than a buffer), give the frames back, advance head
 * and cur. `hdr` is the port's virtio-net header length (0, 10, 12); for 0, `scratch`
 * (tpk_scratch_size bytes for the largest frame) takes converted frames. Returns frames taken
 * from the kernel.
 * A frame larger than a ring frame comes whole through the socket when the kernel marked it
 * TP_STATUS_COPY (PACKET_COPY_THRESH; TPACKET_V1/V2 only): with a copy area (tpk_copy_setup) it
 * is taken from the area's next received buffer; with none left the call stops there and
 * tpk_want says how many to receive. A frame truncated by the kernel without COPY (snaplen <
 * len), whose offsets point past its ring frame, whose received copy does not match it, that
 * needs more than MAX_FRAGS buffers or whose header cannot be honoured is given back and
 * counted in TPK_REFUSED of this (rx) state, never shortened. A frame that does not fit the room
 * left waits for the next call.
 */
export function tpk_pull(st: usize, ring: usize, nframes: u32, fsize: u32, k: usize, max: u32, hdr: u32, scratch: usize): u32 {
  const r = <usize>load<u32>(k, KR_RING);
  const n = load<u32>(k, KR_NSLOTS);
  let head = load<u32>(r, RING_HEAD);
  const tail = load<u32>(r, RING_TAIL);
  store<u32>(st, 0, TPK_WANT);
  if (head >= n || tail >= n || (hdr != 0 && hdr != VH && hdr != 12)) return 0;
  const base = <usize>load<u32>(k, KR_BUF_BASE), bsize = load<u32>(k, KR_BUF_SIZE), nbufs = load<u32>(k, KR_NBUFS);
  const cap = bsize > 65535 ? 65535 : bsize; // a slot's len is a u16
  const cb = <usize>load<u32>(st, TPK_CB_AT), cbsize = load<u32>(st, TPK_CB_SIZE), cbk = load<u32>(st, TPK_CB_K);
  const cbn = load<u32>(st, TPK_CB_N);
  let cbi = load<u32>(st, TPK_CB_I), dry = load<u32>(st, TPK_DRY);
  const sroom = vnet_out_room(cb != 0 && cbsize > fsize ? cbsize : fsize);
  let cur = load<u32>(st, TPK_CUR);
  let moved: u32 = 0, refused: u32 = 0, copied: u32 = 0;
  p_head = head; p_room = ring_dist(head, tail, n);
  c_ok = true;
  while (moved < max && moved + refused < nframes) { // each ring frame at most once per call
    const f = ring + <usize>cur * <usize>fsize;
    const status = atomic.load<u32>(f, TP_STATUS);
    if ((status & TP_STATUS_USER) == 0) break;
    let res: i32 = 0;
    if ((status & TP_STATUS_COPY) != 0 && cb != 0) {
      // the whole frame is the socket's next one (queued with this ring frame, in ring order)
      if (cbi < cbn) {
        const got = load<u32>(cb + 4 * <usize>cbi), wire = load<u32>(f, TP_LEN); // read once
        const d = cb + CB_LENS + <usize>cbi * <usize>cbsize;
        if (got >= VH && got <= cbsize && got - VH == wire) res = put_frame(r, n, base, bsize, nbufs, cap, hdr, scratch, sroom, d, got - VH);
        if (res >= 0) cbi++; // used up (taken or refused); a frame waiting for room keeps it
        if (res == 1) copied++;
      } else if (dry != 0) dry = 0; // the socket had none for it: refused
      else { // ask for as many as the ring shows (in order, up to the area's buffers)
        let want: u32 = 0, i = cur;
        for (let j: u32 = 0; j < nframes && want < cbk; j++) {
          const s = atomic.load<u32>(ring + <usize>i * <usize>fsize, TP_STATUS);
          if ((s & TP_STATUS_USER) == 0) break;
          if (s & TP_STATUS_COPY) want++;
          i = i + 1 == nframes ? 0 : i + 1;
        }
        store<u32>(st, want, TPK_WANT);
        break;
      }
    } else {
      const mac = <u32>load<u16>(f, TP_MAC); // read once: the checks and the copies use these values
      const len = load<u32>(f, TP_SNAPLEN), wire = load<u32>(f, TP_LEN);
      // never shortened: a frame cut by the kernel (no copy of it to come) is refused
      if (mac >= TP_HDR_ALIGNED + VH && mac <= fsize && len <= fsize - mac && len == wire)
        res = put_frame(r, n, base, bsize, nbufs, cap, hdr, scratch, sroom, f + <usize>(mac - VH), len);
    }
    if (res < 0) break; // -1 waits for room; -2: our own ring is corrupted
    atomic.store<u32>(f, 0, TP_STATUS); // TP_STATUS_KERNEL: the kernel may fill it again
    cur = cur + 1 == nframes ? 0 : cur + 1;
    if (res == 1) moved++; else refused++;
  }
  head = p_head;
  store<u32>(r, head, RING_HEAD);
  store<u32>(r, head, RING_CUR);
  store<u32>(st, cur, TPK_CUR);
  store<u32>(st, cbi, TPK_CB_I);
  store<u32>(st, 0, TPK_DRY); // meant for the frame this call started at, and only for it
  store<u64>(st, load<u64>(st, TPK_MOVED) + moved, TPK_MOVED);
  if (refused) store<u64>(st, load<u64>(st, TPK_REFUSED) + refused, TPK_REFUSED);
  if (copied) store<u64>(st, load<u64>(st, TPK_COPIED) + copied, TPK_COPIED);
  return moved;
}

// What the kernel's virtio_net_hdr_to_skb would refuse outright (a refused tx frame stops the
// kernel's ring until we come round to it again): flags other than NEEDS_CSUM / DATA_VALID, an
// unknown GSO type, GSO without a size, a checksum outside the frame.
function vh_bad(h: usize, flen: u32): bool {
  const flags = load<u8>(h), gso = load<u8>(h, 1) & 0x7f;
  if ((flags & ~3) != 0) return true;
  if (gso != 0 && gso != 1 && gso != 4 && gso != 5) return true;
  if (gso != 0 && load<u16>(h, 4) == 0) return true;
  if (flags & 1) {
    const at = <u32>load<u16>(h, 6) + <u32>load<u16>(h, 8);
    if (at + 2 > flen) return true;
  }
  return false;
}

/**
 * A port's rx ring (as its user) → kernel tx ring: copy whole frames (MOREFRAG chains joined)
 * into free tx frames, each behind the socket's 10-byte header (the port's own header, cut to
 * 10 bytes, or a zero one for a port with none), and mark them SEND_REQUEST; advance head past
 * them. Returns frames queued (the host then kicks the socket once). A frame too large for a
 * tx frame, shorter than the port's header or with a header the kernel would refuse is dropped
 * and counted. With `big` (not 0) it stops at a frame of that many bytes or more (tpk_big says
 * so): the caller sends it with sendmsg from the port's buffer, after kicking what is queued.
 */
export function tpk_push(st: usize, k: usize, ring: usize, nframes: u32, fsize: u32, hdr: u32, big: u32): u32 {
  const r = <usize>load<u32>(k, KR_RING);
  const n = load<u32>(k, KR_NSLOTS);
  let head = load<u32>(r, RING_HEAD);
  const tail = load<u32>(r, RING_TAIL);
  if (head >= n || tail >= n || (hdr != 0 && hdr != VH && hdr != 12)) return 0;
  const base = <usize>load<u32>(k, KR_BUF_BASE), bsize = load<u32>(k, KR_BUF_SIZE), nbufs = load<u32>(k, KR_NBUFS);
  const room = fsize - TP_HDR_ALIGNED; // header and frame
  let cur = load<u32>(st, TPK_CUR);
  let queued: u32 = 0, refused: u32 = 0;
  store<u32>(st, 0, TPK_BIG);
  while (head != tail) {
    if (big != 0 && frame_len(r, n, head, tail) >= big) { store<u32>(st, 1, TPK_BIG); break; } // the caller sends it
    const f = ring + <usize>cur * <usize>fsize;
    const status = atomic.load<u32>(f, TP_STATUS);
    if (status & TP_STATUS_TX_BUSY) break; // the kernel has not sent it yet: the ring is full
    const d = f + TP_HDR_ALIGNED;
    if (hdr == 0) memory.fill(d, 0, VH);
    // gather one frame; stop at an unfinished chain. Port bytes [10, hdr) (num_buffers) are
    // skipped; `at` is where the next port byte goes (bytes before VH: the header)
    let i = head, plen: u32 = 0, at: u32 = hdr == 0 ? VH : 0, whole = false, fits = true;
    while (i != tail) {
      const s = r + RING_SLOTS + <usize>(SLOT_SIZE * i);
      const l = <u32>load<u16>(s, SLOT_LEN);
      const idx = load<u32>(s, SLOT_BUF_IDX);
      if (idx < BUF_RESERVED || idx >= nbufs || l > bsize) fits = false;
      else if (fits) {
        let src = base + <usize>idx * <usize>bsize, left = l, o = plen;
        if (o < hdr && hdr > VH) { // inside the port's header: keep the first 10 bytes
          if (o < VH) { const c = VH - o < left ? VH - o : left; memory.copy(d + at, src, c); at += c; src += c; left -= c; o += c; }
          const skip = hdr - o < left ? hdr - o : left; src += skip; left -= skip;
        }
        if (at + left > room) fits = false;
        else { memory.copy(d + at, src, left); at += left; }
      }
      plen += l;
      i = i + 1 == n ? 0 : i + 1;
      if ((load<u16>(s, SLOT_FLAGS) & NS_MOREFRAG) == 0) { whole = true; break; }
    }
    if (!whole) break;
    head = i;
    if (status & TP_STATUS_WRONG_FORMAT) { refused++; atomic.store<u32>(f, 0, TP_STATUS); } // the last use was refused
    if (!fits || plen < hdr || at <= VH || vh_bad(d, at - VH)) { refused++; continue; }
    store<u32>(f, at, TP_LEN);
    atomic.store<u32>(f, TP_STATUS_SEND_REQUEST, TP_STATUS);
    cur = cur + 1 == nframes ? 0 : cur + 1;
    store<u32>(st, cur + 1, TPK_LAST); // (cur + 1 is never 0)
    queued++;
  }
  store<u32>(r, head, RING_HEAD);
  store<u32>(r, head, RING_CUR);
  store<u32>(st, cur, TPK_CUR);
  store<u64>(st, load<u64>(st, TPK_MOVED) + queued, TPK_MOVED);
  store<u64>(st, load<u64>(st, TPK_REFUSED) + refused, TPK_REFUSED);
  return queued;
}

// The length of the (whole or unfinished) frame at head: its chain's slot lengths summed.
function frame_len(r: usize, n: u32, head: u32, tail: u32): u32 {
  let i = head, len: u32 = 0, k: u32 = 0;
  while (i != tail && k++ < MAX_FRAGS) {
    const s = r + RING_SLOTS + <usize>(SLOT_SIZE * i);
    len += <u32>load<u16>(s, SLOT_LEN);
    if ((load<u16>(s, SLOT_FLAGS) & NS_MOREFRAG) == 0) break;
    i = i + 1 == n ? 0 : i + 1;
  }
  return len;
}

/** After tpk_push: 1 when it stopped at a frame of `big` bytes or more (send it another way). */
export function tpk_big(st: usize): u32 { return load<u32>(st, TPK_BIG); }

/** After a kick: 1 when the frame queued last still waits for the kernel (it stopped short,
 *  e.g. its send buffer was full: kick again before sleeping), else 0. */
export function tpk_unsent(st: usize, ring: usize, nframes: u32, fsize: u32): u32 {
  const last = load<u32>(st, TPK_LAST);
  if (last == 0) return 0;
  const at = last - 1 == 0 ? nframes - 1 : last - 2; // the frame before the cursor then
  if (at >= nframes) return 0;
  return atomic.load<u32>(ring + <usize>at * <usize>fsize, TP_STATUS) == TP_STATUS_SEND_REQUEST ? 1 : 0;
}
