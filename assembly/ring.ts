// head/cur/tail arithmetic and the sync prologues: the checks netmap's kernel makes on what a
// ring's user wrote before it believes any of it (nm_txsync_prologue / nm_rxsync_prologue).
// A violation marks the ring broken and changes nothing else; the ring stays broken (every
// sync answers E_BROKEN) until kring_reset, so a buggy user cannot half-apply an update.
import {
  SLOT_SIZE, SLOT_BUF_IDX, SLOT_LEN, SLOT_FLAGS, NS_MOREFRAG, NS_INDIRECT, NETMAP_MAX_FRAGS, RING_HEAD,
  RING_CUR, RING_TAIL, RING_SLOTS, KR_RING, KR_NSLOTS, KR_HWCUR, KR_HWTAIL, KR_RHEAD, KR_RCUR, KR_PTRS, KR_PTR_SIZE,
  KR_USER, KR_FLAGS, KR_DIR, KR_BUF_BASE, KR_BUF_SIZE, KR_NBUFS, KR_ERR, KR_ERRORS, KR_REGION, KRF_BROKEN, DIR_TX,
  BUF_RESERVED, E_OK, E_HEAD, E_CUR, E_BUF_IDX, E_BUF_LEN, E_FRAGS, E_BROKEN,
} from './abi';
import { region_repair } from './repair';

@inline export function ring_next(i: u32, n: u32): u32 { return i + 1 == n ? 0 : i + 1; }
@inline export function ring_prev(i: u32, n: u32): u32 { return i == 0 ? n - 1 : i - 1; }
/** Slots from a to b going forward, (b - a) mod n; a and b must be < n. */
@inline export function ring_dist(a: u32, b: u32, n: u32): u32 { return b >= a ? b - a : b + n - a; }
@inline export function ring_add(i: u32, d: u32, n: u32): u32 { const j = i + d; return j >= n ? j - n : j; }
@inline export function slot_at(k: usize, i: u32): usize {
  return <usize>load<u32>(k, KR_RING) + RING_SLOTS + <usize>(SLOT_SIZE * i);
}

/** nm_ring_space as the user sees it: slots in [head, tail). */
export function ring_space(ring: usize, n: u32): u32 {
  return ring_dist(load<u32>(ring, RING_HEAD), load<u32>(ring, RING_TAIL), n);
}

export function ring_break(k: usize, err: i32): i32 {
  store<u32>(k, load<u32>(k, KR_FLAGS) | KRF_BROKEN, KR_FLAGS);
  store<i32>(k, err, KR_ERR);
  store<u64>(k, load<u64>(k, KR_ERRORS) + 1, KR_ERRORS);
  return err;
}

@inline export function ring_broken(k: usize): bool { return (load<u32>(k, KR_FLAGS) & KRF_BROKEN) != 0; }

/**
 * Validate the user's head and cur. TX: hwcur <= rhead <= head <= cur <= tail, cyclically;
 * RX: hwcur <= head <= cur <= hwtail. On success rhead/rcur take the new values and an
 * overwritten tail is restored (as netmap does); on failure the ring is broken.
 */
export function sync_prologue(k: usize): i32 {
  if (ring_broken(k)) return E_BROKEN;
  const ring = <usize>load<u32>(k, KR_USER);
  const n = load<u32>(k, KR_NSLOTS);
  const head = load<u32>(ring, RING_HEAD);
  const cur = load<u32>(ring, RING_CUR);
  const from = load<u32>(k, KR_DIR) == DIR_TX ? load<u32>(k, KR_RHEAD) : load<u32>(k, KR_HWCUR);
  const tail = load<u32>(k, KR_HWTAIL);
  if (head >= n || ring_dist(from, head, n) > ring_dist(from, tail, n)) return ring_break(k, E_HEAD);
  if (cur >= n || ring_dist(head, cur, n) > ring_dist(head, tail, n)) return ring_break(k, E_CUR);
  store<u32>(k, head, KR_RHEAD);
  store<u32>(k, cur, KR_RCUR);
  if (load<u32>(ring, RING_TAIL) != tail) store<u32>(ring, tail, RING_TAIL);
  return E_OK;
}

/** Publish the kernel side's view to the user: tail = hwtail (nm_sync_finalize). */
@inline export function sync_finalize(k: usize): void {
  store<u32>(<usize>load<u32>(k, KR_USER), load<u32>(k, KR_HWTAIL), RING_TAIL);
}

/** Packets in the slots accepted by the last tx_scan. */
export let scan_pkts: u32 = 0;

/**
 * Validate up to max_slots new tx slots from `from` (at most up to rhead): every buffer index in
 * range and not reserved, every len within the buffer, MOREFRAG chains of at most 64 slots.
 * Returns how many slots form whole packets (an unfinished chain at head is held back, not an
 * error, as netmap pipes do), or an error after breaking the ring. Packets are never split
 * by max_slots: a batch ends before a packet that does not fit (with `overshoot`, the first
 * packet is taken whole even if larger than max_slots). With `rec` != 0 the checked
 * values are recorded there, 8 bytes a slot (buffer address u32, len u16, flags u16), so the
 * caller uses exactly what was checked even if the ring's owner rewrites the slot meanwhile.
 */
export function tx_scan(k: usize, from: u32, max_slots: u32, rec: usize = 0, overshoot: bool = false): i32 {
  const n = load<u32>(k, KR_NSLOTS);
  const avail = ring_dist(from, load<u32>(k, KR_RHEAD), n);
  const nbufs = load<u32>(k, KR_NBUFS);
  const bsize = load<u32>(k, KR_BUF_SIZE);
  const slots = <usize>load<u32>(k, KR_RING) + RING_SLOTS;
  const base = <usize>load<u32>(k, KR_BUF_BASE);
  const ptrs = <usize>load<u32>(k, KR_PTRS); // zero-copy slots (vhost-user), see abi.ts
  let i = from;
  let done: u32 = 0; // slots that end a complete packet
  let frags: u32 = 0;
  let pkts: u32 = 0;
  // the caller's record area holds max_slots + NETMAP_MAX_FRAGS records (a batch may end one
  // packet late); the chain limit below stops before that, and so does this, explicitly
  const cap: u64 = <u64>max_slots + <u64>NETMAP_MAX_FRAGS;
  for (let c: u32 = 0; c < avail; c++) {
    if (rec && <u64>c >= cap) return ring_break(k, E_FRAGS);
    const s = slots + <usize>(SLOT_SIZE * i);
    const idx = load<u32>(s, SLOT_BUF_IDX);
    const len = load<u16>(s, SLOT_LEN);
    const flags = load<u16>(s, SLOT_FLAGS);
    if (idx < BUF_RESERVED || idx >= nbufs) return ring_break(k, E_BUF_IDX);
    if (<u32>len > bsize) return ring_break(k, E_BUF_LEN);
    if (rec) {
      const r = rec + 8 * <usize>c;
      let a = base + <usize>idx * <usize>bsize;
      if (ptrs != 0 && (flags & NS_INDIRECT) != 0) { const p = load<u32>(ptrs + <usize>KR_PTR_SIZE * <usize>i); if (p != 0) a = <usize>p; }
      store<u32>(r, <u32>a);
      store<u16>(r, len, 4);
      store<u16>(r, flags, 6);
    }
    frags++;
    if (flags & NS_MOREFRAG) {
      if (frags >= NETMAP_MAX_FRAGS || frags >= n - 1) return ring_break(k, E_FRAGS);
    } else {
      // a batch may end past max_slots by one packet's fragments when that packet is its
      // first (the switch keeps room for it), else a packet larger than a batch never moves
      if (c + 1 > max_slots && !(overshoot && done == 0)) break;
      done = c + 1;
      frags = 0;
      pkts++;
    }
    i = ring_next(i, n);
  }
  scan_pkts = pkts;
  return <i32>done;
}

/**
 * Bring a ring back after an error, like netmap_ring_reinit: head = cur = hwcur, tail = hwtail,
 * and the region's buffers are re-accounted (bad or duplicate indices get free buffers back).
 */
export function kring_reset(k: usize): void {
  const ring = <usize>load<u32>(k, KR_USER);
  const hwcur = load<u32>(k, KR_HWCUR);
  store<u32>(ring, hwcur, RING_HEAD);
  store<u32>(ring, hwcur, RING_CUR);
  store<u32>(ring, load<u32>(k, KR_HWTAIL), RING_TAIL);
  store<u32>(k, hwcur, KR_RHEAD);
  store<u32>(k, hwcur, KR_RCUR);
  store<u32>(k, load<u32>(k, KR_FLAGS) & ~KRF_BROKEN, KR_FLAGS);
  store<i32>(k, 0, KR_ERR);
  region_repair(<usize>load<u32>(k, KR_REGION), k);
}
