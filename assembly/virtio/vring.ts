// The split-virtqueue datapath of a vhost-user virtio-net backend (issue #8). A vhost-user
// port is an ordinary switch port; this module is the *user* of its netmap rings, as
// tpacket.ts is for AF_PACKET: vq_pull moves the guest's TX virtqueue into the port's tx ring,
// vq_push moves the port's rx ring into the guest's RX virtqueue. Frames keep their 12-byte
// virtio_net_hdr_v1 on both sides (the port has hdrLen 12), so bytes are copied as they are.
//
// The guest's RAM is mapped by the host into this linear memory; the memory table (mt_*) says
// where. Everything a guest writes is untrusted: every ring index, descriptor address, length,
// flag and chain link is checked before it is used, and each is read once (a guest changing
// it afterwards changes nothing we rely on). A guest can make us touch only its own regions
// and, through the slots we own, the port's own buffers. A malformed chain breaks only its
// queue, with a VQE_* reason, until vq_setup is called again.
//
// Guest-shared words (avail->idx, used->idx, used_event, avail_event, both flags words) are
// accessed with wasm atomics (sequentially consistent): the descriptors and ring entries
// written before avail->idx are visible once we have loaded it, our used elements are visible
// before used->idx, and the store of used->idx is ordered before the load of used_event (the
// guest's side of vring_need_event), so no interrupt is lost. Guest memory is little-endian,
// as wasm is. No allocation, no per-byte loops: per descriptor a few loads and a memory.copy.
import {
  SLOT_SIZE, SLOT_BUF_IDX, SLOT_LEN, SLOT_FLAGS, NS_MOREFRAG, NETMAP_MAX_FRAGS, RING_HEAD,
  RING_CUR, RING_TAIL, RING_SLOTS, KR_RING, KR_NSLOTS, KR_BUF_BASE, KR_BUF_SIZE, KR_NBUFS,
  BUF_RESERVED, E_OK, E_INVAL, E_NOFIT, NS_INDIRECT, KR_PTRS, KR_PTR_SIZE, KR_HWCUR, FN_HDR_MAX,
} from '../abi';
import { ring_dist, ring_next } from '../ring';
import { mt_gpa, mt_uva, mt_has, mt_peek, mt_whole, mt_piece, MT_MISSED } from './guestmem';

// The memory table (mt_*) and its translation live in guestmem.ts.

// ---- the virtqueue record (private memory, VQ_SIZE bytes) --------------------------------
export const VQ_SIZE: u32 = 160;
export const VQ_NUM: u32 = 0; // u32: queue size, a power of 2 ≤ VQ_MAX_NUM
export const VQ_DESC: u32 = 4; // u32: wasm address of the descriptor table (16 × num)
export const VQ_AVAIL: u32 = 8; // u32: of the avail ring (6 + 2 × num)
export const VQ_USED: u32 = 12; // u32: of the used ring (6 + 8 × num)
// u32 (a u16 value): next avail entry to take. Every chain taken is completed in the same call
// (zero-copy TX chains by vq_complete in the same pass, before anything can stop the queue), so
// at rest it is also the used->idx we published (VHOST_USER_GET/SET_VRING_BASE)
export const VQ_LAST_AVAIL: u32 = 16;
export const VQ_FEATURES: u32 = 20; // u32: VQF_*
export const VQ_ENABLED: u32 = 24; // u32: VHOST_USER_SET_VRING_ENABLE
export const VQ_BROKEN: u32 = 28; // i32: the VQE_* that stopped the queue, 0 while healthy
export const VQ_CALL: u32 = 32; // u32: 1 = interrupt the guest (vq_take_call reads and clears)
export const VQ_SIGNALLED: u32 = 36; // u32: used idx at the last interrupt decision | VQ_SIG_VALID
export const VQ_DESC_UVA: u32 = 40; // u64: the ring addresses as SET_VRING_ADDR gave them,
export const VQ_AVAIL_UVA: u32 = 48; // u64   kept for vq_remap after the memory table changes
export const VQ_USED_UVA: u32 = 56; // u64
export const VQ_FRAMES: u32 = 64; // u64: frames moved (pull: into the tx ring; push: to the guest)
export const VQ_BYTES: u32 = 72; // u64: their bytes, without the virtio-net header
export const VQ_CHAINS: u32 = 80; // u64: chains put on the used ring (dropped ones too)
export const VQ_DROP_BIG: u32 = 88; // u64: frames dropped: larger than 64 KiB + header, than the port's
//                                         ring can ever hold (64 slots), or (push) than the guest's buffers
export const VQ_DROP_BAD: u32 = 96; // u64: frames dropped: shorter than the header, or (push) bad slots
export const VQ_STALLS: u32 = 104; // u64: push found too few guest buffers and left a frame in the ring
export const VQ_CALLS: u32 = 112; // u64: interrupts asked for (VQ_CALL went 0 → 1)
// u32 (a u16 value): the used->idx published. Equal to VQ_LAST_AVAIL at rest; on a TX queue it
// is behind while zero-copy chains wait for the switch (vq_complete catches up)
export const VQ_USED_IDX: u32 = 120;
export const VQ_ZC_FROM: u32 = 124; // u32: first tx slot of this pass's zero-copy frames, VQ_ZC_NONE if none
// Direct receive (an RX queue; see vq_rx_open): chains the switch filled in this pass, the avail
// chains known (both counted from VQ_LAST_AVAIL), and whether it may go on (VQ_RX_*).
export const VQ_RX_TAKEN: u32 = 128; // u32
export const VQ_RX_KNOWN: u32 = 132; // u32
export const VQ_RX_STATE: u32 = 136; // u32: VQ_RX_ASK (not asked this pass), VQ_RX_OPEN, VQ_RX_SHUT
export const VQ_RX_DIRECT: u32 = 144; // u64: frames written straight into the guest's buffers (of VQ_FRAMES)
const VQ_RX_ASK: u32 = 0, VQ_RX_OPEN: u32 = 1, VQ_RX_SHUT: u32 = 2;
const VQ_SIG_VALID: u32 = 0x10000;

// negotiated features that change the datapath (the host maps the virtio feature bits)
export const VQF_EVENT_IDX: u32 = 1; // VIRTIO_RING_F_EVENT_IDX (bit 29)
export const VQF_MRG_RXBUF: u32 = 2; // VIRTIO_NET_F_MRG_RXBUF (bit 15)
export const VQF_INDIRECT: u32 = 4; // VIRTIO_RING_F_INDIRECT_DESC (bit 28)

// why a queue broke (VQ_BROKEN) or vq_setup refused it
export const VQE_AVAIL_IDX: i32 = 1; // avail->idx more than num ahead of the used idx (or went back)
export const VQE_DESC_INDEX: i32 = 2; // a head or next index ≥ num (≥ the indirect table's entries)
export const VQE_ADDR: i32 = 3; // a buffer or indirect table not inside one guest memory region
export const VQE_WRITABLE: i32 = 4; // a device-writable descriptor in a TX chain
export const VQE_READONLY: i32 = 5; // a device-readable descriptor in an RX chain
export const VQE_INDIRECT: i32 = 6; // an indirect descriptor, INDIRECT_DESC not negotiated
export const VQE_NESTED: i32 = 7; // an indirect descriptor inside an indirect table
export const VQE_INDIRECT_LEN: i32 = 8; // an indirect table of 0 or not 16×k bytes, > 32768 entries, or with NEXT
export const VQE_LOOP: i32 = 9; // a chain longer than the queue (or its table): it loops
export const VQE_NUM: i32 = 10; // vq_setup: num is 0, not a power of 2, or > 32768
export const VQE_RING: i32 = 11; // vq_setup/vq_remap: a ring not inside guest memory, or misaligned

export const VQ_MAX_NUM: u32 = 32768;
export const VQ_HDR_LEN: u32 = 12; // struct virtio_net_hdr_v1 (VIRTIO_F_VERSION_1)
export const VQ_MAX_FRAME: u32 = 65536 + VQ_HDR_LEN; // the largest TX chain taken (TSO)
// Descriptors walked per call before no further chain is started: a guest's long chains cost
// it throughput, never the switch a stall (one chain is at most num + 32768 descriptors).
export const VQ_WALK_BUDGET: u32 = 65536;
// Zero-copy TX (issue #17): a frame whose last descriptor holds more than VQ_ZC_MIN bytes past
// the first VQ_ZC_PREFIX (the virtio-net header and all a lookup, an offload check or a
// forwarding function reads, FN_HDR_MAX) takes two slots: the prefix copied into the slot's
// own buffer (MOREFRAG), then a slot marked NS_INDIRECT whose bytes stay in guest memory, its
// bounds-checked wasm address in the kring's private KR_PTRS array. The switch copies them
// straight to the receiver; the chain goes on the used ring only then (vq_complete, within
// the same pass). Shorter rests are copied: one copy of a few hundred bytes costs less than
// the indirection, and copy_frag's 16-byte rounding (short fragments) never reaches guest
// memory. A rest is at most the port's buffer size, so every fragment fits any buffer as before.
export const VQ_ZC_PREFIX: u32 = VQ_HDR_LEN + FN_HDR_MAX;
export const VQ_ZC_MIN: u32 = 256;
export const VQ_ZC_NONE: u32 = 0xffffffff;
export const VQ_PTR_SIZE: u32 = KR_PTR_SIZE; // a KR_PTRS entry: u32 wasm address (0: none), u32 chain id

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESC_F_INDIRECT: u16 = 4;
const AVAIL_F_NO_INTERRUPT: u16 = 1;
const USED_F_NO_NOTIFY: u16 = 1;
const HDR_NUM_BUFFERS: u32 = 10; // u16 in virtio_net_hdr_v1
const SLOT_LEN_MAX: u32 = 0xffff; // a netmap slot's len is a u16

/** Zero a record: not set up, disabled, counters 0. */
export function vq_init(vq: usize): void { memory.fill(vq, 0, VQ_SIZE); store<u32>(vq, VQ_ZC_NONE, VQ_ZC_FROM); }

// The rings, translated through mt and checked: sizes inside one region each (used_event and
// avail_event included), and aligned as the spec says — avail and used carry atomically
// accessed u16 words, and an unaligned atomic access would trap.
function map_rings(vq: usize, mt: usize, num: u32): i32 {
  // windowed guest memory: the host mapped (and pinned) the rings' chunks before this; a ring
  // is at most 512 KiB, so it is contiguous in its slot (mt_piece == its size)
  const d = mt_uva(mt, load<u64>(vq, VQ_DESC_UVA), <u64>(16 * num));
  const dp = mt_piece;
  const a = mt_uva(mt, load<u64>(vq, VQ_AVAIL_UVA), <u64>(6 + 2 * num));
  const ap = mt_piece;
  const u = mt_uva(mt, load<u64>(vq, VQ_USED_UVA), <u64>(6 + 8 * num));
  if (d <= MT_MISSED || a <= MT_MISSED || u <= MT_MISSED || dp != <u64>(16 * num) || ap != <u64>(6 + 2 * num) ||
    mt_piece != <u64>(6 + 8 * num) || (d & 15) != 0 || (a & 1) != 0 || (u & 3) != 0) return VQE_RING;
  store<u32>(vq, <u32>d, VQ_DESC);
  store<u32>(vq, <u32>a, VQ_AVAIL);
  store<u32>(vq, <u32>u, VQ_USED);
  return 0;
}

/**
 * Set a queue up from what VHOST_USER_SET_VRING_NUM / _BASE / _ADDR and SET_FEATURES said:
 * ring addresses are QEMU user addresses, translated here. Returns 0, or VQE_NUM / VQE_RING
 * (then the queue stays broken with that reason). Clears an earlier break and the interrupt
 * state; counters and VQ_ENABLED are kept (vq_enable turns the queue on).
 */
export function vq_setup(vq: usize, mt: usize, num: u32, desc: u64, avail: u64, used: u64,
                         features: u32, last_avail: u32): i32 {
  store<u32>(vq, 0, VQ_NUM);
  store<u64>(vq, desc, VQ_DESC_UVA);
  store<u64>(vq, avail, VQ_AVAIL_UVA);
  store<u64>(vq, used, VQ_USED_UVA);
  store<u32>(vq, features, VQ_FEATURES);
  store<u32>(vq, last_avail & 0xffff, VQ_LAST_AVAIL);
  store<u32>(vq, last_avail & 0xffff, VQ_USED_IDX);
  store<u32>(vq, VQ_ZC_NONE, VQ_ZC_FROM); // vq_complete ran before (the host settles a queue it stops)
  store<u32>(vq, 0, VQ_CALL);
  store<u32>(vq, 0, VQ_SIGNALLED); // the first completion always interrupts (as vhost does)
  store<u32>(vq, VQ_RX_ASK, VQ_RX_STATE);
  store<u32>(vq, 0, VQ_RX_TAKEN);
  let err: i32 = 0;
  if (num == 0 || num > VQ_MAX_NUM || (num & (num - 1)) != 0) err = VQE_NUM;
  else err = map_rings(vq, mt, num);
  store<i32>(vq, err, VQ_BROKEN);
  if (err == 0) store<u32>(vq, num, VQ_NUM);
  return err;
}

/** Translate the rings again after the memory table changed. Returns 0, or VQE_RING (the
 *  queue breaks); a queue broken before stays broken (only vq_setup mends it). */
export function vq_remap(vq: usize, mt: usize): i32 {
  const num = load<u32>(vq, VQ_NUM);
  if (num == 0) return load<i32>(vq, VQ_BROKEN) != 0 ? load<i32>(vq, VQ_BROKEN) : VQE_NUM;
  const err = map_rings(vq, mt, num);
  if (err != 0) store<i32>(vq, err, VQ_BROKEN);
  return err;
}

/** VHOST_USER_SET_VRING_ENABLE: a disabled queue is left alone by pull and push. */
export function vq_enable(vq: usize, on: bool): void { store<u32>(vq, on ? 1 : 0, VQ_ENABLED); }

/** VHOST_USER_GET_VRING_BASE: where the guest resumes (disable the queue first). */
export function vq_base(vq: usize): u32 { return load<u32>(vq, VQ_LAST_AVAIL); }

/** The VQE_* that broke the queue, 0 while healthy. */
export function vq_error(vq: usize): i32 { return load<i32>(vq, VQ_BROKEN); }

/** Should the guest be interrupted (its call eventfd written)? Clears the request. */
export function vq_take_call(vq: usize): bool {
  const c = load<u32>(vq, VQ_CALL);
  store<u32>(vq, 0, VQ_CALL);
  return c != 0;
}

@inline function vq_ready(vq: usize): bool {
  return load<u32>(vq, VQ_NUM) != 0 && load<u32>(vq, VQ_ENABLED) != 0 && load<i32>(vq, VQ_BROKEN) == 0;
}

function vq_break(vq: usize, code: i32): void { store<i32>(vq, code, VQ_BROKEN); }

/**
 * A backend about to sleep: ask the guest to kick on its next buffer (avail_event =
 * last_avail with EVENT_IDX, else clear VRING_USED_F_NO_NOTIFY), then look again. Returns
 * true when avail->idx moved meanwhile (work arrived: do not sleep), false to sleep. As in
 * csb.ts, the store and the re-check are both atomic, so one side always sees the other.
 */
export function vq_want_kick(vq: usize): bool {
  if (!vq_ready(vq)) return false;
  const num = load<u32>(vq, VQ_NUM);
  const avail = <usize>load<u32>(vq, VQ_AVAIL), used = <usize>load<u32>(vq, VQ_USED);
  const last = load<u32>(vq, VQ_LAST_AVAIL);
  if (load<u32>(vq, VQ_FEATURES) & VQF_EVENT_IDX) atomic.store<u16>(used + 4 + <usize>(8 * num), <u16>last);
  else atomic.store<u16>(used, 0);
  return <u32>atomic.load<u16>(avail, 2) != last;
}

// ---- descriptor chains -------------------------------------------------------------------
// One chain is walked at a time (per instance: each worker has its own globals), so its state
// lives in globals: no allocation, and chain_next stays small enough to inline.
let w_tab: usize = 0; // the table being walked: the queue's, or an indirect one
let w_tabn: u32 = 0; // its entries
let w_i: u32 = 0; // the next entry
let w_more: bool = false; // there is a next entry
let w_ind: bool = false; // inside an indirect table
let w_cnt: u32 = 0; // entries taken from this table
let w_addr: usize = 0; // chain_next's answer: a checked buffer in wasm memory
let w_len: u32 = 0;
let w_rgpa: u64 = 0; // the rest of a descriptor cut at a window slot's end: where it goes on,
let w_rest: u32 = 0; // and its bytes (0: none)
let walked: u32 = 0; // descriptors read in this call (VQ_WALK_BUDGET)

/** chain_next: a buffer's chunk of windowed guest memory is not mapped. Not a fault of the
 *  guest: the caller stops without consuming the chain, the host maps the chunk (mt MT_MISS_*
 *  says which), and the pass runs again. */
export const VQ_MISS: i32 = -64;

@inline function chain_start(vq: usize, head: u32): void {
  w_tab = <usize>load<u32>(vq, VQ_DESC);
  w_tabn = load<u32>(vq, VQ_NUM);
  w_i = head;
  w_more = true;
  w_ind = false;
  w_cnt = 0;
  w_rest = 0;
}

// The buffer [addr, addr+len) (checked inside one region) for chain_next: translated when the
// caller will touch it (`use`), else only checked (w_addr 0). A windowed one may come in
// pieces (w_rest left for the next call). 1, -VQE_ADDR, or VQ_MISS.
@inline function piece(mt: usize, addr: u64, len: u32, use: bool): i32 {
  if (!use) {
    if (!mt_has(mt, addr, <u64>len)) return -VQE_ADDR;
    w_addr = 0; w_len = len; w_rest = 0;
    return 1;
  }
  const a = mt_gpa(mt, addr, <u64>len);
  if (a == 0) return -VQE_ADDR;
  if (a == MT_MISSED) return VQ_MISS;
  const p = <u32>mt_piece;
  w_addr = a; w_len = p;
  w_rest = len - p; w_rgpa = addr + <u64>p;
  return 1;
}

/**
 * The chain's next non-empty buffer: 1 (w_addr, w_len set, inside guest memory), 0 at the end
 * of the chain, or -VQE_* for a malformed chain. Each descriptor is read once. Buffers of
 * zero length are skipped without translation (nothing is touched through them). A chain
 * may hold at most num descriptors, an indirect table at most its own entries: more loops.
 * Windowed guest memory: a buffer may come in pieces (one descriptor, several calls), one the
 * caller will not touch (`use` false) is only checked (w_addr 0), and VQ_MISS says a chunk is
 * not mapped (the caller stops without consuming the chain).
 */
function chain_next(mt: usize, feat: u32, write: bool, use: bool = true): i32 {
  if (w_rest != 0) return piece(mt, w_rgpa, w_rest, use);
  while (w_more) {
    if (w_i >= w_tabn) return -VQE_DESC_INDEX;
    if (++w_cnt > w_tabn) return -VQE_LOOP;
    walked++;
    const d = w_tab + (<usize>w_i << 4);
    const addr = load<u64>(d, 0);
    const len = load<u32>(d, 8);
    const flags = load<u16>(d, 12);
    const next = load<u16>(d, 14);
    if (flags & DESC_F_INDIRECT) {
      if ((feat & VQF_INDIRECT) == 0) return -VQE_INDIRECT;
      if (w_ind) return -VQE_NESTED;
      if ((flags & DESC_F_NEXT) != 0 || len == 0 || (len & 15) != 0 || len > VQ_MAX_NUM * 16) return -VQE_INDIRECT_LEN;
      const t = mt_gpa(mt, addr, <u64>len);
      if (t == MT_MISSED) return VQ_MISS;
      if (t == 0 || mt_piece != <u64>len) return -VQE_ADDR; // ≤ 512 KiB: always whole in its slot
      w_tab = t;
      w_tabn = len >> 4;
      w_i = 0;
      w_ind = true;
      w_cnt = 0;
      continue;
    }
    if (((flags & DESC_F_WRITE) != 0) != write) return write ? -VQE_READONLY : -VQE_WRITABLE;
    w_more = (flags & DESC_F_NEXT) != 0;
    w_i = <u32>next;
    if (len == 0) continue;
    return piece(mt, addr, len, use);
  }
  return 0;
}

// avail->idx, checked against the used idx published at the start of this call (`start`):
// the guest may have at most num chains outstanding, and it never takes one back (`taken` of
// them are ours already). Returns the chains available beyond those, or -1 after breaking.
function avail_fresh(vq: usize, avail: usize, num: u32, start: u32, taken: u32): i32 {
  const p = (<u32>atomic.load<u16>(avail, 2) - start) & 0xffff;
  if (p > num || p < taken) { vq_break(vq, VQE_AVAIL_IDX); return -1; }
  return <i32>(p - taken);
}

@inline function need_event(ev: u32, nw: u32, old: u32): bool { return ((nw - ev - 1) & 0xffff) < ((nw - old) & 0xffff); }

// Publish used->idx = `uidx` (after the elements; `ustart` was published before) and decide on
// an interrupt.
function publish_used(vq: usize, ustart: u32, uidx: u32): void {
  store<u32>(vq, uidx, VQ_USED_IDX);
  if (uidx == ustart) return;
  const num = load<u32>(vq, VQ_NUM);
  const avail = <usize>load<u32>(vq, VQ_AVAIL), used = <usize>load<u32>(vq, VQ_USED);
  atomic.store<u16>(used, <u16>uidx, 2);
  let call: bool;
  if (load<u32>(vq, VQ_FEATURES) & VQF_EVENT_IDX) {
    const sig = load<u32>(vq, VQ_SIGNALLED);
    const ev = <u32>atomic.load<u16>(avail + 4 + <usize>(2 * num));
    call = (sig & VQ_SIG_VALID) == 0 || need_event(ev, uidx, sig & 0xffff);
  } else {
    call = (atomic.load<u16>(avail) & AVAIL_F_NO_INTERRUPT) == 0;
  }
  store<u32>(vq, uidx | VQ_SIG_VALID, VQ_SIGNALLED);
  if (call && load<u32>(vq, VQ_CALL) == 0) {
    store<u32>(vq, 1, VQ_CALL);
    store<u64>(vq, load<u64>(vq, VQ_CALLS) + 1, VQ_CALLS);
  }
}

// End of a pull or push: publish used->idx (ustart → uidx), suppress kicks while we run,
// decide on an interrupt, add up the counters.
function finish(vq: usize, ustart: u32, uidx: u32, last: u32, frames: u32, bytes: u64, chains: u32, big: u32, bad: u32): void {
  const used = <usize>load<u32>(vq, VQ_USED);
  const feat = load<u32>(vq, VQ_FEATURES);
  store<u32>(vq, last, VQ_LAST_AVAIL);
  // no kicks while we run (vq_want_kick asks again before sleeping). With EVENT_IDX that is
  // avail_event left where it is: the guest kicks only when its avail->idx crosses it, and it
  // already did (or vq_want_kick set it at what we had then); moving it up to `last` here would
  // ask for one kick after every pass. Without EVENT_IDX: VRING_USED_F_NO_NOTIFY.
  if ((feat & VQF_EVENT_IDX) == 0 && atomic.load<u16>(used) != USED_F_NO_NOTIFY) atomic.store<u16>(used, USED_F_NO_NOTIFY);
  publish_used(vq, ustart, uidx);
  store<u64>(vq, load<u64>(vq, VQ_FRAMES) + frames, VQ_FRAMES);
  store<u64>(vq, load<u64>(vq, VQ_BYTES) + bytes, VQ_BYTES);
  store<u64>(vq, load<u64>(vq, VQ_CHAINS) + chains, VQ_CHAINS);
  store<u64>(vq, load<u64>(vq, VQ_DROP_BIG) + big, VQ_DROP_BIG);
  store<u64>(vq, load<u64>(vq, VQ_DROP_BAD) + bad, VQ_DROP_BAD);
}

// Copy len bytes touching no byte outside [src, src+len) or [dst, dst+len) (guest buffers
// end anywhere, and a read past one could deliver bytes of other memory): up to 256 bytes in
// 16-byte strides, the last one overlapping the one before, inline; longer or shorter ones
// with memory.copy (V8 calls out for it: ~10 ns, which a 64-byte frame notices).
@inline export function copy_exact(dst: usize, src: usize, len: u32): void {
  if (len >= 16 && len <= 256) {
    const last = <usize>(len - 16);
    for (let o: usize = 0; o < last; o += 16) v128.store(dst + o, v128.load(src + o));
    v128.store(dst + last, v128.load(src + last));
  } else memory.copy(dst, src, len);
}

@inline function put_used(used: usize, mask: u32, at: u32, id: u32, len: u32): void {
  const u = used + 4 + <usize>((at & mask) << 3);
  store<u32>(u, id, 0);
  store<u32>(u, len, 4);
}

/** Chains touched ahead by vq_pull (touch_chains). */
const VQ_TOUCH_AHEAD: u32 = 32;

/**
 * Guest TX virtqueue → the port's tx ring `k`, as its user (like tpk_pull): up to `max` frames
 * copied into the free slots [head, tail), MOREFRAG on all but a frame's last slot, then head
 * = cur past them. A chain that does not fit in the free slots now is left for the next call;
 * one that never can (over VQ_MAX_FRAME bytes, or more than 64 slots) or is shorter than the
 * header is consumed and counted. Each chain taken goes on the used ring with len 0 — at once,
 * or for a zero-copy frame (the kring has KR_PTRS: see VQ_ZC_PREFIX) when vq_complete runs
 * after the switch's round. Returns frames moved; on a malformed chain the queue breaks and
 * what was done before stays done.
 */
export function vq_pull(vq: usize, mt: usize, k: usize, max: u32): i32 {
  if (!vq_ready(vq)) return 0;
  if (load<u32>(vq, VQ_ZC_FROM) != VQ_ZC_NONE) vq_complete(vq, k); // a pass that did not complete them
  const r = <usize>load<u32>(k, KR_RING);
  const n = load<u32>(k, KR_NSLOTS);
  let head = load<u32>(r, RING_HEAD);
  const tail = load<u32>(r, RING_TAIL);
  if (head >= n || tail >= n) return 0;
  let room = ring_dist(head, tail, n);
  const base = <usize>load<u32>(k, KR_BUF_BASE), bsize = load<u32>(k, KR_BUF_SIZE), nbufs = load<u32>(k, KR_NBUFS);
  // bytes one slot carries: a slot's len is a u16, so a 65536-byte buffer holds 65535 (a full
  // one stored as 65536 would read back as 0: the frame cut, its bytes lost uncounted)
  const cap = min(bsize, SLOT_LEN_MAX);
  const maxslots = min(NETMAP_MAX_FRAGS, n - 1); // what tx_scan accepts as one packet
  const num = load<u32>(vq, VQ_NUM), mask = num - 1;
  const avail = <usize>load<u32>(vq, VQ_AVAIL), used = <usize>load<u32>(vq, VQ_USED);
  const feat = load<u32>(vq, VQ_FEATURES);
  const ptrs = <usize>load<u32>(k, KR_PTRS); // 0: zero-copy off
  const start = load<u32>(vq, VQ_LAST_AVAIL);
  const ustart = load<u32>(vq, VQ_USED_IDX);
  let last = start, upos = ustart;
  let zfrom = VQ_ZC_NONE;
  let pend = avail_fresh(vq, avail, num, start, 0); // chains come in at the next call
  if (pend < 0) return 0;
  if (pend > 1) touch_chains(mt, <usize>load<u32>(vq, VQ_DESC), avail, num, start, min(<u32>pend, min(max, VQ_TOUCH_AHEAD)), true);
  walked = 0;
  let frames: u32 = 0, chains: u32 = 0, big: u32 = 0, bad: u32 = 0;
  let bytes: u64 = 0;
  while (pend > 0 && frames < max && walked < VQ_WALK_BUDGET) {
    const id = <u32>load<u16>(avail + 4 + <usize>((last & mask) << 1));
    if (id >= num) { vq_break(vq, VQE_DESC_INDEX); break; }
    chain_start(vq, id);
    // copy while the frame fits in the free slots; walk (and check) the whole chain anyway
    const lim = min(room, maxslots);
    let total: u32 = 0, nslots: u32 = 0, fill = cap;
    let toobig = false, copying = true, corrupt = false;
    let s: usize = 0, buf: usize = 0;
    let zaddr: usize = 0, zlen: u32 = 0; // zero-copy: the rest of the frame, in guest memory
    let rc: i32 = 0;
    while ((rc = chain_next(mt, feat, false, copying && !toobig)) == 1) {
      let len = w_len, src = w_addr;
      if (toobig || len > VQ_MAX_FRAME - total) { toobig = true; zlen = 0; continue; }
      total += len;
      if (ptrs != 0 && copying && !w_more && w_rest == 0 && total - len < cap && lim >= 2) {
        // the chain's last buffer, everything before it in the first slot: copy up to the
        // prefix, leave a long enough rest where it is
        const before = total - len;
        const pre = before < VQ_ZC_PREFIX ? min(len, VQ_ZC_PREFIX - before) : 0;
        const rest = len - pre;
        if (rest > VQ_ZC_MIN && rest <= cap) { zaddr = src + pre; zlen = rest; len = pre; }
      }
      while (copying && len > 0) {
        if (fill == cap) { // next slot
          if (nslots == lim) { copying = false; break; }
          if (nslots > 0) { store<u16>(s, <u16>cap, SLOT_LEN); store<u16>(s, NS_MOREFRAG, SLOT_FLAGS); }
          const si = head + nslots;
          s = r + RING_SLOTS + <usize>(SLOT_SIZE * (si >= n ? si - n : si));
          const idx = load<u32>(s, SLOT_BUF_IDX);
          if (idx < BUF_RESERVED || idx >= nbufs) { corrupt = true; copying = false; break; } // our ring is bad: stop
          buf = base + <usize>idx * <usize>bsize;
          fill = 0;
          nslots++;
        }
        const c = min(len, cap - fill);
        copy_exact(buf + fill, src, c);
        fill += c; src += c; len -= c;
      }
    }
    if (rc == VQ_MISS) break; // not consumed: taken again once the host mapped the chunk
    if (rc < 0) { vq_break(vq, -rc); break; }
    const zc = zlen != 0 && copying && nslots == 1;
    const need: u32 = zc ? 2 : (total + cap - 1) / cap;
    let defer = false;
    if (toobig || need > maxslots) big++;
    else if (total < VQ_HDR_LEN) bad++;
    else if (corrupt || need > room) break; // leave it for when the switch has freed slots
    else {
      let s2: usize = 0, si2: u32 = 0;
      if (zc) { // the slot after the prefix describes the rest; it keeps its own (checked) buffer
        si2 = head + 1 >= n ? head + 1 - n : head + 1;
        s2 = r + RING_SLOTS + <usize>(SLOT_SIZE * si2);
        const idx2 = load<u32>(s2, SLOT_BUF_IDX);
        if (idx2 < BUF_RESERVED || idx2 >= nbufs) break; // our ring is bad: stop
      }
      store<u16>(s, <u16>fill, SLOT_LEN);
      store<u16>(s, zc ? NS_MOREFRAG : 0, SLOT_FLAGS);
      if (zc) {
        store<u16>(s2, <u16>zlen, SLOT_LEN);
        store<u16>(s2, NS_INDIRECT, SLOT_FLAGS);
        const e = ptrs + <usize>(VQ_PTR_SIZE * si2);
        store<u32>(e, <u32>zaddr);
        store<u32>(e, id, 4);
        if (zfrom == VQ_ZC_NONE) zfrom = head;
        defer = true;
      }
      head += need; if (head >= n) head -= n;
      room -= need;
      frames++;
      bytes += total - VQ_HDR_LEN;
    }
    if (!defer) { put_used(used, mask, upos, id, 0); upos = (upos + 1) & 0xffff; }
    last = (last + 1) & 0xffff;
    pend--;
    chains++;
  }
  store<u32>(r, head, RING_HEAD);
  store<u32>(r, head, RING_CUR);
  store<u32>(vq, zfrom, VQ_ZC_FROM);
  finish(vq, ustart, upos, last, frames, bytes, chains, big, bad);
  return <i32>frames;
}

/**
 * After the switch's round: the zero-copy chains vq_pull left in tx ring `k` go on the used
 * ring, and their KR_PTRS entries are cleared, so no slot refers to guest memory past the
 * pass. A slot the switch has not taken (its ring broken, or no round ran) first gets its
 * bytes copied into its own buffer: it stays a whole frame that refers to nothing. The host
 * calls this before anything can change the guest's memory (every pass, and before a queue
 * stops or a memory table goes). Returns the chains completed.
 */
export function vq_complete(vq: usize, k: usize): i32 {
  const from = load<u32>(vq, VQ_ZC_FROM);
  if (from == VQ_ZC_NONE) return 0;
  store<u32>(vq, VQ_ZC_NONE, VQ_ZC_FROM);
  const ptrs = <usize>load<u32>(k, KR_PTRS);
  const r = <usize>load<u32>(k, KR_RING);
  const n = load<u32>(k, KR_NSLOTS);
  const head = load<u32>(r, RING_HEAD);
  if (ptrs == 0 || from >= n || head >= n) return 0;
  const span = ring_dist(from, head, n); // what the last vq_pull filled
  let took = ring_dist(from, load<u32>(k, KR_HWCUR), n); // of which the switch has taken
  if (took > span) took = 0;
  const base = <usize>load<u32>(k, KR_BUF_BASE), bsize = load<u32>(k, KR_BUF_SIZE), nbufs = load<u32>(k, KR_NBUFS);
  // a queue stopped or broken meanwhile gets no used entries (its rings may be gone)
  const live = load<u32>(vq, VQ_NUM) != 0 && load<i32>(vq, VQ_BROKEN) == 0;
  const mask = load<u32>(vq, VQ_NUM) - 1;
  const used = <usize>load<u32>(vq, VQ_USED);
  const ustart = load<u32>(vq, VQ_USED_IDX);
  let upos = ustart, done: u32 = 0;
  let i = from;
  for (let c: u32 = 0; c < span; c++) {
    const e = ptrs + <usize>(VQ_PTR_SIZE * i);
    const a = <usize>load<u32>(e);
    if (a != 0) {
      if (c >= took) {
        const s = r + RING_SLOTS + <usize>(SLOT_SIZE * i);
        const idx = load<u32>(s, SLOT_BUF_IDX), len = <u32>load<u16>(s, SLOT_LEN);
        if (idx >= BUF_RESERVED && idx < nbufs && len <= bsize) memory.copy(base + <usize>idx * <usize>bsize, a, len);
        store<u16>(s, load<u16>(s, SLOT_FLAGS) & ~NS_INDIRECT, SLOT_FLAGS);
      }
      if (live) { put_used(used, mask, upos, load<u32>(e, 4), 0); upos = (upos + 1) & 0xffff; }
      store<u32>(e, 0);
      done++;
    }
    i = ring_next(i, n);
  }
  if (live) publish_used(vq, ustart, upos);
  return <i32>done;
}

// rx source: the slots of one frame in the port's rx ring, re-checked as they are read
let s_ring: usize = 0, s_base: usize = 0, s_ptr: usize = 0;
let s_i: u32 = 0, s_end: u32 = 0, s_n: u32 = 0, s_left: u32 = 0, s_bsize: u32 = 0, s_nbufs: u32 = 0;

@inline function src_start(i: u32, end: u32): void { s_i = i; s_end = end; s_left = 0; }

// Copy c bytes of the frame to dst. A slot that went bad since the frame was gathered gives
// nothing (the rest of dst keeps what it held): never a read outside the port's buffers.
function src_copy(dst: usize, c: u32): void {
  while (c > 0) {
    if (s_left == 0) {
      if (s_i == s_end) return;
      const s = s_ring + RING_SLOTS + <usize>(SLOT_SIZE * s_i);
      const idx = load<u32>(s, SLOT_BUF_IDX);
      const len = <u32>load<u16>(s, SLOT_LEN);
      s_ptr = s_base + <usize>idx * <usize>s_bsize;
      s_left = idx < BUF_RESERVED || idx >= s_nbufs || len > s_bsize ? 0 : len;
      s_i = s_i + 1 == s_n ? 0 : s_i + 1;
      continue;
    }
    const m = min(c, s_left);
    copy_exact(dst, s_ptr, m);
    dst += m; s_ptr += m; s_left -= m; c -= m;
  }
}

// Touch-ahead (wasm has no prefetch): the guest's descriptors and buffers live in the cache of
// the guest's CPU, and each load from or store into one stalls on a cross-core miss; taken one
// frame at a time those misses are serialized. A prelude loop loading the descriptors and one
// byte of the buffers of the next chains (with `tail`, also the byte at the end of a frame of up
// to 2 KiB: a TX frame's last line) lets the CPU overlap them. The values touched decide nothing
// (the chains are read, once and checked, by the real walk after); a buffer byte is touched only
// where mt_peek finds it mapped (no miss recorded, nothing mapped). The sum goes to `touched`
// so the loads are not optimized away.
const VQ_TOUCH_MAX: u32 = 64;
let touched: u32 = 0;
@inline function touch_chains(mt: usize, desc: usize, avail: usize, num: u32, from: u32, cnt: u32, tail: bool = false): void {
  const mask = num - 1;
  let sink: u32 = 0;
  for (let i: u32 = 0; i < cnt; i++) {
    const id = <u32>load<u16>(avail + 4 + <usize>(((from + i) & mask) << 1));
    if (id >= num) break;
    const d = desc + (<usize>id << 4);
    const g = load<u64>(d);
    const a = mt_peek(mt, g);
    if (a != 0) sink += <u32>load<u8>(a);
    if (tail) {
      const len = load<u32>(d, 8);
      const b = len != 0 ? mt_peek(mt, g + <u64>(min(len, 2048) - 1)) : 0;
      if (b != 0) sink += <u32>load<u8>(b);
    }
  }
  touched += sink;
}

/**
 * The port's rx ring `k`, as its user (like tpk_push) → guest RX virtqueue. Each whole frame
 * (header + frame, MOREFRAG slots joined) is written into device-writable chains: with
 * MRG_RXBUF into as many as it needs, each used element with its own length, num_buffers set
 * in the header; without, into one chain (a frame larger than the chain is dropped and the
 * chain kept). When the guest has not posted enough buffers the frame stays in the ring and
 * a stall is counted (a frame larger than all num buffers together is dropped instead).
 * Frames with bad slots or shorter than the header are dropped and counted. Returns frames
 * delivered; on a malformed chain the queue breaks and the frame stays in the ring.
 */
export function vq_push(vq: usize, mt: usize, k: usize): i32 {
  // the frames the switch wrote straight into the guest's chains this pass come first
  const taken = load<u32>(vq, VQ_RX_TAKEN);
  store<u32>(vq, VQ_RX_ASK, VQ_RX_STATE);
  store<u32>(vq, 0, VQ_RX_TAKEN);
  const direct = taken != 0 ? rx_done(vq, k, taken) : 0;
  if (!vq_ready(vq)) return direct;
  const r = <usize>load<u32>(k, KR_RING);
  const n = load<u32>(k, KR_NSLOTS);
  let head = load<u32>(r, RING_HEAD);
  const tail = load<u32>(r, RING_TAIL);
  if (head >= n || tail >= n) return direct;
  // nothing to deliver: the guest's rings are not touched (their cache lines live with the
  // guest's CPU, and every pass would fetch them)
  if (head == tail) return direct;
  const bsize = load<u32>(k, KR_BUF_SIZE), nbufs = load<u32>(k, KR_NBUFS);
  s_ring = r; s_n = n; s_base = <usize>load<u32>(k, KR_BUF_BASE); s_bsize = bsize; s_nbufs = nbufs;
  const num = load<u32>(vq, VQ_NUM), mask = num - 1;
  const avail = <usize>load<u32>(vq, VQ_AVAIL), used = <usize>load<u32>(vq, VQ_USED);
  const feat = load<u32>(vq, VQ_FEATURES);
  const mrg = (feat & VQF_MRG_RXBUF) != 0;
  const start = load<u32>(vq, VQ_LAST_AVAIL);
  let last = start;
  let pend = avail_fresh(vq, avail, num, start, 0);
  if (pend < 0) return direct;
  touch_chains(mt, <usize>load<u32>(vq, VQ_DESC), avail, num, start, min(min(<u32>pend, ring_dist(head, tail, n)), VQ_TOUCH_MAX));
  walked = 0;
  let frames: u32 = 0, chains: u32 = 0, big: u32 = 0, bad: u32 = 0, stalls: u32 = 0;
  let bytes: u64 = 0;
  let broken = false;
  while (head != tail && walked < VQ_WALK_BUDGET) {
    // gather one whole frame [head, end); an unfinished one waits
    let i = head, total: u32 = 0, whole = false, ok = true;
    while (i != tail) {
      const s = r + RING_SLOTS + <usize>(SLOT_SIZE * i);
      const len = <u32>load<u16>(s, SLOT_LEN);
      const idx = load<u32>(s, SLOT_BUF_IDX);
      if (idx < BUF_RESERVED || idx >= nbufs || len > bsize) ok = false;
      total += len;
      i = i + 1 == n ? 0 : i + 1;
      if ((load<u16>(s, SLOT_FLAGS) & NS_MOREFRAG) == 0) { whole = true; break; }
    }
    if (!whole) break;
    const end = i;
    if (!ok || total < VQ_HDR_LEN) { bad++; head = end; continue; }
    // deliver into chains from `last` on; nothing is final until the frame is all written
    src_start(head, end);
    let cl = last, nch: u32 = 0, rem = total, fo: u32 = 0;
    let nb0: usize = 0, nb1: usize = 0; // where num_buffers' two bytes landed
    let nobuf = false, small = false, spent = false;
    while (rem > 0) {
      if (walked >= VQ_WALK_BUDGET) { spent = true; break; }
      if (pend == 0) {
        pend = avail_fresh(vq, avail, num, start, (cl - start) & 0xffff);
        if (pend < 0) { broken = true; break; }
        if (pend == 0) { nobuf = true; break; }
      }
      const id = <u32>load<u16>(avail + 4 + <usize>((cl & mask) << 1));
      if (id >= num) { vq_break(vq, VQE_DESC_INDEX); broken = true; break; }
      chain_start(vq, id);
      let wrote: u32 = 0, rc: i32 = 0;
      while (rem > 0) {
        rc = chain_next(mt, feat, true);
        if (rc != 1) break;
        const c = min(w_len, rem);
        if (fo <= HDR_NUM_BUFFERS && HDR_NUM_BUFFERS < fo + c) nb0 = w_addr + (HDR_NUM_BUFFERS - fo);
        if (fo <= HDR_NUM_BUFFERS + 1 && HDR_NUM_BUFFERS + 1 < fo + c) nb1 = w_addr + (HDR_NUM_BUFFERS + 1 - fo);
        src_copy(w_addr, c);
        fo += c; rem -= c; wrote += c;
      }
      if (rc < 0) { if (rc != VQ_MISS) vq_break(vq, -rc); broken = true; break; } // a miss: the frame waits, nothing consumed
      put_used(used, mask, cl, id, wrote);
      cl = (cl + 1) & 0xffff;
      pend--;
      nch++;
      if (rem > 0 && !mrg) { small = true; break; }
    }
    if (broken || spent) break;
    if (nobuf && !(mrg && last == start && nch == num)) { stalls++; break; } // the guest may post more
    if (nobuf || small) { // larger than the guest's buffers can ever be: drop it, keep the chains
      big++;
      pend += <i32>nch;
      head = end;
      continue;
    }
    if (nb1 != 0) { // always found: total ≥ 12 and every chunk is > 0 bytes
      store<u8>(nb0, <u8>nch);
      store<u8>(nb1, <u8>(nch >> 8));
    }
    last = cl;
    head = end;
    frames++;
    chains += nch;
    bytes += total - VQ_HDR_LEN;
  }
  store<u32>(r, head, RING_HEAD);
  store<u32>(r, head, RING_CUR);
  finish(vq, start, last, last, frames, bytes, chains, big, bad);
  store<u64>(vq, load<u64>(vq, VQ_STALLS) + stalls, VQ_STALLS);
  return <i32>frames + direct;
}

// ---- direct receive: one copy guest to guest (issue #17) ----------------------------------
// A frame for a vhost-user port whose RX queue runs is written by the switch (forward.ts
// deliver) straight into the guest's RX buffer, not into the port's rx ring buffer for vq_push
// to copy again. The ring slot still carries the frame (its length, NS_INDIRECT, the fragment
// count), and the rx kring's private KR_PTRS entry the buffer's checked address and the chain
// id: a capture of the port sees the bytes, and vq_push completes the chains in ring order.
// All within one pass: deliver takes chains only after the round began, vq_push (the same pass)
// puts them on the used ring and clears the entries, so no slot refers to guest memory between
// passes (where the host may stop the queue or replace the memory table).
//  - A chain is taken as its first descriptor alone: writable, not indirect, not empty, inside
//    a region mapped whole (read once here, checked with the memory table); a frame larger
//    than it spreads over the next chains with MRG_RXBUF (num_buffers), else goes the old way,
//    as does one larger than the first descriptor of a chain that has more (the old walk
//    fills the chain's descriptors in turn: a header posted apart stays the header's).
//  - Order: direct frames must be the first in the ring (the ring empty when the pass's first
//    one is written) and their chains the first in the avail ring; once any frame for the port
//    goes through the ring's buffers, the rest of the pass does too (VQ_RX_SHUT).
//  - Anything unusual (no chain, an indirect, multi-descriptor or too short one, a windowed
//    guest) is not an error here: the frame goes through the ring, and vq_push's full walk
//    decides on that chain as before (breaking the queue if it is malformed).

/** The chain vq_rx_next found: its buffer's wasm address, usable bytes (≤ 65535: a slot's
 *  len), and id. */
export let rx_addr: usize = 0;
export let rx_cap: u32 = 0;
export let rx_id: u32 = 0;
export let rx_more: bool = false; // the chain has more descriptors (not written: see rx_direct)

/** May frames for rx kring `k` go straight into the guest's chains, the next one at ring slot
 *  j? Asked for each frame; decided at the pass's first ask (the queue runs, the ring is empty,
 *  the kring has its KR_PTRS array) and then open until vq_rx_shut. */
export function vq_rx_open(vq: usize, k: usize, j: u32): bool {
  const st = load<u32>(vq, VQ_RX_STATE);
  if (st != VQ_RX_ASK) return st == VQ_RX_OPEN;
  const ok = vq_ready(vq) && j == load<u32>(k, KR_HWCUR) && load<u32>(k, KR_PTRS) != 0;
  store<u32>(vq, ok ? VQ_RX_OPEN : VQ_RX_SHUT, VQ_RX_STATE);
  store<u32>(vq, 0, VQ_RX_TAKEN);
  store<u32>(vq, 0, VQ_RX_KNOWN);
  return ok;
}

/** deliver has `cnt` frames for the queue: touch the descriptors and first buffer bytes of the
 *  chains they will take (touch_chains), so their misses overlap before the writes. */
export function vq_rx_touch(vq: usize, mt: usize, cnt: u32): void {
  const num = load<u32>(vq, VQ_NUM);
  const avail = <usize>load<u32>(vq, VQ_AVAIL);
  const last = load<u32>(vq, VQ_LAST_AVAIL), taken = load<u32>(vq, VQ_RX_TAKEN);
  let known = load<u32>(vq, VQ_RX_KNOWN);
  if (taken + cnt > known) {
    const p = (<u32>atomic.load<u16>(avail, 2) - last) & 0xffff;
    if (p > num || p < known) return; // vq_push breaks the queue on it
    known = p;
    store<u32>(vq, known, VQ_RX_KNOWN);
  }
  if (known > taken) touch_chains(mt, <usize>load<u32>(vq, VQ_DESC), avail, num, last + taken, min(min(cnt, known - taken), VQ_TOUCH_MAX));
}

/** A frame for the port went through the ring's buffers: no direct one after it this pass. */
export function vq_rx_shut(vq: usize): void { store<u32>(vq, VQ_RX_SHUT, VQ_RX_STATE); }

/** The chain `ahead` places past those taken this pass: 1 with rx_addr / rx_cap / rx_id set,
 *  or 0 when there is none or it is not one vq_rx_next takes (see above). Takes nothing. */
export function vq_rx_next(vq: usize, mt: usize, ahead: u32): i32 {
  const num = load<u32>(vq, VQ_NUM), mask = num - 1;
  const avail = <usize>load<u32>(vq, VQ_AVAIL);
  const last = load<u32>(vq, VQ_LAST_AVAIL);
  const at = load<u32>(vq, VQ_RX_TAKEN) + ahead;
  let known = load<u32>(vq, VQ_RX_KNOWN);
  if (at >= known) { // look again; a guest taking chains back is vq_push's to break on
    const p = (<u32>atomic.load<u16>(avail, 2) - last) & 0xffff;
    if (p > num || p < known) return 0;
    known = p;
    store<u32>(vq, known, VQ_RX_KNOWN);
    if (at >= known) return 0;
  }
  const id = <u32>load<u16>(avail + 4 + <usize>(((last + at) & mask) << 1));
  if (id >= num) return 0;
  const d = <usize>load<u32>(vq, VQ_DESC) + (<usize>id << 4);
  const addr = load<u64>(d, 0);
  const len = load<u32>(d, 8);
  const flags = load<u16>(d, 12);
  if ((flags & (DESC_F_WRITE | DESC_F_INDIRECT)) != DESC_F_WRITE || len == 0) return 0;
  const cap = min(len, SLOT_LEN_MAX);
  const a = mt_whole(mt, addr, <u64>cap);
  if (a == 0) return 0;
  rx_addr = a; rx_cap = cap; rx_id = id; rx_more = (flags & DESC_F_NEXT) != 0;
  return 1;
}

/** `c` chains (from vq_rx_next's `ahead` 0..c-1) were filled with one frame. */
export function vq_rx_took(vq: usize, c: u32): void { store<u32>(vq, load<u32>(vq, VQ_RX_TAKEN) + c, VQ_RX_TAKEN); }

// vq_push's first step: the `taken` chains filled this pass are the first `taken` slots from
// the ring's head (vq_rx_open) and the first `taken` avail entries; their used elements go out
// (length = the slot's), their entries are cleared. Returns the frames.
function rx_done(vq: usize, k: usize, taken: u32): i32 {
  const r = <usize>load<u32>(k, KR_RING);
  const n = load<u32>(k, KR_NSLOTS);
  const ptrs = <usize>load<u32>(k, KR_PTRS);
  let i = load<u32>(r, RING_HEAD);
  if (ptrs == 0 || i >= n || taken >= n) return 0; // cannot be: vq_rx_open saw them
  const num = load<u32>(vq, VQ_NUM);
  const live = num != 0; // set up (its rings mapped); nothing stops a queue within a pass
  const mask = num - 1;
  const used = <usize>load<u32>(vq, VQ_USED);
  const start = load<u32>(vq, VQ_LAST_AVAIL);
  let upos = start, frames: u32 = 0, fl: u32 = 0;
  let bytes: u64 = 0;
  for (let c: u32 = 0; c < taken; c++) {
    const s = r + RING_SLOTS + <usize>(SLOT_SIZE * i);
    const e = ptrs + <usize>(VQ_PTR_SIZE * i);
    const len = <u32>load<u16>(s, SLOT_LEN), flags = load<u16>(s, SLOT_FLAGS);
    if (live) { put_used(used, mask, upos, load<u32>(e, 4), len); upos = (upos + 1) & 0xffff; }
    store<u64>(e, 0);
    store<u16>(s, flags & ~NS_INDIRECT, SLOT_FLAGS);
    fl += len;
    if ((flags & NS_MOREFRAG) == 0) { frames++; bytes += <u64>(fl > VQ_HDR_LEN ? fl - VQ_HDR_LEN : 0); fl = 0; }
    i = ring_next(i, n);
  }
  store<u32>(r, i, RING_HEAD);
  store<u32>(r, i, RING_CUR);
  if (!live) { store<u64>(vq, load<u64>(vq, VQ_DROP_BAD) + frames, VQ_DROP_BAD); return 0; }
  finish(vq, start, upos, upos, frames, bytes, taken, 0, 0);
  store<u64>(vq, load<u64>(vq, VQ_RX_DIRECT) + frames, VQ_RX_DIRECT);
  return <i32>frames;
}
