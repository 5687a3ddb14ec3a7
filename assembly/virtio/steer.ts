// Multiqueue receive for vhost-user ports (issue #17): the port has one rx ring, the guest
// several RX virtqueues (one per queue pair it enabled). vq_push_steer spreads the ring's
// frames over them by a flow hash — the same flow (addresses, protocol, ports) always to the
// same queue, so a guest that handles each queue on its own CPU sees every flow in order, as
// RSS on a NIC gives it — and calls vq_push (vring.ts, unchanged) once per run of consecutive
// frames bound for the same queue: it lets vq_push see only that run by lowering the ring's
// tail for the call (the ring is ours between rounds: only this thread reads or writes it) and
// puts the tail back after. Ring order is kept: when a queue cannot take its run (no buffers
// posted, broken, a window miss) the frames after it wait too, as they would on one queue.
import { SLOT_SIZE, SLOT_BUF_IDX, SLOT_LEN, SLOT_FLAGS, NS_MOREFRAG, RING_HEAD, RING_TAIL, RING_SLOTS, KR_RING, KR_NSLOTS, KR_BUF_BASE, KR_BUF_SIZE, KR_NBUFS, BUF_RESERVED } from '../abi';
import { vq_push, VQ_HDR_LEN } from './vring';

let steer_stopped: i32 = -1;
/** The queue (index into the caller's list) the last vq_push_steer stopped at, -1 if it took
 *  every whole frame. */
export function steer_stopped_at(): i32 { return steer_stopped; }

@inline function mix(h: u32, v: u32): u32 { h ^= v; h *= 0x01000193; return h ^ (h >> 15); }
@inline function be16(p: usize): u32 { return (<u32>load<u8>(p) << 8) | <u32>load<u8>(p, 1); }

/**
 * The flow hash of a frame whose first `len` bytes are at `p` (virtio-net header first): IPv4
 * or IPv6 addresses, the protocol, and TCP/UDP/SCTP ports (not for IPv4 fragments: every
 * fragment of a datagram hashes alike); other frames by their MAC addresses and EtherType. Up
 * to two VLAN tags are skipped. Reads only within [p, p+len).
 */
export function flow_hash(p: usize, len: u32): u32 {
  let h: u32 = 0x811c9dc5;
  let o: u32 = VQ_HDR_LEN;
  if (len < o + 14) return h;
  let et = be16(p + o + 12);
  let l3 = o + 14;
  for (let t = 0; t < 2 && (et == 0x8100 || et == 0x88a8) && len >= l3 + 4; t++) { et = be16(p + l3 + 2); l3 += 4; }
  let l4: u32 = 0, proto: u32 = 0;
  if (et == 0x0800 && len >= l3 + 20) {
    const ihl = (<u32>load<u8>(p + l3) & 15) * 4;
    proto = <u32>load<u8>(p + l3 + 9);
    h = mix(mix(mix(h, load<u32>(p + l3 + 12)), load<u32>(p + l3 + 16)), proto);
    if ((be16(p + l3 + 6) & 0x3fff) == 0 && ihl >= 20) l4 = l3 + ihl; // not a fragment
  } else if (et == 0x86dd && len >= l3 + 40) {
    proto = <u32>load<u8>(p + l3 + 6);
    for (let i: u32 = 8; i < 40; i += 4) h = mix(h, load<u32>(p + l3 + i));
    h = mix(h, proto);
    l4 = l3 + 40;
  } else {
    for (let i: u32 = 0; i < 12; i += 4) h = mix(h, load<u32>(p + o + i));
    return mix(h, et);
  }
  if (l4 != 0 && (proto == 6 || proto == 17 || proto == 132) && len >= l4 + 4) h = mix(h, load<u32>(p + l4));
  return mix(h, h >> 16);
}

/**
 * The port's rx ring `k` → the guest's RX queues: `nq` virtqueue records whose addresses are
 * u32s at `vqs` (the queues that run: started, enabled, set up). Each whole frame goes to queue
 * flow_hash % nq; frames with a bad first slot go with the run they are in (vq_push drops and
 * counts them). Returns frames delivered; steer_stopped says where it stopped early.
 */
export function vq_push_steer(vqs: usize, nq: u32, mt: usize, k: usize): i32 {
  steer_stopped = -1;
  if (nq == 0) return 0;
  if (nq == 1) { const d = vq_push(<usize>load<u32>(vqs), mt, k); if (d >= 0 && ring_left(k)) steer_stopped = 0; return d; }
  const r = <usize>load<u32>(k, KR_RING);
  const n = load<u32>(k, KR_NSLOTS);
  const tail = load<u32>(r, RING_TAIL);
  let head = load<u32>(r, RING_HEAD);
  if (head >= n || tail >= n) return 0;
  const base = <usize>load<u32>(k, KR_BUF_BASE), bsize = load<u32>(k, KR_BUF_SIZE), nbufs = load<u32>(k, KR_NBUFS);
  let done: i32 = 0;
  while (head != tail) {
    // a run: frames from head bound for the same queue
    let i = head, q: u32 = 0xffffffff, end = head;
    while (i != tail) {
      const s = r + RING_SLOTS + <usize>(SLOT_SIZE * i);
      const idx = load<u32>(s, SLOT_BUF_IDX), len = <u32>load<u16>(s, SLOT_LEN);
      let fq = q == 0xffffffff ? 0 : q; // a frame with a bad slot joins the run it is in
      if (idx >= BUF_RESERVED && idx < nbufs && len <= bsize) fq = flow_hash(base + <usize>idx * <usize>bsize, len) % nq;
      if (q != 0xffffffff && fq != q) break;
      q = fq;
      // the frame's last slot; an unfinished frame ends the ring for now
      let j = i, whole = false;
      while (j != tail) {
        const sj = r + RING_SLOTS + <usize>(SLOT_SIZE * j);
        j = j + 1 == n ? 0 : j + 1;
        if ((load<u16>(sj, SLOT_FLAGS) & NS_MOREFRAG) == 0) { whole = true; break; }
      }
      if (!whole) break;
      i = j; end = j;
    }
    if (end == head) break; // nothing whole
    store<u32>(r, end, RING_TAIL);
    const d = vq_push(<usize>load<u32>(vqs + <usize>(4 * q)), mt, k);
    store<u32>(r, tail, RING_TAIL);
    if (d > 0) done += d;
    head = load<u32>(r, RING_HEAD);
    if (head != end) { steer_stopped = <i32>q; break; }
  }
  return done;
}

// frames still in the ring after a single-queue push (steer_stopped for the caller's miss loop)
@inline function ring_left(k: usize): bool {
  const r = <usize>load<u32>(k, KR_RING);
  return load<u32>(r, RING_HEAD) != load<u32>(r, RING_TAIL);
}
