// AF_XDP rings, mapped by the native host into this memory (host-native/src/xdp.c), and the
// UMEM they point into, which is itself a span of this memory: the datapath moves descriptors
// and frames with no system call per frame (the host kicks tx once per batch, only when the
// kernel asks for it: XDP_USE_NEED_WAKEUP).
//
// Copies (and why): rx, one copy UMEM frame → the port's netmap buffer; tx, one copy netmap
// buffer(s) → UMEM frame. The port keeps its own region (every VALE port does, so it can be
// handed to another process), and the UMEM is the kernel's to write while a frame sits in the
// fill or rx ring: handing a UMEM frame to the switch by swapping buffer addresses would let
// the kernel (or a zero-copy NIC) write a frame the switch is reading. In copy mode (veth) the
// kernel copies skb → UMEM and UMEM → skb too; with a zero-copy driver those go away.
//
// The ring words and descriptors are shared with the kernel: producers are read with acquire
// loads and our own indices published with release stores; our consumer/producer indices are
// kept here in private state and never read back from the shared page. Every descriptor is
// read once and bounded (addr + len inside one frame of its ring's kind, len within a buffer); each refusal is
// counted by its reason.
import {
  SLOT_SIZE, SLOT_BUF_IDX, SLOT_LEN, SLOT_FLAGS, NS_MOREFRAG, RING_HEAD, RING_CUR, RING_TAIL,
  RING_SLOTS, KR_RING, KR_NSLOTS, KR_BUF_BASE, KR_BUF_SIZE, KR_NBUFS, BUF_RESERVED,
} from './abi';
import { ring_dist } from './ring';

// per-socket state (private memory, XSK_*): where the kernel's ring words are (absolute
// offsets in this memory), the UMEM, our cached indices, the free tx frames and counters
export const XSK_SIZE: u32 = 256;
export const XSK_FILL: u32 = 0;   // fill ring: producer, consumer, flags, desc (4 × u32)
export const XSK_COMP: u32 = 16;  // completion ring
export const XSK_RX: u32 = 32;    // rx ring
export const XSK_TX: u32 = 48;    // tx ring
const R_PROD: u32 = 0, R_CONS: u32 = 4, R_FLAGS: u32 = 8, R_DESC: u32 = 12;
export const XSK_NDESC: u32 = 64;     // every ring's size (a power of 2)
export const XSK_UMEM: u32 = 68;      // UMEM base offset in this memory
// 72: unused
export const XSK_FSIZE: u32 = 76;     // frame (chunk) size, a power of 2
export const XSK_RX_FRAMES: u32 = 80; // frames [0, rx) go round fill → rx → fill
export const XSK_TX_FRAMES: u32 = 84; // frames [rx, rx + tx) go round free → tx → completion → free
export const XSK_FREE: u32 = 88;      // u32 array of free tx frame addresses (XSK_TX_FRAMES entries)
const C_FILL_PROD: u32 = 92, C_RX_CONS: u32 = 96, C_TX_PROD: u32 = 100, C_COMP_CONS: u32 = 104, C_NFREE: u32 = 108;
// counters, u64
export const XSK_RX_MOVED: u32 = 128;
export const XSK_TX_MOVED: u32 = 136;
export const XSK_RX_BAD_DESC: u32 = 144;  // rx descriptor outside the rx frames or across a frame's end: dropped (its frame is lost to the fill ring)
export const XSK_RX_TOO_BIG: u32 = 152;   // rx frame longer than a netmap buffer: dropped whole
export const XSK_FILL_LOST: u32 = 160;    // a frame that could not go back to the fill ring (it was full: the kernel broke the accounting)
export const XSK_TX_TOO_BIG: u32 = 168;   // tx frame (MOREFRAG chain) longer than a UMEM frame, or a bad slot: dropped whole
export const XSK_COMP_BAD: u32 = 176;     // completion address that is no tx frame of ours (or a second return): ignored
export const XSK_RING_BAD: u32 = 184;     // a kernel index that claimed more than the ring holds: that batch ignored
export const XSK_TX_FULL: u32 = 192;      // push passes that stopped with frames waiting (no free frame or tx ring full): back-pressure, not drops

const NEED_WAKEUP: u32 = 1; // XDP_RING_NEED_WAKEUP

@inline function word(st: usize, ring: u32, w: u32): usize { return <usize>load<u32>(st + ring + w); }
@inline function bump(st: usize, at: u32, d: u64): void { if (d) store<u64>(st + at, load<u64>(st + at) + d); }

/** After the host filled the ring words and sizes: every rx frame into the fill ring, every tx
 *  frame on the free stack. */
export function xsk_init(st: usize): void {
  const n = load<u32>(st, XSK_NDESC), fs = load<u32>(st, XSK_FSIZE);
  const rxf = load<u32>(st, XSK_RX_FRAMES), txf = load<u32>(st, XSK_TX_FRAMES);
  const fdesc = word(st, XSK_FILL, R_DESC), mask = n - 1;
  let p = atomic.load<u32>(word(st, XSK_FILL, R_PROD));
  const give = rxf < n ? rxf : n;
  for (let i: u32 = 0; i < give; i++) { store<u64>(fdesc + ((<usize>(p & mask)) << 3), <u64>i * <u64>fs); p++; }
  atomic.store<u32>(word(st, XSK_FILL, R_PROD), p);
  store<u32>(st, p, C_FILL_PROD);
  store<u32>(st, atomic.load<u32>(word(st, XSK_RX, R_CONS)), C_RX_CONS);
  store<u32>(st, atomic.load<u32>(word(st, XSK_TX, R_PROD)), C_TX_PROD);
  store<u32>(st, atomic.load<u32>(word(st, XSK_COMP, R_CONS)), C_COMP_CONS);
  const free = <usize>load<u32>(st, XSK_FREE);
  for (let i: u32 = 0; i < txf; i++) store<u32>(free + (<usize>i << 2), (rxf + i) * fs);
  store<u32>(st, txf, C_NFREE);
}

/**
 * Kernel rx ring → a port's tx ring (as its user): copy each received frame into a free tx
 * slot and give its UMEM frame straight back to the fill ring; advance head and cur. Returns
 * frames moved. A descriptor not inside one rx frame, or longer than a buffer, is dropped and counted.
 * Returns with the fill ring's need_wakeup in bit 31 (the host then wakes the kernel once).
 */
export function xsk_pull(st: usize, k: usize, max: u32): u32 {
  const r = <usize>load<u32>(k, KR_RING);
  const n = load<u32>(k, KR_NSLOTS);
  let head = load<u32>(r, RING_HEAD);
  const tail = load<u32>(r, RING_TAIL);
  if (head >= n || tail >= n) return 0;
  let room = ring_dist(head, tail, n);
  if (room > max) room = max;
  const base = <usize>load<u32>(k, KR_BUF_BASE), bsize = load<u32>(k, KR_BUF_SIZE), nbufs = load<u32>(k, KR_NBUFS);
  const cap: u32 = bsize < 65535 ? bsize : 65535; // a slot's len is a u16
  const nd = load<u32>(st, XSK_NDESC), mask = nd - 1;
  const umem = <usize>load<u32>(st, XSK_UMEM), fs = <u64>load<u32>(st, XSK_FSIZE);
  const rxEnd = <u64>load<u32>(st, XSK_RX_FRAMES) * fs; // rx frames are [0, rxEnd): the tx frames are never the kernel's to fill
  const fmask = ~(fs - 1);
  const rdesc = word(st, XSK_RX, R_DESC), fdesc = word(st, XSK_FILL, R_DESC);
  let cons = load<u32>(st, C_RX_CONS), fprod = load<u32>(st, C_FILL_PROD);
  const avail = atomic.load<u32>(word(st, XSK_RX, R_PROD)) - cons; // acquire: descriptors before it are written
  if (avail > nd) { bump(st, XSK_RING_BAD, 1); return 0; }
  const froom = nd - (fprod - atomic.load<u32>(word(st, XSK_FILL, R_CONS)));
  let moved: u32 = 0, bad: u32 = 0, big: u32 = 0, lost: u32 = 0, taken: u32 = 0, given: u32 = 0;
  while (taken < avail && moved < room) {
    const d = rdesc + ((<usize>(cons & mask)) << 4);
    const addr = load<u64>(d), len = load<u32>(d, 8); // each read once
    cons++; taken++;
    // inside one rx frame: a descriptor reaching into the next frame (or a tx frame) would copy
    // bytes that are not this frame's, and giving its address back would hand the kernel a
    // frame that is not its to fill
    const inside = addr < rxEnd && (addr & (fs - 1)) + <u64>len <= fs;
    if (!inside) { bad++; continue; } // which frame the kernel meant is unknown: it is lost
    if (len > cap) big++;
    else {
      const s = r + RING_SLOTS + <usize>(SLOT_SIZE * head);
      const idx = load<u32>(s, SLOT_BUF_IDX);
      if (idx < BUF_RESERVED || idx >= nbufs) { cons--; taken--; break; } // our own ring is corrupted: stop, the frame stays
      memory.copy(base + <usize>idx * <usize>bsize, umem + <usize>addr, len);
      store<u16>(s, <u16>len, SLOT_LEN);
      store<u16>(s, 0, SLOT_FLAGS);
      head = head + 1 == n ? 0 : head + 1;
      moved++;
    }
    // its frame back to the kernel (aligned mode: the chunk the address falls in)
    if (given < froom) { store<u64>(fdesc + ((<usize>(fprod & mask)) << 3), addr & fmask); fprod++; given++; } else lost++;
  }
  atomic.store<u32>(word(st, XSK_RX, R_CONS), cons); // release: we are done reading those descriptors
  atomic.store<u32>(word(st, XSK_FILL, R_PROD), fprod); // release: the addresses are written
  store<u32>(st, cons, C_RX_CONS);
  store<u32>(st, fprod, C_FILL_PROD);
  store<u32>(r, head, RING_HEAD);
  store<u32>(r, head, RING_CUR);
  bump(st, XSK_RX_MOVED, moved); bump(st, XSK_RX_BAD_DESC, bad); bump(st, XSK_RX_TOO_BIG, big); bump(st, XSK_FILL_LOST, lost);
  const wake = atomic.load<u32>(word(st, XSK_FILL, R_FLAGS)) & NEED_WAKEUP;
  return moved | (wake << 31);
}

/** Completed tx frames back on the free stack. Returns how many. */
function reap(st: usize): u32 {
  const nd = load<u32>(st, XSK_NDESC), mask = nd - 1;
  const fs = load<u32>(st, XSK_FSIZE), rxf = load<u32>(st, XSK_RX_FRAMES), txf = load<u32>(st, XSK_TX_FRAMES);
  const lo = <u64>rxf * <u64>fs, hi = <u64>(rxf + txf) * <u64>fs;
  const cdesc = word(st, XSK_COMP, R_DESC), free = <usize>load<u32>(st, XSK_FREE);
  let cons = load<u32>(st, C_COMP_CONS), nfree = load<u32>(st, C_NFREE);
  const avail = atomic.load<u32>(word(st, XSK_COMP, R_PROD)) - cons;
  if (avail > nd) { bump(st, XSK_RING_BAD, 1); return 0; }
  let bad: u32 = 0;
  for (let i: u32 = 0; i < avail; i++) {
    const a = load<u64>(cdesc + ((<usize>(cons & mask)) << 3));
    cons++;
    // a tx frame of ours, at its start, and room on the stack (a frame returned twice would overflow it)
    if (a < lo || a >= hi || (a & <u64>(fs - 1)) != 0 || nfree >= txf) { bad++; continue; }
    store<u32>(free + (<usize>nfree << 2), <u32>a);
    nfree++;
  }
  atomic.store<u32>(word(st, XSK_COMP, R_CONS), cons);
  store<u32>(st, cons, C_COMP_CONS);
  store<u32>(st, nfree, C_NFREE);
  bump(st, XSK_COMP_BAD, bad);
  return avail - bad;
}

/**
 * A port's rx ring (as its user) → kernel tx ring: reap completions, then copy whole frames
 * (MOREFRAG chains joined) into free UMEM frames and post their descriptors; advance head past
 * them. Returns frames posted, with the tx ring's need_wakeup in bit 31 (the host kicks once).
 * A frame longer than a UMEM frame (or with a bad slot) is dropped whole and counted; with no
 * free frame or no room in the tx ring the rest waits in the rx ring.
 */
export function xsk_push(st: usize, k: usize): u32 {
  reap(st);
  const r = <usize>load<u32>(k, KR_RING);
  const n = load<u32>(k, KR_NSLOTS);
  let head = load<u32>(r, RING_HEAD);
  const tail = load<u32>(r, RING_TAIL);
  if (head >= n || tail >= n) return 0;
  const base = <usize>load<u32>(k, KR_BUF_BASE), bsize = load<u32>(k, KR_BUF_SIZE), nbufs = load<u32>(k, KR_NBUFS);
  const nd = load<u32>(st, XSK_NDESC), mask = nd - 1, fs = load<u32>(st, XSK_FSIZE);
  const umem = <usize>load<u32>(st, XSK_UMEM);
  const tdesc = word(st, XSK_TX, R_DESC), free = <usize>load<u32>(st, XSK_FREE);
  let prod = load<u32>(st, C_TX_PROD), nfree = load<u32>(st, C_NFREE);
  const tcons = atomic.load<u32>(word(st, XSK_TX, R_CONS));
  if (prod - tcons > nd) { bump(st, XSK_RING_BAD, 1); return 0; }
  let troom = nd - (prod - tcons);
  let posted: u32 = 0, big: u32 = 0, full: u32 = 0;
  while (head != tail) {
    if (nfree == 0 || troom == 0) { full = 1; break; }
    const addr = load<u32>(free + (<usize>(nfree - 1) << 2));
    const f = umem + <usize>addr;
    let i = head, len: u32 = 0, whole = false, fits = true;
    while (i != tail) {
      const s = r + RING_SLOTS + <usize>(SLOT_SIZE * i);
      const l = <u32>load<u16>(s, SLOT_LEN), idx = load<u32>(s, SLOT_BUF_IDX), fl = load<u16>(s, SLOT_FLAGS);
      if (idx < BUF_RESERVED || idx >= nbufs || l > bsize || len + l > fs) fits = false;
      else if (fits) memory.copy(f + len, base + <usize>idx * <usize>bsize, l);
      len += l;
      i = i + 1 == n ? 0 : i + 1;
      if ((fl & NS_MOREFRAG) == 0) { whole = true; break; }
    }
    if (!whole) break; // an unfinished chain waits for its end
    head = i;
    if (!fits || len == 0) { big++; continue; }
    nfree--;
    const d = tdesc + ((<usize>(prod & mask)) << 4);
    store<u64>(d, <u64>addr);
    store<u32>(d, len, 8);
    store<u32>(d, 0, 12); // options
    prod++; troom--;
    posted++;
  }
  atomic.store<u32>(word(st, XSK_TX, R_PROD), prod); // release: descriptors and frames are written
  store<u32>(st, prod, C_TX_PROD);
  store<u32>(st, nfree, C_NFREE);
  store<u32>(r, head, RING_HEAD);
  store<u32>(r, head, RING_CUR);
  bump(st, XSK_TX_MOVED, posted); bump(st, XSK_TX_TOO_BIG, big); bump(st, XSK_TX_FULL, full);
  const wake = atomic.load<u32>(word(st, XSK_TX, R_FLAGS)) & NEED_WAKEUP;
  return posted | (wake << 31);
}

/** Frames posted to the tx ring the kernel has not taken yet (a kick is still owed). */
export function xsk_tx_pending(st: usize): u32 {
  return load<u32>(st, C_TX_PROD) - atomic.load<u32>(word(st, XSK_TX, R_CONS));
}

/** Frames the kernel has handed over on the rx ring and we have not taken. */
export function xsk_rx_pending(st: usize): u32 {
  const a = atomic.load<u32>(word(st, XSK_RX, R_PROD)) - load<u32>(st, C_RX_CONS);
  return a > load<u32>(st, XSK_NDESC) ? 0 : a;
}
