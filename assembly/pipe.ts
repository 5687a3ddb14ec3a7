// Zero-copy pipes: a tx ring linked to an rx ring of the same region. A txsync moves whole
// packets by swapping buffer indices with the rx ring's free slots (NS_BUF_CHANGED on both
// sides), so every buffer is always in exactly one slot. When the rx ring is full the sender
// keeps its packets (flow control, like netmap pipes: pipes block, they never drop).
import {
  SLOT_SIZE, SLOT_BUF_IDX, SLOT_LEN, SLOT_FLAGS, NS_BUF_CHANGED, NS_MOREFRAG, RING_SLOTS,
  KR_RING, KR_NSLOTS, KR_HWCUR, KR_HWTAIL, KR_DIR, KR_NBUFS, KR_PEER, KR_REGION, KR_PKTS,
  KR_BYTES, KR_RHEAD, DIR_TX, DIR_RX, BUF_RESERVED, E_OK, E_INVAL, E_XREGION, E_BUF_IDX,
} from './abi';
import { ring_next, ring_prev, ring_dist, sync_prologue, sync_finalize, tx_scan, scan_pkts, ring_break, ring_broken } from './ring';

/** Link tx kring `tx` to rx kring `rx`. Both must belong to one region (zero copy). */
export function pipe_link(tx: usize, rx: usize): i32 {
  if (tx == 0 || rx == 0 || load<u32>(tx, KR_DIR) != DIR_TX || load<u32>(rx, KR_DIR) != DIR_RX) return E_INVAL;
  if (load<u32>(tx, KR_REGION) != load<u32>(rx, KR_REGION)) return E_XREGION;
  store<u32>(tx, <u32>rx, KR_PEER);
  return E_OK;
}

/** Free slots the kernel side may still fill in an rx ring (one slot always stays empty). */
@inline export function rx_room(rx: usize): u32 {
  const m = load<u32>(rx, KR_NSLOTS);
  return m - 1 - ring_dist(load<u32>(rx, KR_HWCUR), load<u32>(rx, KR_HWTAIL), m);
}

/** txsync of a pipe end: returns packets moved (>= 0) or an error (< 0). */
export function pipe_txsync(tx: usize): i32 {
  const err = sync_prologue(tx);
  if (err < 0) return err;
  const rx = <usize>load<u32>(tx, KR_PEER);
  if (rx == 0) return E_INVAL;
  if (ring_broken(rx)) { sync_finalize(tx); return 0; } // the reader broke its ring: hold packets
  const n = load<u32>(tx, KR_NSLOTS);
  const m = load<u32>(rx, KR_NSLOTS);
  const nbufs = load<u32>(rx, KR_NBUFS);
  let i = load<u32>(tx, KR_HWCUR);
  // every slot the user queued is checked now, also those the full reader cannot take yet
  const all = tx_scan(tx, i, 0xffffffff);
  if (all < 0) return all;
  const room = rx_room(rx);
  const take = <u32>all <= room ? all : tx_scan(tx, i, room); // rescan only to cut at room
  const pkts = scan_pkts;
  const ts = <usize>load<u32>(tx, KR_RING) + RING_SLOTS;
  const rs = <usize>load<u32>(rx, KR_RING) + RING_SLOTS;
  // the reader owns its free slots' indices too: check them all before moving anything
  let j = load<u32>(rx, KR_HWTAIL);
  for (let c: u32 = 0; c < <u32>take; c++) {
    const ridx = load<u32>(rs + <usize>(SLOT_SIZE * j), SLOT_BUF_IDX);
    if (ridx < BUF_RESERVED || ridx >= nbufs) { ring_break(rx, E_BUF_IDX); sync_finalize(tx); return 0; }
    j = ring_next(j, m);
  }
  j = load<u32>(rx, KR_HWTAIL);
  let bytes: u64 = 0;
  for (let c: u32 = 0; c < <u32>take; c++) {
    const t = ts + <usize>(SLOT_SIZE * i);
    const r = rs + <usize>(SLOT_SIZE * j);
    const ridx = load<u32>(r, SLOT_BUF_IDX);
    const len = load<u16>(t, SLOT_LEN);
    store<u32>(r, load<u32>(t, SLOT_BUF_IDX), SLOT_BUF_IDX);
    store<u16>(r, len, SLOT_LEN);
    store<u16>(r, (load<u16>(t, SLOT_FLAGS) & NS_MOREFRAG) | NS_BUF_CHANGED, SLOT_FLAGS);
    store<u32>(t, ridx, SLOT_BUF_IDX);
    store<u16>(t, NS_BUF_CHANGED, SLOT_FLAGS);
    bytes += len;
    i = ring_next(i, n);
    j = ring_next(j, m);
  }
  store<u32>(tx, i, KR_HWCUR);
  store<u32>(tx, ring_prev(i, n), KR_HWTAIL);
  store<u32>(rx, j, KR_HWTAIL);
  store<u64>(tx, load<u64>(tx, KR_PKTS) + pkts, KR_PKTS);
  store<u64>(tx, load<u64>(tx, KR_BYTES) + bytes, KR_BYTES);
  store<u64>(rx, load<u64>(rx, KR_PKTS) + pkts, KR_PKTS);
  store<u64>(rx, load<u64>(rx, KR_BYTES) + bytes, KR_BYTES);
  sync_finalize(tx);
  return <i32>pkts;
}

/** rxsync of a pipe end (or any rx ring filled by the kernel side): release [hwcur, head),
 *  publish tail. Returns the slots now readable, or an error. */
export function rxsync(rx: usize): i32 {
  const err = sync_prologue(rx);
  if (err < 0) return err;
  store<u32>(rx, load<u32>(rx, KR_RHEAD), KR_HWCUR);
  sync_finalize(rx);
  const n = load<u32>(rx, KR_NSLOTS);
  return <i32>ring_dist(load<u32>(rx, KR_HWCUR), load<u32>(rx, KR_HWTAIL), n);
}

