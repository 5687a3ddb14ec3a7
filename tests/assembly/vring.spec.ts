// The split-virtqueue datapath of assembly/virtio/vring.ts, driven as a virtio-net driver in a
// guest would drive it: guest RAM is two regions of fresh memory (data, and the rings with
// indirect tables), each between 0xEE guard zones, and the port's region sits between guards
// too (before it, the gap after its rings, reserved buffers 0 and 1, the slack after the last
// buffer, after it). Unit specs check bytes, lengths, flags and ring indices; the fuzz specs
// build thousands of random rings and check that nothing outside guest memory or the port's
// buffers was read or written.
import {
  hx_mem, hx_ring, hx_n, hx_slot, hx_idx, hx_len, hx_flags, hx_set_idx, hx_set_len, hx_set_flags, hx_head,
  hx_tail, hx_set_hc, hx_buf, hx_snap, hx_diff,
} from './helpers.include';
import {
  NS_MOREFRAG, RING_TAIL, RING_SLOTS, SLOT_SIZE, KR_HWTAIL, KR_NBUFS, KR_BUF_BASE, KR_BUF_SIZE,
  DIR_TX, DIR_RX, E_OK, E_INVAL, E_NOFIT, KR_PTRS, KR_HWCUR, NS_INDIRECT,
} from '../../assembly/abi';
import { region_span_size, region_priv_size, region_init, region_kring } from '../../assembly/region';
import { ring_dist } from '../../assembly/ring';
import {
  VQ_SIZE, VQ_FRAMES, VQ_BYTES, VQ_CHAINS, VQ_DROP_BIG, VQ_DROP_BAD, VQ_STALLS, VQ_CALLS, VQ_CALL,
  VQF_EVENT_IDX, VQF_MRG_RXBUF, VQF_INDIRECT, VQE_AVAIL_IDX, VQE_DESC_INDEX, VQE_ADDR, VQE_WRITABLE,
  VQE_READONLY, VQE_INDIRECT, VQE_NESTED, VQE_INDIRECT_LEN, VQE_LOOP, VQE_NUM, VQE_RING,
  vq_init, vq_setup, vq_remap, vq_enable, vq_base, vq_error, vq_take_call, vq_want_kick, vq_pull, vq_push,
  VQ_RX_DIRECT, vq_rx_open, vq_rx_next, vq_rx_took, vq_rx_shut, rx_addr, rx_cap, rx_id, rx_more,
} from '../../assembly/virtio/vring';
import { MT_SIZE, MT_MAX, MT_SHIFT, MT_MISS, MT_MISS_CHUNK, MT_MISSES, MT_CE_SIZE, mt_init, mt_count, mt_add, mt_add_window, mt_del, mt_gpa, mt_uva } from '../../assembly/virtio/guestmem';

// ---- a guest ---------------------------------------------------------------------------
const GUARD: u32 = 8192;
const GSIZE: u32 = 65536;
const GPA_D: u64 = 0x40000000; // data region: guest physical, QEMU user address
const UVA_D: u64 = 0x7f0000000000;
const GPA_R: u64 = 0x100000000; // ring region
const UVA_R: u64 = 0x7f1000000000;
const AVAIL_OFF: u32 = 16384; // in the ring region: desc table at 0 (num ≤ 1024)
const USED_OFF: u32 = 20480;
const IND_OFF: u32 = 32768; // indirect tables
const F_NEXT: u16 = 1, F_WRITE: u16 = 2, F_IND: u16 = 4;
const EE: u64 = 0xEEEEEEEEEEEEEEEE;
const PGUARD: u32 = 8192;

class W {
  mt: usize = 0; d: usize = 0; r: usize = 0; vq: usize = 0; tmpl: usize = 0;
  tx: usize = 0; rx: usize = 0; pmem: usize = 0; pspan: u32 = 0; pgap: usize = 0; pbufs: usize = 0; pend: usize = 0;
  num: u32 = 0; aidx: u32 = 0;
}

/** The data byte at guest data offset j: never ≥ 0x80, and not periodic over small spans. */
function pat(j: u32): u8 { return <u8>(((j * 7) ^ (j >> 8) ^ (j >> 13)) & 0x7f); }

function guarded(bytes: u32): usize {
  const m = hx_mem(bytes + 2 * GUARD);
  memory.fill(m, 0xee, GUARD);
  memory.fill(m + GUARD + bytes, 0xee, GUARD);
  return m + GUARD;
}

/** A guest with both regions in a fresh memory table, and a port (nslots, bsize) in guards. */
function world(nslots: u32 = 32, bsize: u32 = 2048): W {
  const w = new W();
  w.d = guarded(GSIZE);
  for (let j: u32 = 0; j < GSIZE; j++) store<u8>(w.d + j, pat(j));
  w.tmpl = heap.alloc(GSIZE);
  memory.copy(w.tmpl, w.d, GSIZE);
  w.r = guarded(GSIZE);
  memory.fill(w.r, 0, GSIZE);
  w.mt = heap.alloc(MT_SIZE);
  mt_init(w.mt);
  assert(mt_add(w.mt, GPA_D, GSIZE, UVA_D, <u32>w.d) == E_OK, 'data region');
  assert(mt_add(w.mt, GPA_R, GSIZE, UVA_R, <u32>w.r) == E_OK, 'ring region');
  w.vq = heap.alloc(VQ_SIZE);
  vq_init(w.vq);
  // the port's region, between guards; the spaces inside it nobody may touch are guards too
  const span = region_span_size(1, 1, nslots, bsize, 0);
  w.pmem = hx_mem(span + 2 * PGUARD);
  w.pspan = span;
  const base = w.pmem + PGUARD;
  const desc = heap.alloc(region_priv_size(1, 1, nslots, 0));
  assert(region_init(desc, base, span, 1, 1, nslots, bsize, 0) == 0, 'region');
  w.tx = region_kring(desc, DIR_TX, 0);
  w.rx = region_kring(desc, DIR_RX, 0);
  const pool = <usize>load<u32>(w.tx, KR_BUF_BASE);
  w.pgap = hx_ring(w.rx) + RING_SLOTS + SLOT_SIZE * nslots; // the rx ring is the last one
  w.pbufs = pool + <usize>load<u32>(w.tx, KR_NBUFS) * bsize;
  w.pend = base + span + PGUARD;
  memory.fill(w.pmem, 0xee, PGUARD);
  memory.fill(w.pgap, 0xee, pool + 2 * bsize - w.pgap); // up to the pool, and buffers 0 and 1
  memory.fill(w.pbufs, 0xee, w.pend - w.pbufs);
  // the port's buffers hold data bytes too, so a frame read from anywhere else shows
  for (let j: u32 = 2 * bsize; j < <u32>(w.pbufs - pool); j++) store<u8>(pool + j, pat(j + 12345));
  return w;
}

function allEE(p: usize, len: usize): bool {
  for (let i: usize = 0; i + 8 <= len; i += 8) if (load<u64>(p + i) != EE) return false;
  for (let i: usize = len & ~7; i < len; i++) if (load<u8>(p + i) != 0xee) return false;
  return true;
}
/** Every guard byte still 0xEE. */
function guardsOk(w: W): bool {
  const bsize = load<u32>(w.tx, KR_BUF_SIZE);
  const pool = <usize>load<u32>(w.tx, KR_BUF_BASE);
  return allEE(w.d - GUARD, GUARD) && allEE(w.d + GSIZE, GUARD) && allEE(w.r - GUARD, GUARD) &&
    allEE(w.r + GSIZE, GUARD) && allEE(w.pmem, PGUARD) && allEE(w.pgap, pool + 2 * bsize - w.pgap) &&
    allEE(w.pbufs, w.pend - w.pbufs);
}
/** No byte ≥ 0x80 in [p, p+len): only data bytes, nothing from a guard. */
function clean(p: usize, len: u32): bool {
  let i: u32 = 0;
  for (; i + 8 <= len; i += 8) if ((load<u64>(p + i) & 0x8080808080808080) != 0) return false;
  for (; i < len; i++) if (load<u8>(p + i) >= 0x80) return false;
  return true;
}

function setup(w: W, num: u32, feat: u32, last: u32 = 0): i32 {
  memory.fill(w.r, 0, IND_OFF);
  w.num = num; w.aidx = last;
  atomic.store<u16>(w.r + AVAIL_OFF, 0, 2);
  store<u16>(w.r + AVAIL_OFF + 2, <u16>last);
  store<u16>(w.r + USED_OFF + 2, <u16>last);
  const rc = vq_setup(w.vq, w.mt, num, UVA_R, UVA_R + AVAIL_OFF, UVA_R + USED_OFF, feat, last);
  vq_enable(w.vq, true);
  return rc;
}
function dsc(w: W, i: u32, gpa: u64, len: u32, flags: u16, next: u32 = 0): void {
  const p = w.r + (<usize>i << 4);
  store<u64>(p, gpa); store<u32>(p, len, 8); store<u16>(p, flags, 12); store<u16>(p, <u16>next, 14);
}
/** An indirect table entry (tables live at IND_OFF in the ring region). */
function idsc(w: W, i: u32, gpa: u64, len: u32, flags: u16, next: u32 = 0): void {
  const p = w.r + IND_OFF + (<usize>i << 4);
  store<u64>(p, gpa); store<u32>(p, len, 8); store<u16>(p, flags, 12); store<u16>(p, <u16>next, 14);
}
function post(w: W, head: u32): void {
  store<u16>(w.r + AVAIL_OFF + 4 + 2 * (w.aidx & (w.num - 1)), <u16>head);
  w.aidx = (w.aidx + 1) & 0xffff;
  atomic.store<u16>(w.r + AVAIL_OFF, <u16>w.aidx, 2);
}
function usedIdx(w: W): u32 { return <u32>atomic.load<u16>(w.r + USED_OFF, 2); }
function usedId(w: W, at: u32): u32 { return load<u32>(w.r + USED_OFF + 4 + 8 * (at & (w.num - 1))); }
function usedLen(w: W, at: u32): u32 { return load<u32>(w.r + USED_OFF + 8 + 8 * (at & (w.num - 1))); }
function usedFlags(w: W): u32 { return <u32>load<u16>(w.r + USED_OFF); }
function availEvent(w: W): u32 { return <u32>load<u16>(w.r + USED_OFF + 4 + 8 * w.num); }
function setUsedEvent(w: W, v: u32): void { store<u16>(w.r + AVAIL_OFF + 4 + 2 * w.num, <u16>v); }
function setAvailFlags(w: W, v: u32): void { store<u16>(w.r + AVAIL_OFF, <u16>v); }
function gd(off: u32): u64 { return GPA_D + <u64>off; }
function cnt(w: W, at: u32): u64 { return load<u64>(w.vq + at); }
/** The tx ring as its user starts: head = cur = h, tail = t. */
function txRoom(w: W, h: u32, t: u32): void { hx_set_hc(w.tx, h, h); store<u32>(hx_ring(w.tx), t, RING_TAIL); }

// ---- the switch delivering frames into the port's rx ring -----------------------------
function fbyte(seed: u32, j: u32): u8 { return <u8>((seed * 13 + j * 5 + (j >> 9)) & 0x7f); }
/** One frame of len bytes (header included) at the rx ring's tail, in slots of chunk bytes. */
function rxPut(w: W, len: u32, seed: u32, chunk: u32 = 2048): void {
  const k = w.rx, n = hx_n(k);
  let t = hx_tail(k), off: u32 = 0;
  do {
    const l = min(chunk, len - off);
    const b = hx_buf(k, t);
    for (let j: u32 = 0; j < l; j++) store<u8>(b + j, fbyte(seed, off + j));
    hx_set_len(k, t, l);
    off += l;
    hx_set_flags(k, t, off < len ? NS_MOREFRAG : 0);
    t = (t + 1) % n;
  } while (off < len);
  store<u32>(hx_ring(k), t, RING_TAIL);
  store<u32>(k, t, KR_HWTAIL);
}
/** Guest bytes [p, p+len) are frame `seed`'s bytes from offset `from` (num_buffers excepted). */
function sameFrame(p: usize, len: u32, seed: u32, from: u32): bool {
  for (let j: u32 = 0; j < len; j++) {
    const o = from + j;
    if (o == 10 || o == 11) continue;
    if (load<u8>(p + j) != fbyte(seed, o)) return false;
  }
  return true;
}
function numBuffers(p: usize): u32 { return <u32>load<u16>(p, 10); }

// =========================================================================================
describe('memory table', () => {
  it('refuses zero sizes, wrap-around, wasm 0 or outside memory, overlaps, and a full table', () => {
    const mt = heap.alloc(MT_SIZE);
    mt_init(mt);
    const m = <u32>hx_mem(16 * 65536);
    expect(mt_add(mt, 0x1000, 0, 0x1000, m)).toBe(E_INVAL, 'zero size');
    expect(mt_add(mt, 0xfffffffffffff000, 0x2000, 0x1000, m)).toBe(E_INVAL, 'gpa wraps');
    expect(mt_add(mt, 0xfffffffffffff000, 0x1000, 0x1000, m)).toBe(E_INVAL, 'gpa ends at 2^64');
    expect(mt_add(mt, 0x1000, 0x1000, 0xffffffffffffff00, m)).toBe(E_INVAL, 'uva wraps');
    expect(mt_add(mt, 0x1000, 0x1000, 0x1000, 0)).toBe(E_INVAL, 'wasm 0');
    const top = <u64>memory.size() << 16;
    expect(mt_add(mt, 0x1000, 0x2000, 0x1000, <u32>(top - 0x1000))).toBe(E_INVAL, 'past the memory');
    expect(mt_add(mt, 0x1000, 0x100000000, 0x1000, m)).toBe(E_INVAL, 'wasm + size overflows u32');
    expect(mt_count(mt)).toBe(0);
    expect(mt_add(mt, 0x10000, 0x10000, 0x7000000, m)).toBe(E_OK);
    expect(mt_add(mt, 0x1f000, 0x2000, 0x9000000, m + 0x20000)).toBe(E_INVAL, 'gpa overlaps the end');
    expect(mt_add(mt, 0x0f000, 0x2000, 0x9000000, m + 0x20000)).toBe(E_INVAL, 'gpa overlaps the start');
    expect(mt_add(mt, 0x0, 0x100000, 0x9000000, m + 0x20000)).toBe(E_INVAL, 'gpa covers it');
    expect(mt_add(mt, 0x40000, 0x10000, 0x700f000, m + 0x20000)).toBe(E_INVAL, 'uva overlaps');
    expect(mt_add(mt, 0x40000, 0x10000, 0x9000000, m + 0x8000)).toBe(E_INVAL, 'wasm overlaps');
    expect(mt_add(mt, 0x20000, 0x10000, 0x7010000, m + 0x10000)).toBe(E_OK, 'adjacent everywhere is fine');
    for (let i: u32 = 2; i < MT_MAX; i++) expect(mt_add(mt, 0x100000 * i, 0x1000, 0x10000000 * i, m + 0x20000 + 0x1000 * i)).toBe(E_OK);
    expect(mt_count(mt)).toBe(MT_MAX);
    expect(mt_add(mt, 0x10000000, 0x1000, 0x90000000, m + 0x90000)).toBe(E_NOFIT, 'full');
    expect(mt_del(mt, 0x12345)).toBe(E_INVAL);
    expect(mt_del(mt, 0x200000)).toBe(E_OK);
    expect(mt_count(mt)).toBe(MT_MAX - 1);
    expect(mt_gpa(mt, 0x200000, 1)).toBe(0, 'removed');
    expect(mt_gpa(mt, 0x700000, 1)).toBe(m + 0x20000 + 0x7000, 'the moved entry still translates');
    expect(mt_add(mt, 0x10000000, 0x1000, 0x90000000, m + 0x90000)).toBe(E_OK, 'room again');
  });

  it('translates inside one region only: edges, straddling, and gpa+len wrap-around', () => {
    const mt = heap.alloc(MT_SIZE);
    mt_init(mt);
    const m = <u32>hx_mem(4 * 65536);
    expect(mt_add(mt, 0x10000, 0x10000, 0x7000000, m)).toBe(E_OK);
    expect(mt_add(mt, 0x20000, 0x10000, 0x7010000, m + 0x20000)).toBe(E_OK); // guest-adjacent, not in wasm
    expect(mt_add(mt, 0xffffffffffff0000, 0xffff, 0x8000000, m + 0x30000)).toBe(E_OK); // at the top of u64
    expect(mt_gpa(mt, 0x10000, 0x10000)).toBe(m, 'whole region');
    expect(mt_gpa(mt, 0x1ffff, 1)).toBe(m + 0xffff, 'last byte');
    expect(mt_gpa(mt, 0x1ffff, 2)).toBe(0, 'one past the end');
    expect(mt_gpa(mt, 0xffff, 1)).toBe(0, 'one before the start');
    expect(mt_gpa(mt, 0x10000, 0x10001)).toBe(0, 'one too long');
    expect(mt_gpa(mt, 0x1fff0, 0x20)).toBe(0, 'straddles two regions that are adjacent only in the guest');
    expect(mt_gpa(mt, 0x20000, 0x10)).toBe(m + 0x20000);
    expect(mt_gpa(mt, 0x10010, 0xfffffffffffffff8)).toBe(0, 'gpa + len wraps to inside the region');
    expect(mt_gpa(mt, 0xffffffffffff0100, 0xffffffffffffff00)).toBe(0, 'top region, len wraps');
    expect(mt_gpa(mt, 0xffffffffffff0100, 0xfeff)).toBe(m + 0x30100, 'top region, up to its end');
    expect(mt_gpa(mt, 0xffffffffffff0100, 0xff00)).toBe(0, 'top region, one past');
    expect(mt_gpa(mt, 0xffffffffffffffff, 1)).toBe(0, 'the last byte of u64 space is not in it');
    expect(mt_gpa(mt, 0, 0x10)).toBe(0);
    expect(mt_uva(mt, 0x7000000, 0x10000)).toBe(m, 'by user address');
    expect(mt_uva(mt, 0x700fff8, 8)).toBe(m + 0xfff8);
    expect(mt_uva(mt, 0x700fff8, 9)).toBe(0);
    expect(mt_uva(mt, 0x6ffffff, 1)).toBe(0);
    expect(mt_uva(mt, 0x7000010, 0xfffffffffffffff8)).toBe(0, 'uva + len wraps');
    expect(mt_uva(mt, 0x10000, 1)).toBe(0, 'a guest address is not a user address');
  });
});

// =========================================================================================
describe('vq_setup', () => {
  it('checks num, ring placement and alignment, and remaps after the table changes', () => {
    const w = world();
    expect(vq_setup(w.vq, w.mt, 3, UVA_R, UVA_R + AVAIL_OFF, UVA_R + USED_OFF, 0, 0)).toBe(VQE_NUM);
    expect(vq_error(w.vq)).toBe(VQE_NUM);
    expect(vq_setup(w.vq, w.mt, 0, UVA_R, UVA_R + AVAIL_OFF, UVA_R + USED_OFF, 0, 0)).toBe(VQE_NUM);
    expect(vq_setup(w.vq, w.mt, 65536, UVA_R, UVA_R + AVAIL_OFF, UVA_R + USED_OFF, 0, 0)).toBe(VQE_NUM);
    expect(vq_setup(w.vq, w.mt, 256, GPA_R, GPA_R + AVAIL_OFF, GPA_R + USED_OFF, 0, 0)).toBe(VQE_RING, 'guest addresses, not user ones');
    expect(vq_setup(w.vq, w.mt, 256, UVA_R + 8, UVA_R + AVAIL_OFF, UVA_R + USED_OFF, 0, 0)).toBe(VQE_RING, 'desc misaligned');
    expect(vq_setup(w.vq, w.mt, 256, UVA_R, UVA_R + AVAIL_OFF + 1, UVA_R + USED_OFF, 0, 0)).toBe(VQE_RING, 'avail misaligned');
    expect(vq_setup(w.vq, w.mt, 256, UVA_R, UVA_R + AVAIL_OFF, UVA_R + USED_OFF + 2, 0, 0)).toBe(VQE_RING, 'used misaligned');
    // the used ring with avail_event must fit: 6 + 8 × num bytes before the region's end
    expect(vq_setup(w.vq, w.mt, 256, UVA_R, UVA_R + AVAIL_OFF, UVA_R + GSIZE - 2052, 0, 0)).toBe(VQE_RING, 'used runs out by 2');
    expect(vq_setup(w.vq, w.mt, 256, UVA_R, UVA_R + AVAIL_OFF, UVA_R + GSIZE - 2056, 0, 0)).toBe(0, 'used fits');
    expect(vq_setup(w.vq, w.mt, 4096, UVA_R + 0x8000, UVA_R + AVAIL_OFF, UVA_R + USED_OFF, 0, 0)).toBe(VQE_RING, 'desc table runs out');
    expect(vq_setup(w.vq, w.mt, 256, UVA_R, UVA_R + GSIZE - 6 - 2 * 256 + 2, UVA_R + USED_OFF, 0, 0)).toBe(VQE_RING, 'avail runs out');
    expect(setup(w, 256, 0)).toBe(0);
    expect(vq_error(w.vq)).toBe(0);
    // a frame goes through; the table changes (the ring region moves in wasm memory); remap
    dsc(w, 0, gd(0), 100, 0); post(w, 0);
    txRoom(w, 0, 31);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    expect(mt_del(w.mt, GPA_R)).toBe(E_OK);
    expect(vq_remap(w.vq, w.mt)).toBe(VQE_RING);
    expect(vq_error(w.vq)).toBe(VQE_RING);
    const r2 = guarded(GSIZE);
    memory.copy(r2, w.r, GSIZE);
    expect(mt_add(w.mt, GPA_R, GSIZE, UVA_R, <u32>r2)).toBe(E_OK);
    w.r = r2;
    expect(vq_setup(w.vq, w.mt, 256, UVA_R, UVA_R + AVAIL_OFF, UVA_R + USED_OFF, 0, vq_base(w.vq))).toBe(0);
    post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1, 'works at the new place');
    expect(usedIdx(w)).toBe(2);
    expect(guardsOk(w)).toBe(true);
  });

  it('a disabled queue does nothing', () => {
    const w = world();
    expect(setup(w, 16, 0)).toBe(0);
    dsc(w, 0, gd(0), 100, 0); post(w, 0);
    txRoom(w, 0, 31);
    vq_enable(w.vq, false);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    expect(usedIdx(w)).toBe(0);
    expect(vq_want_kick(w.vq)).toBe(false);
    vq_enable(w.vq, true);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
  });
});

// =========================================================================================
describe('vq_pull (guest TX → port tx ring)', () => {
  // issue #15 ("not yet proven"): with 65536-byte buffers a full slot's length, stored in the
  // u16 slot len, became 0: the frame was cut and its bytes lost without a count
  it('65536-byte buffers: a frame of 65536 bytes (and one of 64 KiB + header) fills slots of at most 65535 bytes, no length stored as 0', () => {
    const w = world(8, 65536);
    expect(setup(w, 16, 0)).toBe(0);
    dsc(w, 0, gd(0), 65536, 0); // the whole data region: header + 65524 bytes
    post(w, 0);
    dsc(w, 1, gd(0), 12, F_NEXT, 2); // TSO: 12 + 65536
    dsc(w, 2, gd(0), 65536, 0);
    post(w, 1);
    txRoom(w, 0, 7);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(2);
    expect(hx_len(w.tx, 0)).toBe(65535);
    expect(hx_flags(w.tx, 0)).toBe(NS_MOREFRAG);
    expect(hx_len(w.tx, 1)).toBe(1);
    expect(hx_flags(w.tx, 1)).toBe(0);
    expect(memory.compare(hx_buf(w.tx, 0), w.d, 65535)).toBe(0);
    expect(load<u8>(hx_buf(w.tx, 1))).toBe(load<u8>(w.d + 65535));
    expect(hx_len(w.tx, 2)).toBe(65535);
    expect(hx_flags(w.tx, 2)).toBe(NS_MOREFRAG);
    expect(hx_len(w.tx, 3)).toBe(13);
    expect(hx_flags(w.tx, 3)).toBe(0);
    expect(memory.compare(hx_buf(w.tx, 2) + 12, w.d, 65523)).toBe(0);
    expect(memory.compare(hx_buf(w.tx, 3), w.d + 65523, 13)).toBe(0);
    expect(hx_head(w.tx)).toBe(4);
    expect(cnt(w, VQ_BYTES)).toBe(65524 + 65536);
    expect(guardsOk(w)).toBe(true);
  });

  it('one descriptor: header and frame in one slot, used element with len 0', () => {
    const w = world();
    expect(setup(w, 256, 0)).toBe(0);
    dsc(w, 5, gd(100), 12 + 60, 0);
    post(w, 5);
    txRoom(w, 3, 2); // wrapped: the user owns 31 slots from 3
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    expect(hx_head(w.tx)).toBe(4);
    expect(hx_len(w.tx, 3)).toBe(72);
    expect(hx_flags(w.tx, 3)).toBe(0);
    expect(memory.compare(hx_buf(w.tx, 3), w.d + 100, 72)).toBe(0);
    expect(usedIdx(w)).toBe(1);
    expect(usedId(w, 0)).toBe(5);
    expect(usedLen(w, 0)).toBe(0);
    expect(vq_base(w.vq)).toBe(1);
    expect(cnt(w, VQ_FRAMES)).toBe(1);
    expect(cnt(w, VQ_BYTES)).toBe(60);
    expect(cnt(w, VQ_CHAINS)).toBe(1);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0, 'nothing more');
    expect(guardsOk(w)).toBe(true);
  });

  it('several descriptors: the header alone, the frame split in two, joined in one slot', () => {
    const w = world();
    expect(setup(w, 8, 0)).toBe(0);
    dsc(w, 2, gd(5000), 12, F_NEXT, 7);
    dsc(w, 7, gd(300), 700, F_NEXT, 0);
    dsc(w, 0, gd(40000), 88, 0);
    post(w, 2);
    txRoom(w, 0, 31);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    const b = hx_buf(w.tx, 0);
    expect(hx_len(w.tx, 0)).toBe(800);
    expect(memory.compare(b, w.d + 5000, 12)).toBe(0);
    expect(memory.compare(b + 12, w.d + 300, 700)).toBe(0);
    expect(memory.compare(b + 712, w.d + 40000, 88)).toBe(0);
    expect(usedId(w, 0)).toBe(2);
    expect(usedIdx(w)).toBe(1);
  });

  it('a frame larger than a slot spans slots with MOREFRAG; a TSO frame of 64 KiB + header goes whole', () => {
    const w = world(64);
    expect(setup(w, 16, 0)).toBe(0);
    dsc(w, 0, gd(0), 12, F_NEXT, 1);
    dsc(w, 1, gd(1000), 3000, 0);
    post(w, 0);
    // TSO: 65536 + 12 bytes from one region in three descriptors
    dsc(w, 2, gd(0), 12, F_NEXT, 3);
    dsc(w, 3, gd(0), 40000, F_NEXT, 4);
    dsc(w, 4, gd(40000), 25536, 0);
    post(w, 2);
    txRoom(w, 0, 63);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(2);
    expect(hx_len(w.tx, 0)).toBe(2048);
    expect(hx_flags(w.tx, 0)).toBe(NS_MOREFRAG);
    expect(hx_len(w.tx, 1)).toBe(964);
    expect(hx_flags(w.tx, 1)).toBe(0);
    expect(memory.compare(hx_buf(w.tx, 0), w.d, 12)).toBe(0);
    expect(memory.compare(hx_buf(w.tx, 0) + 12, w.d + 1000, 2036)).toBe(0);
    expect(memory.compare(hx_buf(w.tx, 1), w.d + 1000 + 2036, 964)).toBe(0);
    // 65548 bytes: 32 full slots and 12 bytes
    for (let i: u32 = 2; i < 34; i++) {
      expect(hx_len(w.tx, i)).toBe(2048);
      expect(hx_flags(w.tx, i)).toBe(NS_MOREFRAG);
    }
    expect(hx_len(w.tx, 34)).toBe(12);
    expect(hx_flags(w.tx, 34)).toBe(0);
    expect(memory.compare(hx_buf(w.tx, 2), w.d, 12)).toBe(0);
    expect(memory.compare(hx_buf(w.tx, 2) + 12, w.d, 2036)).toBe(0);
    expect(memory.compare(hx_buf(w.tx, 34), w.d + 65536 - 12, 12)).toBe(0);
    expect(hx_head(w.tx)).toBe(35);
    expect(cnt(w, VQ_BYTES)).toBe(3000 + 65536);
    expect(guardsOk(w)).toBe(true);
  });

  it('too big or too short chains are consumed and counted, not forwarded, and the queue lives on', () => {
    const w = world(64);
    expect(setup(w, 16, 0)).toBe(0);
    dsc(w, 0, gd(0), 12, F_NEXT, 1);
    dsc(w, 1, gd(0), 40000, F_NEXT, 4);
    dsc(w, 4, gd(0), 25537, 0); // 65549 bytes: one too many
    post(w, 0);
    dsc(w, 2, gd(0), 11, 0); // shorter than the header
    post(w, 2);
    dsc(w, 3, gd(0), 60, 0);
    post(w, 3);
    txRoom(w, 0, 63);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    expect(hx_head(w.tx)).toBe(1);
    expect(hx_len(w.tx, 0)).toBe(60);
    expect(usedIdx(w)).toBe(3);
    expect(usedId(w, 0)).toBe(0); expect(usedId(w, 1)).toBe(2); expect(usedId(w, 2)).toBe(3);
    expect(cnt(w, VQ_DROP_BIG)).toBe(1);
    expect(cnt(w, VQ_DROP_BAD)).toBe(1);
    expect(cnt(w, VQ_CHAINS)).toBe(3);
    expect(vq_error(w.vq)).toBe(0);
    // with small buffers a 64 KiB frame needs more than the 64 slots a packet may have
    const v = world(128, 512);
    expect(setup(v, 16, 0)).toBe(0);
    dsc(v, 0, gd(0), 512 * 64 + 1, 0);
    post(v, 0);
    dsc(v, 1, gd(0), 512 * 64, 0);
    post(v, 1);
    txRoom(v, 0, 127);
    expect(vq_pull(v.vq, v.mt, v.tx, 64)).toBe(1);
    expect(hx_head(v.tx)).toBe(64);
    expect(cnt(v, VQ_DROP_BIG)).toBe(1);
  });

  it('no room for the whole frame: the chain waits, and goes when the switch frees slots', () => {
    const w = world();
    expect(setup(w, 16, 0)).toBe(0);
    dsc(w, 0, gd(0), 100, 0); post(w, 0);
    dsc(w, 1, gd(0), 3000, 0); post(w, 1); // two slots
    txRoom(w, 10, 12); // two free slots: the first frame fits, the second not
    const k12 = hx_snap(hx_buf(w.tx, 12), 2048), s12 = hx_snap(hx_slot(w.tx, 12), 16);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    expect(hx_diff(hx_buf(w.tx, 12), k12, 2048) + hx_diff(hx_slot(w.tx, 12), s12, 16)).toBe(0, 'slot 12 is not ours yet: untouched');
    expect(hx_head(w.tx)).toBe(11);
    expect(usedIdx(w)).toBe(1);
    expect(vq_base(w.vq)).toBe(1);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    expect(usedIdx(w)).toBe(1, 'still not consumed');
    store<u32>(hx_ring(w.tx), 13, RING_TAIL); // the switch took frames: two free slots now
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    expect(hx_head(w.tx)).toBe(13);
    expect(hx_flags(w.tx, 11)).toBe(NS_MOREFRAG);
    expect(hx_len(w.tx, 12)).toBe(3000 - 2048);
    expect(usedIdx(w)).toBe(2);
    expect(usedId(w, 1)).toBe(1);
  });

  it('max bounds the frames of one call; last_avail wraps at 2^16', () => {
    const w = world();
    expect(setup(w, 4, 0, 65534)).toBe(0);
    for (let i: u32 = 0; i < 4; i++) { dsc(w, i, gd(i * 100), 50 + i, 0); post(w, i); }
    txRoom(w, 0, 31);
    expect(vq_pull(w.vq, w.mt, w.tx, 3)).toBe(3);
    expect(vq_base(w.vq)).toBe(1);
    expect(usedIdx(w)).toBe(1);
    expect(vq_pull(w.vq, w.mt, w.tx, 3)).toBe(1);
    expect(usedIdx(w)).toBe(2);
    for (let i: u32 = 0; i < 4; i++) {
      expect(hx_len(w.tx, i)).toBe(50 + i);
      expect(usedId(w, 65534 + i)).toBe(i);
    }
  });

  it('indirect descriptors: a table of header and frame parts', () => {
    const w = world();
    expect(setup(w, 8, VQF_INDIRECT)).toBe(0);
    idsc(w, 0, gd(600), 12, F_NEXT, 2);
    idsc(w, 2, gd(9000), 500, F_NEXT, 1);
    idsc(w, 1, gd(20000), 30, 0);
    dsc(w, 4, GPA_R + IND_OFF, 16 * 3, F_IND | F_WRITE); // WRITE on the table itself is ignored
    post(w, 4);
    txRoom(w, 0, 31);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    const b = hx_buf(w.tx, 0);
    expect(hx_len(w.tx, 0)).toBe(542);
    expect(memory.compare(b, w.d + 600, 12)).toBe(0);
    expect(memory.compare(b + 12, w.d + 9000, 500)).toBe(0);
    expect(memory.compare(b + 512, w.d + 20000, 30)).toBe(0);
    expect(usedId(w, 0)).toBe(4);
    expect(vq_error(w.vq)).toBe(0);
  });

  it('a bad slot in our own ring stops the pull without consuming anything', () => {
    const w = world();
    expect(setup(w, 8, 0)).toBe(0);
    dsc(w, 0, gd(0), 100, 0); post(w, 0);
    txRoom(w, 0, 31);
    const keep = hx_idx(w.tx, 0);
    hx_set_idx(w.tx, 0, 1);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    expect(usedIdx(w)).toBe(0);
    expect(vq_error(w.vq)).toBe(0);
    expect(guardsOk(w)).toBe(true);
    hx_set_idx(w.tx, 0, keep);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
  });
});

// =========================================================================================
describe('vq_push (port rx ring → guest RX)', () => {
  it('frames into posted buffers, one chain each, num_buffers 1, used lens right', () => {
    const w = world();
    expect(setup(w, 16, 0)).toBe(0);
    dsc(w, 0, gd(0), 2048, F_WRITE); post(w, 0);
    dsc(w, 1, gd(4096), 2048, F_WRITE); post(w, 1);
    rxPut(w, 12 + 60, 1);
    rxPut(w, 12 + 1500, 2);
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(2);
    expect(hx_head(w.rx)).toBe(2);
    expect(usedIdx(w)).toBe(2);
    expect(usedId(w, 0)).toBe(0); expect(usedLen(w, 0)).toBe(72);
    expect(usedId(w, 1)).toBe(1); expect(usedLen(w, 1)).toBe(1512);
    expect(sameFrame(w.d, 72, 1, 0)).toBe(true);
    expect(sameFrame(w.d + 4096, 1512, 2, 0)).toBe(true);
    expect(numBuffers(w.d)).toBe(1);
    expect(numBuffers(w.d + 4096)).toBe(1);
    expect(load<u8>(w.d + 72)).toBe(pat(72), 'nothing written past the frame');
    expect(cnt(w, VQ_FRAMES)).toBe(2);
    expect(cnt(w, VQ_BYTES)).toBe(1560);
    expect(guardsOk(w)).toBe(true);
  });

  it('a frame of several slots into a chain with the header in its own descriptor', () => {
    const w = world(32, 1024);
    expect(setup(w, 16, 0)).toBe(0);
    dsc(w, 3, gd(100), 12, F_WRITE | F_NEXT, 9);
    dsc(w, 9, gd(8000), 4000, F_WRITE);
    post(w, 3);
    rxPut(w, 12 + 2500, 7, 1024); // three slots
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(1);
    expect(hx_head(w.rx)).toBe(3);
    expect(usedLen(w, 0)).toBe(2512);
    expect(sameFrame(w.d + 100, 12, 7, 0)).toBe(true);
    expect(numBuffers(w.d + 100)).toBe(1);
    expect(sameFrame(w.d + 8000, 2500, 7, 12)).toBe(true);
  });

  it('mergeable buffers: one frame over several small chains, num_buffers in the first', () => {
    const w = world();
    expect(setup(w, 8, VQF_MRG_RXBUF, 65535)).toBe(0);
    for (let i: u32 = 0; i < 5; i++) { dsc(w, i, gd(i * 2000), 1024, F_WRITE); post(w, i); }
    rxPut(w, 12 + 3000, 3);
    rxPut(w, 100, 4);
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(2);
    expect(usedIdx(w)).toBe(3); // 65535 + 4 chains
    expect(usedLen(w, 65535)).toBe(1024); expect(usedLen(w, 0)).toBe(1024); expect(usedLen(w, 1)).toBe(964);
    expect(usedId(w, 1)).toBe(2);
    expect(numBuffers(w.d)).toBe(3);
    expect(sameFrame(w.d, 1024, 3, 0)).toBe(true);
    expect(sameFrame(w.d + 2000, 1024, 3, 1024)).toBe(true);
    expect(sameFrame(w.d + 4000, 964, 3, 2048)).toBe(true);
    expect(usedId(w, 2)).toBe(3); expect(usedLen(w, 2)).toBe(100);
    expect(numBuffers(w.d + 6000)).toBe(1);
    expect(sameFrame(w.d + 6000, 100, 4, 0)).toBe(true);
    expect(cnt(w, VQ_CHAINS)).toBe(4);
    expect(guardsOk(w)).toBe(true);
  });

  it('without mergeable buffers a frame larger than the chain is dropped and the chain kept', () => {
    const w = world();
    expect(setup(w, 8, 0)).toBe(0);
    dsc(w, 0, gd(0), 1000, F_WRITE); post(w, 0);
    rxPut(w, 1500, 1);
    rxPut(w, 500, 2);
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(1);
    expect(hx_head(w.rx)).toBe(2);
    expect(cnt(w, VQ_DROP_BIG)).toBe(1);
    expect(usedIdx(w)).toBe(1);
    expect(usedLen(w, 0)).toBe(500);
    expect(sameFrame(w.d, 500, 2, 0)).toBe(true);
  });

  it('no buffers: the frame stays in the ring (a stall), and goes once buffers are posted', () => {
    const w = world();
    expect(setup(w, 8, VQF_MRG_RXBUF)).toBe(0);
    rxPut(w, 800, 5);
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(0);
    expect(hx_head(w.rx)).toBe(0);
    expect(cnt(w, VQ_STALLS)).toBe(1);
    dsc(w, 0, gd(0), 500, F_WRITE); post(w, 0); // not enough for 800 bytes
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(0);
    expect(hx_head(w.rx)).toBe(0);
    expect(usedIdx(w)).toBe(0, 'the partly used chain was not published');
    expect(cnt(w, VQ_STALLS)).toBe(2);
    dsc(w, 1, gd(1000), 500, F_WRITE); post(w, 1);
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(1);
    expect(hx_head(w.rx)).toBe(1);
    expect(usedIdx(w)).toBe(2);
    expect(numBuffers(w.d)).toBe(2);
    expect(sameFrame(w.d, 500, 5, 0)).toBe(true);
    expect(sameFrame(w.d + 1000, 300, 5, 500)).toBe(true);
    expect(usedLen(w, 1)).toBe(300);
  });

  it('a frame larger than all the guest buffers together is dropped, not stalled on forever', () => {
    const w = world();
    expect(setup(w, 2, VQF_MRG_RXBUF)).toBe(0);
    dsc(w, 0, gd(0), 100, F_WRITE); post(w, 0);
    dsc(w, 1, gd(200), 100, F_WRITE); post(w, 1);
    rxPut(w, 300, 1);
    rxPut(w, 150, 2);
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(1);
    expect(cnt(w, VQ_DROP_BIG)).toBe(1);
    expect(usedIdx(w)).toBe(2);
    expect(numBuffers(w.d)).toBe(2);
    expect(sameFrame(w.d, 100, 2, 0)).toBe(true);
    expect(sameFrame(w.d + 200, 50, 2, 100)).toBe(true);
  });

  it('frames with bad slots or shorter than the header are dropped and counted', () => {
    const w = world();
    expect(setup(w, 8, 0)).toBe(0);
    for (let i: u32 = 0; i < 3; i++) { dsc(w, i, gd(i * 2048), 2048, F_WRITE); post(w, i); }
    rxPut(w, 100, 1);
    rxPut(w, 11, 2);
    rxPut(w, 100, 3);
    rxPut(w, 100, 4);
    const keep = hx_idx(w.rx, 0);
    hx_set_idx(w.rx, 0, 0); // reserved buffer
    hx_set_len(w.rx, 2, 4000); // longer than the buffer
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(1);
    expect(hx_head(w.rx)).toBe(4);
    expect(cnt(w, VQ_DROP_BAD)).toBe(3);
    expect(sameFrame(w.d, 100, 4, 0)).toBe(true);
    expect(guardsOk(w)).toBe(true);
    hx_set_idx(w.rx, 0, keep);
  });

  it('an unfinished MOREFRAG chain at the tail waits for its last slot', () => {
    const w = world();
    expect(setup(w, 8, 0)).toBe(0);
    dsc(w, 0, gd(0), 4096, F_WRITE); post(w, 0);
    rxPut(w, 3000, 1);
    store<u32>(hx_ring(w.rx), 1, RING_TAIL); // only the first slot visible
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(0);
    expect(hx_head(w.rx)).toBe(0);
    expect(cnt(w, VQ_STALLS)).toBe(0);
    store<u32>(hx_ring(w.rx), 2, RING_TAIL);
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(1);
    expect(usedLen(w, 0)).toBe(3000);
  });
});

// =========================================================================================
describe('direct receive (vq_rx_*: the switch writes into the guest\'s buffers, vq_push completes)', () => {
  it('vq_rx_next takes a chain\'s first descriptor when usable, refuses the others, consumes nothing', () => {
    const w = world();
    expect(setup(w, 16, VQF_MRG_RXBUF)).toBe(0);
    store<u32>(w.rx, <u32>hx_mem(8 * 32), KR_PTRS);
    dsc(w, 0, gd(0), 2048, F_WRITE | F_NEXT, 7); post(w, 0);
    dsc(w, 1, gd(4096), 2048, 0); post(w, 1); // device-readable
    dsc(w, 2, GPA_R + IND_OFF, 32, F_IND); post(w, 2); // indirect
    dsc(w, 3, gd(GSIZE - 100), 2048, F_WRITE); post(w, 3); // runs past the region
    dsc(w, 4, gd(0), 70000, F_WRITE); post(w, 4); // longer than a slot: capped at 65535
    dsc(w, 5, gd(100), 0, F_WRITE); post(w, 5); // empty
    post(w, 99); // an id ≥ num
    expect(vq_rx_open(w.vq, w.rx, load<u32>(w.rx, KR_HWCUR))).toBe(true);
    expect(vq_rx_next(w.vq, w.mt, 0)).toBe(1);
    expect(rx_addr).toBe(w.d); expect(rx_cap).toBe(2048); expect(rx_id).toBe(0); expect(rx_more).toBe(true);
    for (let a: u32 = 1; a <= 3; a++) expect(vq_rx_next(w.vq, w.mt, a)).toBe(0);
    expect(vq_rx_next(w.vq, w.mt, 4)).toBe(1);
    expect(rx_cap).toBe(65535); expect(rx_more).toBe(false);
    expect(vq_rx_next(w.vq, w.mt, 5)).toBe(0);
    expect(vq_rx_next(w.vq, w.mt, 6)).toBe(0);
    expect(vq_rx_next(w.vq, w.mt, 7)).toBe(0, 'past avail->idx');
    expect(vq_base(w.vq)).toBe(0, 'nothing consumed');
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(0);
    expect(usedIdx(w)).toBe(0);
    expect(vq_error(w.vq)).toBe(0, 'nothing decided on a chain it did not take');
    expect(guardsOk(w)).toBe(true);
  });

  it('open only on an empty ring, once a pass; shut stays shut until vq_push', () => {
    const w = world();
    expect(setup(w, 16, 0)).toBe(0);
    store<u32>(w.rx, <u32>hx_mem(8 * 32), KR_PTRS);
    const hw = load<u32>(w.rx, KR_HWCUR);
    expect(vq_rx_open(w.vq, w.rx, hw + 1)).toBe(false, 'a frame waits in the ring');
    expect(vq_rx_open(w.vq, w.rx, hw)).toBe(false, 'decided for the pass');
    vq_push(w.vq, w.mt, w.rx);
    expect(vq_rx_open(w.vq, w.rx, hw)).toBe(true);
    vq_rx_shut(w.vq);
    expect(vq_rx_open(w.vq, w.rx, hw)).toBe(false);
    vq_push(w.vq, w.mt, w.rx);
    store<u32>(w.rx, 0, KR_PTRS);
    expect(vq_rx_open(w.vq, w.rx, hw)).toBe(false, 'no KR_PTRS array');
  });

  it('vq_push puts the chains filled directly on the used ring first, in order, clears their entries, then copies the rest', () => {
    const w = world();
    expect(setup(w, 16, VQF_MRG_RXBUF)).toBe(0);
    const ptrs = hx_mem(8 * 32);
    store<u32>(w.rx, <u32>ptrs, KR_PTRS);
    for (let i: u32 = 0; i < 4; i++) { dsc(w, i, gd(i * 4096), 2048, F_WRITE); post(w, i); }
    const k = w.rx, h = hx_head(k);
    expect(vq_rx_open(w.vq, k, load<u32>(k, KR_HWCUR))).toBe(true);
    // what deliver does for two frames: chains 0 and 1, slots h and h+1
    for (let f: u32 = 0; f < 2; f++) {
      expect(vq_rx_next(w.vq, w.mt, 0)).toBe(1);
      for (let j: u32 = 0; j < 72 + f; j++) store<u8>(rx_addr + j, fbyte(10 + f, j));
      store<u16>(rx_addr, 1, 10);
      hx_set_len(k, h + f, 72 + f);
      hx_set_flags(k, h + f, <u32>NS_INDIRECT | 256);
      store<u32>(ptrs + 8 * (h + f), <u32>rx_addr); store<u32>(ptrs + 8 * (h + f), rx_id, 4);
      vq_rx_took(w.vq, 1);
    }
    store<u32>(hx_ring(k), h + 2, RING_TAIL); store<u32>(k, h + 2, KR_HWTAIL);
    rxPut(w, 12 + 100, 3); // and one through the ring, after them
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(3);
    expect(usedIdx(w)).toBe(3);
    expect(usedId(w, 0)).toBe(0); expect(usedLen(w, 0)).toBe(72);
    expect(usedId(w, 1)).toBe(1); expect(usedLen(w, 1)).toBe(73);
    expect(usedId(w, 2)).toBe(2); expect(usedLen(w, 2)).toBe(112);
    expect(sameFrame(w.d + 2 * 4096, 112, 3, 0)).toBe(true);
    expect(load<u64>(ptrs + 8 * h)).toBe(0); expect(load<u64>(ptrs + 8 * (h + 1))).toBe(0);
    expect(hx_flags(k, h) & <u32>NS_INDIRECT).toBe(0);
    expect(hx_head(k)).toBe(h + 3);
    expect(cnt(w, VQ_RX_DIRECT)).toBe(2);
    expect(cnt(w, VQ_FRAMES)).toBe(3);
    expect(cnt(w, VQ_BYTES)).toBe(60 + 61 + 100);
    expect(vq_base(w.vq)).toBe(3);
    expect(guardsOk(w)).toBe(true);
  });
});

describe('notifications', () => {
  it('EVENT_IDX: avail_event only moves when about to sleep; a call exactly when used passes used_event', () => {
    const w = world();
    expect(setup(w, 16, VQF_EVENT_IDX)).toBe(0);
    for (let i: u32 = 0; i < 16; i++) dsc(w, i, gd(i * 128), 100, 0);
    txRoom(w, 0, 31);
    post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    expect(availEvent(w)).toBe(0, 'not moved while running: moving it would ask for a kick after every pass');
    expect(vq_take_call(w.vq)).toBe(true, 'the first completion always calls');
    expect(vq_take_call(w.vq)).toBe(false, 'taken');
    setUsedEvent(w, 3); // interrupt me when used->idx passes 3 (when entry 3 is used)
    post(w, 1); post(w, 2);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(2);
    expect(usedIdx(w)).toBe(3);
    expect(vq_take_call(w.vq)).toBe(false, 'used went 1 → 3: event 3 not passed');
    expect(availEvent(w)).toBe(0);
    expect(vq_want_kick(w.vq)).toBe(false, 'nothing new: may sleep');
    expect(availEvent(w)).toBe(3, 'about to sleep: kick me when you pass 3');
    post(w, 3);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    expect(vq_take_call(w.vq)).toBe(true, 'used went 3 → 4: passed 3');
    post(w, 4);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    expect(vq_take_call(w.vq)).toBe(false, 'used_event 3 is behind');
    setUsedEvent(w, 5);
    post(w, 5); post(w, 6); post(w, 7);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(3);
    expect(vq_take_call(w.vq)).toBe(true, 'used went 5 → 8 past 5');
    expect(cnt(w, VQ_CALLS)).toBe(3);
    // nothing completed: no call whatever used_event says
    setUsedEvent(w, 8);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    expect(vq_take_call(w.vq)).toBe(false);
    // going to sleep
    expect(vq_want_kick(w.vq)).toBe(false);
    expect(availEvent(w)).toBe(8);
    post(w, 8);
    expect(vq_want_kick(w.vq)).toBe(true, 'a chain arrived: do not sleep');
  });

  it('EVENT_IDX on the RX queue too: calls by used_event, avail_event set only to sleep', () => {
    const w = world();
    expect(setup(w, 8, VQF_EVENT_IDX | VQF_MRG_RXBUF)).toBe(0);
    for (let i: u32 = 0; i < 8; i++) { dsc(w, i, gd(i * 2048), 2048, F_WRITE); post(w, i); }
    rxPut(w, 100, 1);
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(1);
    expect(vq_take_call(w.vq)).toBe(true);
    expect(availEvent(w)).toBe(0, 'not moved while running');
    setUsedEvent(w, 5);
    rxPut(w, 100, 2); rxPut(w, 100, 3);
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(2);
    expect(vq_take_call(w.vq)).toBe(false);
    rxPut(w, 100, 4); rxPut(w, 100, 5); rxPut(w, 100, 6);
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(3);
    expect(vq_take_call(w.vq)).toBe(true);
    expect(vq_want_kick(w.vq)).toBe(true, 'buffers 6 and 7 are posted and not used yet');
    expect(availEvent(w)).toBe(6, 'kick me when you post past 6');
  });

  it('without EVENT_IDX: call unless NO_INTERRUPT; NO_NOTIFY while running, cleared to sleep', () => {
    const w = world();
    expect(setup(w, 16, 0)).toBe(0);
    for (let i: u32 = 0; i < 16; i++) dsc(w, i, gd(i * 128), 100, 0);
    txRoom(w, 0, 31);
    post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    expect(vq_take_call(w.vq)).toBe(true);
    expect(usedFlags(w)).toBe(1, 'NO_NOTIFY while we poll');
    setAvailFlags(w, 1);
    post(w, 1);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    expect(vq_take_call(w.vq)).toBe(false, 'the guest said NO_INTERRUPT');
    setAvailFlags(w, 0);
    post(w, 2);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    expect(load<u32>(w.vq, VQ_CALL)).toBe(1);
    expect(vq_want_kick(w.vq)).toBe(false, 'nothing new: sleep');
    expect(usedFlags(w)).toBe(0, 'kicks wanted');
    post(w, 3);
    expect(vq_want_kick(w.vq)).toBe(true);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    expect(usedFlags(w)).toBe(1);
    expect(cnt(w, VQ_CALLS)).toBe(2, 'one pending call counts once');
  });
});

// =========================================================================================
// Each malformed ring breaks the queue with its own reason; what was done before stays done;
// then the queue does nothing until vq_setup.
function brokenStaysBroken(w: W, code: i32, rx: bool): void {
  expect(vq_error(w.vq)).toBe(code);
  const u = usedIdx(w), b = vq_base(w.vq);
  dsc(w, 15, gd(0), 100, rx ? F_WRITE : 0);
  post(w, 15);
  txRoom(w, hx_head(w.tx), (hx_head(w.tx) + 20) % 32);
  if (rx) rxPut(w, 100, 9);
  expect(rx ? vq_push(w.vq, w.mt, w.rx) : vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0, 'broken: nothing moves');
  expect(usedIdx(w)).toBe(u);
  expect(vq_base(w.vq)).toBe(b);
  expect(vq_want_kick(w.vq)).toBe(false);
  expect(guardsOk(w)).toBe(true);
}
function goodThenBad(w: W): void {
  dsc(w, 14, gd(0), 100, 0);
  post(w, 14);
}

describe('break reasons', () => {
  it('avail->idx more than num ahead', () => {
    const w = world();
    expect(setup(w, 16, 0, 100)).toBe(0);
    txRoom(w, 0, 31);
    atomic.store<u16>(w.r + AVAIL_OFF, 100 + 17, 2);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    brokenStaysBroken(w, VQE_AVAIL_IDX, false);
    // set up again, it works
    expect(setup(w, 16, 0, 100)).toBe(0);
    dsc(w, 0, gd(0), 100, 0); post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    expect(vq_error(w.vq)).toBe(0);
  });

  it('a head index out of range, after a good chain', () => {
    const w = world();
    expect(setup(w, 16, 0)).toBe(0);
    txRoom(w, 0, 31);
    goodThenBad(w);
    post(w, 16);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1, 'the good chain went');
    expect(usedIdx(w)).toBe(1);
    expect(hx_head(w.tx)).toBe(1);
    brokenStaysBroken(w, VQE_DESC_INDEX, false);
  });

  it('a next index out of range', () => {
    const w = world();
    expect(setup(w, 16, 0)).toBe(0);
    txRoom(w, 0, 31);
    dsc(w, 0, gd(0), 12, F_NEXT, 16);
    post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    expect(usedIdx(w)).toBe(0, 'the bad chain is not consumed');
    brokenStaysBroken(w, VQE_DESC_INDEX, false);
  });

  it('addresses outside guest memory: beyond a region, straddling two, wrapping', () => {
    const w = world();
    expect(setup(w, 16, 0)).toBe(0);
    txRoom(w, 0, 31);
    dsc(w, 0, gd(GSIZE - 50), 51, 0); post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    brokenStaysBroken(w, VQE_ADDR, false);
    expect(setup(w, 16, 0)).toBe(0);
    dsc(w, 0, GPA_D - 8, 100, 0); post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    expect(vq_error(w.vq)).toBe(VQE_ADDR);
    expect(setup(w, 16, 0)).toBe(0);
    dsc(w, 0, gd(100), 0xffffffff, 0); post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    expect(vq_error(w.vq)).toBe(VQE_ADDR);
    expect(setup(w, 16, 0)).toBe(0);
    dsc(w, 0, 0xffffffffffffff00, 0x200, 0); post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    expect(vq_error(w.vq)).toBe(VQE_ADDR);
    expect(guardsOk(w)).toBe(true);
  });

  it('a device-writable descriptor in a TX chain, a readable one in an RX chain', () => {
    const w = world();
    expect(setup(w, 16, 0)).toBe(0);
    txRoom(w, 0, 31);
    dsc(w, 0, gd(0), 12, F_NEXT, 1);
    dsc(w, 1, gd(100), 100, F_WRITE);
    post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    brokenStaysBroken(w, VQE_WRITABLE, false);
    const v = world();
    expect(setup(v, 16, 0)).toBe(0);
    dsc(v, 0, gd(0), 12, F_WRITE | F_NEXT, 1);
    dsc(v, 1, gd(100), 2000, 0);
    post(v, 0);
    rxPut(v, 100, 1);
    expect(vq_push(v.vq, v.mt, v.rx)).toBe(0);
    expect(hx_head(v.rx)).toBe(0, 'the frame stays');
    brokenStaysBroken(v, VQE_READONLY, true);
  });

  it('indirect when not negotiated, nested, with a bad length or NEXT', () => {
    const w = world();
    expect(setup(w, 16, 0)).toBe(0);
    txRoom(w, 0, 31);
    idsc(w, 0, gd(0), 100, 0);
    dsc(w, 0, GPA_R + IND_OFF, 16, F_IND); post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    brokenStaysBroken(w, VQE_INDIRECT, false);

    expect(setup(w, 16, VQF_INDIRECT)).toBe(0);
    idsc(w, 0, GPA_R + IND_OFF + 16, 16, F_IND);
    idsc(w, 1, gd(0), 100, 0);
    dsc(w, 0, GPA_R + IND_OFF, 32, F_IND); post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    brokenStaysBroken(w, VQE_NESTED, false);

    expect(setup(w, 16, VQF_INDIRECT)).toBe(0);
    idsc(w, 0, gd(0), 100, 0);
    dsc(w, 0, GPA_R + IND_OFF, 24, F_IND); post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    brokenStaysBroken(w, VQE_INDIRECT_LEN, false);

    expect(setup(w, 16, VQF_INDIRECT)).toBe(0);
    dsc(w, 0, GPA_R + IND_OFF, 0, F_IND); post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    expect(vq_error(w.vq)).toBe(VQE_INDIRECT_LEN);

    expect(setup(w, 16, VQF_INDIRECT)).toBe(0);
    dsc(w, 0, GPA_R + IND_OFF, 16, F_IND | F_NEXT, 1);
    dsc(w, 1, gd(0), 100, 0);
    post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    expect(vq_error(w.vq)).toBe(VQE_INDIRECT_LEN);

    expect(setup(w, 16, VQF_INDIRECT)).toBe(0);
    dsc(w, 0, GPA_D + GSIZE - 16, 32, F_IND); post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    expect(vq_error(w.vq)).toBe(VQE_ADDR, 'the table itself outside guest memory');
    expect(guardsOk(w)).toBe(true);
  });

  it('loops: in the table, through zero-length descriptors, and inside an indirect table', () => {
    const w = world();
    expect(setup(w, 16, 0)).toBe(0);
    txRoom(w, 0, 31);
    dsc(w, 0, gd(0), 12, F_NEXT, 1);
    dsc(w, 1, gd(0), 10, F_NEXT, 0);
    post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    brokenStaysBroken(w, VQE_LOOP, false);

    expect(setup(w, 16, 0)).toBe(0);
    dsc(w, 3, gd(0), 0, F_NEXT, 3); // never a byte: only the count stops it
    post(w, 3);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    expect(vq_error(w.vq)).toBe(VQE_LOOP);

    expect(setup(w, 16, VQF_INDIRECT)).toBe(0);
    idsc(w, 0, gd(0), 1, F_NEXT, 1);
    idsc(w, 1, gd(0), 1, F_NEXT, 0);
    dsc(w, 0, GPA_R + IND_OFF, 32, F_IND); post(w, 0);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    expect(vq_error(w.vq)).toBe(VQE_LOOP);

    // an RX chain that loops
    expect(setup(w, 16, VQF_MRG_RXBUF)).toBe(0);
    dsc(w, 0, gd(0), 0, F_WRITE | F_NEXT, 0);
    post(w, 0);
    rxPut(w, 100, 1);
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(0);
    brokenStaysBroken(w, VQE_LOOP, true);
  });
});

// =========================================================================================
// Fuzz: random rings. The guest's data region holds only bytes < 0x80, as do the port's buffers,
// and everything around both is 0xEE: a byte ≥ 0x80 in a frame means a read outside them.
let rs: u32 = 0x9e3779b9;
function rnd32(): u32 { let x = rs; x ^= x << 13; x ^= x >> 17; x ^= x << 5; rs = x; return x; }
function rnd(m: u32): u32 { return rnd32() % m; }
function rnd64(): u64 { return (<u64>rnd32() << 32) | <u64>rnd32(); }

function fzAddr(): u64 {
  const c = rnd(100);
  if (c < 70) return GPA_D - GUARD + <u64>rnd(GSIZE + 2 * GUARD);
  if (c < 80) return GPA_D + GSIZE - <u64>rnd(64);
  if (c < 85) return GPA_D - <u64>rnd(64);
  if (c < 92) return GPA_D + <u64>rnd(GSIZE);
  if (c < 96) return rnd64();
  return 0xffffffffffffffff - <u64>rnd(8192);
}
function fzLen(): u32 {
  const c = rnd(100);
  if (c < 40) return rnd(200);
  if (c < 70) return rnd(3000);
  if (c < 80) return 0;
  if (c < 90) return rnd(GSIZE + 64);
  return rnd32();
}
function fzDesc(p: usize, num: u32, tabn: u32, rx: bool, ind: u32): void {
  const c = rnd(100);
  let flags: u16 = 0;
  if (rnd(100) < 45) flags |= F_NEXT;
  if (rx ? rnd(100) < 95 : rnd(100) < 4) flags |= F_WRITE;
  if (rnd(100) < ind) {
    flags |= F_IND;
    if (rnd(20) != 0) flags &= ~F_NEXT;
    if (c < 60) { // a real table in the ring region
      store<u64>(p, GPA_R + IND_OFF + 16 * <u64>rnd(48));
      store<u32>(p, 16 * (1 + rnd(16)), 8);
    } else {
      store<u64>(p, fzAddr());
      store<u32>(p, rnd(4) == 0 ? rnd32() : 16 * rnd(20) + (rnd(4) == 0 ? 8 : 0), 8);
    }
  } else {
    store<u64>(p, fzAddr());
    store<u32>(p, fzLen(), 8);
  }
  store<u16>(p, flags, 12);
  store<u16>(p, <u16>(rnd(10) == 0 ? rnd(65536) : rnd(tabn + 1)), 14);
}
/** A random queue: table, indirect tables, avail entries and index; returns chains pending. */
function fzQueue(w: W, rx: bool, maxlog: u32): u32 {
  const num: u32 = 1 << rnd(maxlog + 1);
  let feat = rnd(8);
  const last = rnd(65536);
  expect(setup(w, num, feat, last)).toBe(0);
  for (let i: u32 = 0; i < num; i++) fzDesc(w.r + 16 * i, num, num, rx, 6);
  for (let i: u32 = 0; i < 64; i++) fzDesc(w.r + IND_OFF + 16 * i, num, 16, rx, 3);
  const c = rnd(100);
  const pend: u32 = c < 85 ? rnd(num + 1) : c < 95 ? num + 1 + rnd(8) : rnd(65536);
  for (let j: u32 = 0; j < num; j++) store<u16>(w.r + AVAIL_OFF + 4 + 2 * j, <u16>(rnd(12) == 0 ? rnd(65536) : rnd(num)));
  atomic.store<u16>(w.r + AVAIL_OFF, <u16>(last + pend), 2);
  store<u16>(w.r + AVAIL_OFF, <u16>rnd(2));
  store<u16>(w.r + AVAIL_OFF + 4 + 2 * num, <u16>rnd(65536));
  store<u16>(w.r + USED_OFF + 2, 0xdead);
  w.aidx = (last + pend) & 0xffff;
  return pend;
}

// first failure: which iteration, which check
let ffIter: i32 = -1, ffWhat: i32 = 0;
function fail(it: u32, what: i32): void { if (ffIter < 0) { ffIter = <i32>it; ffWhat = what; } }

/** Shared checks after a pull or push: chains taken vs the used ring and the index. */
function checkUsed(w: W, it: u32, start: u32, pend: u32, rx: bool): u32 {
  const taken = (vq_base(w.vq) - start) & 0xffff;
  if (pend > w.num && taken != 0) fail(it, 1);
  if (taken > pend) fail(it, 2);
  const u = usedIdx(w);
  if (taken == 0 ? u != 0xdead : u != ((start + taken) & 0xffff)) fail(it, 3);
  for (let j: u32 = 0; j < taken; j++) {
    if (usedId(w, start + j) >= w.num) fail(it, 4);
    if (!rx && usedLen(w, start + j) != 0) fail(it, 5);
    if (rx && usedLen(w, start + j) > 65536 * 64) fail(it, 5);
  }
  const e = vq_error(w.vq);
  if (e < 0 || e > VQE_LOOP) fail(it, 6);
  return taken;
}

describe('fuzz', () => {
  it('random TX rings: no read outside guest memory, no write outside the port buffers, used idx sane', () => {
    const w = world(32);
    const n = hx_n(w.tx), bsize = load<u32>(w.tx, KR_BUF_SIZE);
    const sbufs = heap.alloc(n * bsize), sslots = heap.alloc(SLOT_SIZE * n);
    rs = 0x12345678;
    ffIter = -1;
    let frames: u32 = 0, broken: u32 = 0, moved: u32 = 0;
    for (let it: u32 = 0; it < 3000; it++) {
      const pend = fzQueue(w, false, 7);
      const start = vq_base(w.vq);
      const h = rnd(n), room = rnd(n);
      txRoom(w, h, (h + room) % n);
      let badSlot: u32 = 0xffffffff, keep: u32 = 0;
      if (rnd(20) == 0) { badSlot = (h + rnd(max<u32>(room, 1))) % n; keep = hx_idx(w.tx, badSlot); hx_set_idx(w.tx, badSlot, rnd(3) == 0 ? load<u32>(w.tx, KR_NBUFS) + rnd(40) : rnd(2)); }
      // the slots the switch owns, [tail, head), and their buffers must stay as they are
      for (let j: u32 = room; j < n; j++) { const i = (h + j) % n; memory.copy(sbufs + i * bsize, hx_buf(w.tx, i), bsize); }
      memory.copy(sslots, hx_slot(w.tx, 0), SLOT_SIZE * n);
      const mx: u32 = 1 + rnd(40);
      const ret = vq_pull(w.vq, w.mt, w.tx, mx);
      if (ret < 0 || <u32>ret > mx) fail(it, 10);
      const taken = checkUsed(w, it, start, pend, false);
      if (<u32>ret > taken) fail(it, 11);
      // the slots filled: within the room, whole frames, lens within buffers, only data bytes
      const nh = hx_head(w.tx);
      if (load<u32>(hx_ring(w.tx), 24) != nh) fail(it, 12);
      const used = ring_dist(h, nh, n);
      if (used > room) fail(it, 13);
      let ends: u32 = 0;
      for (let j: u32 = 0; j < used; j++) {
        const i = (h + j) % n;
        const f = hx_flags(w.tx, i), l = hx_len(w.tx, i);
        if (f != 0 && f != NS_MOREFRAG) fail(it, 14);
        if (f == 0) ends++;
        if (j + 1 == used && f != 0) fail(it, 15);
        if (l > bsize || l == 0) fail(it, 16);
        if (!clean(hx_buf(w.tx, i), l)) fail(it, 17);
      }
      if (ends != <u32>ret) fail(it, 18);
      for (let j: u32 = room; j < n; j++) {
        const i = (h + j) % n;
        if (memory.compare(sbufs + i * bsize, hx_buf(w.tx, i), bsize) != 0) fail(it, 22);
        if (memory.compare(sslots + SLOT_SIZE * i, hx_slot(w.tx, i), SLOT_SIZE) != 0) fail(it, 23);
      }
      if (memory.compare(w.d, w.tmpl, GSIZE) != 0) fail(it, 19); // a pull never writes guest data
      if (!guardsOk(w)) fail(it, 20);
      if (badSlot != 0xffffffff) hx_set_idx(w.tx, badSlot, keep);
      if (vq_error(w.vq) != 0) {
        broken++;
        const b = vq_base(w.vq), u = usedIdx(w);
        txRoom(w, 0, n - 1);
        if (vq_pull(w.vq, w.mt, w.tx, 64) != 0 || vq_base(w.vq) != b || usedIdx(w) != u || hx_head(w.tx) != 0) fail(it, 21);
      }
      frames += <u32>ret;
      moved += taken;
      if (ffIter >= 0) break;
    }
    expect(ffWhat).toBe(0);
    expect(ffIter).toBe(-1);
    expect(frames).toBeGreaterThan(500, 'the fuzz reaches the copy path');
    expect(broken).toBeGreaterThan(500, 'and the break paths');
    expect(moved).toBeGreaterThan(frames, 'and the drop paths');
    expect(cnt(w, VQ_DROP_BIG) + cnt(w, VQ_DROP_BAD)).toBeGreaterThan(50);
  });

  it('random RX rings and rx slots: no write outside guest memory, no read outside the port buffers', () => {
    const w = world(32, 1024);
    const n = hx_n(w.rx), bsize = load<u32>(w.rx, KR_BUF_SIZE);
    const slots = hx_ring(w.rx) + RING_SLOTS;
    const snap = heap.alloc(SLOT_SIZE * n);
    rs = 0xcafef00d;
    ffIter = -1;
    let frames: u32 = 0, broken: u32 = 0, stalls: u64 = 0;
    for (let it: u32 = 0; it < 3000; it++) {
      const pend = fzQueue(w, true, 6); // num ≤ 64: num_buffers never reaches 0x80
      const start = vq_base(w.vq);
      const h = rnd(n), count = rnd(n);
      const t = (h + count) % n;
      hx_set_hc(w.rx, h, h);
      store<u32>(hx_ring(w.rx), t, RING_TAIL);
      let badSlot: u32 = 0xffffffff, keep: u32 = 0;
      for (let j: u32 = 0; j < count; j++) {
        const i = (h + j) % n;
        hx_set_len(w.rx, i, rnd(10) == 0 ? rnd(65536) : rnd(bsize + 1));
        hx_set_flags(w.rx, i, rnd(3) == 0 ? NS_MOREFRAG : 0);
      }
      if (count > 0 && rnd(10) == 0) { badSlot = (h + rnd(count)) % n; keep = hx_idx(w.rx, badSlot); hx_set_idx(w.rx, badSlot, rnd(3) == 0 ? load<u32>(w.rx, KR_NBUFS) + rnd(40) : rnd(2)); }
      memory.copy(snap, slots, SLOT_SIZE * n);
      // whole frames waiting
      let whole: u32 = 0;
      for (let j: u32 = 0; j < count; j++) if ((hx_flags(w.rx, (h + j) % n) & NS_MOREFRAG) == 0) whole++;
      const ret = vq_push(w.vq, w.mt, w.rx);
      if (ret < 0 || <u32>ret > whole) fail(it, 30);
      const taken = checkUsed(w, it, start, pend, true);
      if (<u32>ret > taken) fail(it, 31);
      const nh = hx_head(w.rx);
      if (load<u32>(hx_ring(w.rx), 24) != nh) fail(it, 32);
      if (ring_dist(h, nh, n) > count) fail(it, 33);
      if (memory.compare(snap, slots, SLOT_SIZE * n) != 0) fail(it, 34); // a push never writes slots
      if (!clean(w.d, GSIZE)) fail(it, 35); // only port-buffer bytes were written into the guest
      if (!guardsOk(w)) fail(it, 36);
      if (vq_error(w.vq) != 0) {
        broken++;
        const b = vq_base(w.vq), u = usedIdx(w);
        if (vq_push(w.vq, w.mt, w.rx) != 0 || vq_base(w.vq) != b || usedIdx(w) != u || hx_head(w.rx) != nh) fail(it, 37);
      }
      if (badSlot != 0xffffffff) hx_set_idx(w.rx, badSlot, keep);
      memory.copy(w.d, w.tmpl, GSIZE);
      frames += <u32>ret;
      if (ffIter >= 0) break;
    }
    stalls = cnt(w, VQ_STALLS);
    expect(ffWhat).toBe(0);
    expect(ffIter).toBe(-1);
    expect(frames).toBeGreaterThan(300, 'the fuzz reaches the copy path');
    expect(broken).toBeGreaterThan(300, 'and the break paths');
    expect(stalls).toBeGreaterThan(50, 'and stalls');
    expect(cnt(w, VQ_DROP_BIG) + cnt(w, VQ_DROP_BAD)).toBeGreaterThan(50);
  });
});

// ---- windowed guest memory (guestmem.ts): the data region seen through 4 KiB chunks -------
const WC: u32 = 4096;
/** The data region re-entered as windowed (nothing mapped), the ring region whole. */
function windowed(w: W): usize {
  mt_init(w.mt);
  store<u32>(w.mt, 12, MT_SHIFT);
  const tab = heap.alloc(GSIZE / WC * MT_CE_SIZE + 8) + 7 & ~7;
  memory.fill(tab, 0, GSIZE / WC * MT_CE_SIZE);
  assert(mt_add_window(w.mt, GPA_D, GSIZE, UVA_D, <u32>tab) == E_OK, 'windowed data region');
  assert(mt_add(w.mt, GPA_R, GSIZE, UVA_R, <u32>w.r) == E_OK, 'ring region');
  return tab;
}
/** Map chunk c as a copy of chunks c and c+1 in a slot between guards (read-only use: TX). */
function wcopy(w: W, tab: usize, c: u32): void {
  const slot = heap.alloc(2 * WC + 2 * GUARD) + GUARD;
  memory.fill(slot - GUARD, 0xee, 2 * WC + 2 * GUARD);
  memory.copy(slot, w.d + c * WC, min(2 * WC, GSIZE - c * WC));
  store<u32>(tab + c * MT_CE_SIZE, <u32>slot);
}
/** Map chunk c where the guest's bytes are (an alias, as MAP_SHARED gives: RX writes land). */
function walias(tab: usize, w: W, c: u32): void { store<u32>(tab + c * MT_CE_SIZE, <u32>(w.d + c * WC)); }

describe('windowed guest memory (vq_pull, vq_push)', () => {
  it('pull: a miss stops the pass without consuming the chain; once mapped, the frame (straddling chunks, in pieces) is whole', () => {
    const w = world(32, 8192);
    const tab = windowed(w);
    expect(setup(w, 16, 0)).toBe(0);
    dsc(w, 0, gd(WC - 6), 12 + 60, 0); post(w, 0); // header and frame straddle chunks 0 and 1
    dsc(w, 1, gd(100), 12, F_NEXT, 2); dsc(w, 2, gd(3 * WC - 500), 5000, 0); post(w, 1); // 2nd part: chunk 2 → past its slot (chunks 2, 3) into chunk 4
    txRoom(w, 0, 31);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0, 'chunk 0 is not mapped');
    expect(load<u32>(w.mt, MT_MISS)).toBe(1);
    expect(load<u32>(w.mt, MT_MISS_CHUNK)).toBe(0);
    expect(usedIdx(w)).toBe(0, 'nothing consumed');
    expect(vq_base(w.vq)).toBe(0);
    expect(vq_error(w.vq)).toBe(0, 'a miss is not the guest\'s fault');
    expect(hx_head(w.tx)).toBe(0);
    wcopy(w, tab, 0);
    store<u32>(w.mt, 0, MT_MISS);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1, 'the first chain goes; the second misses on chunk 2');
    expect(memory.compare(hx_buf(w.tx, 0), w.d + WC - 6, 72)).toBe(0);
    expect(load<u32>(w.mt, MT_MISS_CHUNK)).toBe(2);
    expect(usedIdx(w)).toBe(1);
    wcopy(w, tab, 2);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0, 'the second part runs past chunk 2\'s slot: chunk 4 misses');
    expect(load<u32>(w.mt, MT_MISS_CHUNK)).toBe(4);
    expect(usedIdx(w)).toBe(1);
    wcopy(w, tab, 4);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(1);
    expect(hx_len(w.tx, 1)).toBe(5012);
    expect(memory.compare(hx_buf(w.tx, 1), w.d + 100, 12)).toBe(0);
    expect(memory.compare(hx_buf(w.tx, 1) + 12, w.d + 3 * WC - 500, 5000)).toBe(0, 'both pieces, from two slots');
    expect(usedIdx(w)).toBe(2);
    expect(cnt(w, VQ_FRAMES)).toBe(2);
    expect(guardsOk(w)).toBe(true);
  });

  it('pull: a buffer outside the region breaks the queue without a miss; a too-big chain is not translated past its limit', () => {
    const w = world();
    windowed(w);
    expect(setup(w, 16, 0)).toBe(0);
    dsc(w, 0, gd(GSIZE - 10), 20, 0); post(w, 0);
    const m = load<u64>(w.mt, MT_MISSES);
    expect(vq_pull(w.vq, w.mt, w.tx, 64)).toBe(0);
    expect(vq_error(w.vq)).toBe(VQE_ADDR);
    expect(load<u64>(w.mt, MT_MISSES)).toBe(m, 'no mapping asked for memory outside the guest');
  });

  it('push: a miss leaves the frame in the ring and the chain unused; once mapped it is delivered into guest memory', () => {
    const w = world();
    const tab = windowed(w);
    expect(setup(w, 16, 0)).toBe(0);
    dsc(w, 0, gd(2 * WC - 40), 2048, F_WRITE); post(w, 0);
    rxPut(w, 12 + 60, 7);
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(0);
    expect(load<u32>(w.mt, MT_MISS_CHUNK)).toBe(1);
    expect(hx_head(w.rx)).toBe(0, 'the frame waits');
    expect(usedIdx(w)).toBe(0);
    expect(vq_error(w.vq)).toBe(0);
    walias(tab, w, 1);
    expect(vq_push(w.vq, w.mt, w.rx)).toBe(1);
    expect(sameFrame(w.d + 2 * WC - 40, 72, 7, 0)).toBe(true);
    expect(numBuffers(w.d + 2 * WC - 40)).toBe(1);
    expect(usedLen(w, 0)).toBe(72);
    expect(guardsOk(w)).toBe(true);
  });
});
