// A netmap memory region inside linear memory: [netmap_if][rings][buffer pool] in one
// page-aligned span that can be handed to another process as it is (its own memfd), plus a
// kernel-side descriptor (krings, the free-buffer stack) kept outside the span.
import {
  SLOT_SIZE, SLOT_BUF_IDX, RING_BUF_OFS, RING_NUM_SLOTS, RING_BUF_SIZE, RING_RINGID, RING_DIR,
  RING_TAIL, RING_SLOTS, IF_NAME, IF_TX_RINGS, IF_RX_RINGS, IF_RING_OFS, IF_FLAGS, NI_PRIV_MEM,
  KRING_SIZE, KR_RING, KR_USER, KR_NSLOTS, KR_HWTAIL, KR_DIR, KR_BUF_BASE, KR_BUF_SIZE, KR_NBUFS,
  KR_REGION, DIR_TX, DIR_RX, RGN_DESC_SIZE, RGN_BASE, RGN_SPAN, RGN_IF, RGN_BUF_BASE,
  RGN_BUF_SIZE, RGN_NBUFS, RGN_FREE, RGN_FREE_COUNT, RGN_NTX, RGN_NRX, RGN_NSLOTS, RGN_KRINGS, RGN_BITMAP,
  BUF_RESERVED, E_OK, E_INVAL, E_NOFIT,
} from './abi';

export const MAX_RINGS: u32 = 64; // per direction
export const MAX_SLOTS: u32 = 4096; // netmap's NM_BDG_MAXSLOTS
const RING_ALIGN: u32 = 64;
const POOL_ALIGN: u32 = 4096;

@inline function align(x: u32, a: u32): u32 { return (x + a - 1) & ~(a - 1); }

export function region_nbufs(ntx: u32, nrx: u32, nslots: u32, extra: u32): u32 {
  return BUF_RESERVED + (ntx + nrx) * nslots + extra;
}

function ring_bytes(nslots: u32): u32 { return align(RING_SLOTS + SLOT_SIZE * nslots, RING_ALIGN); }
function if_bytes(ntx: u32, nrx: u32): u32 { return align(IF_RING_OFS + 8 * (ntx + nrx), RING_ALIGN); }
function pool_offset(ntx: u32, nrx: u32, nslots: u32): u32 {
  return align(if_bytes(ntx, nrx) + (ntx + nrx) * ring_bytes(nslots), POOL_ALIGN);
}

function args_ok(ntx: u32, nrx: u32, nslots: u32, buf_size: u32, extra: u32): bool {
  return ntx <= MAX_RINGS && nrx <= MAX_RINGS && ntx + nrx > 0 &&
    nslots >= 2 && nslots <= MAX_SLOTS &&
    buf_size >= 64 && buf_size <= 65536 && (buf_size & 63) == 0 && extra <= 1 << 20;
}

/** Bytes of the shared span (a multiple of 64 KiB), or 0 if the arguments are out of range. */
export function region_span_size(ntx: u32, nrx: u32, nslots: u32, buf_size: u32, extra: u32): u32 {
  if (!args_ok(ntx, nrx, nslots, buf_size, extra)) return 0;
  const bytes = <u64>pool_offset(ntx, nrx, nslots) +
    <u64>region_nbufs(ntx, nrx, nslots, extra) * <u64>buf_size;
  if (bytes > 0x40000000) return 0; // 1 GiB per region is plenty and keeps u32 math safe
  return align(<u32>bytes, 65536);
}

/** Bytes of the kernel-side descriptor: header, krings, free stack. */
export function region_priv_size(ntx: u32, nrx: u32, nslots: u32, extra: u32): u32 {
  const nbufs = region_nbufs(ntx, nrx, nslots, extra);
  return RGN_DESC_SIZE + KRING_SIZE * (ntx + nrx) + 4 * nbufs + 4 * ((nbufs + 31) >> 5);
}

/**
 * Lay a region out in [base, base+span) and its descriptor at desc. Every ring slot gets its
 * own buffer; the `extra` remaining buffers go on the free stack. Returns E_OK, E_INVAL or
 * E_NOFIT (span too small) without writing anything on error.
 */
export function region_init(desc: usize, base: usize, span: u32, ntx: u32, nrx: u32,
                            nslots: u32, buf_size: u32, extra: u32): i32 {
  if (!args_ok(ntx, nrx, nslots, buf_size, extra) || (base & 4095) != 0 || desc == 0) return E_INVAL;
  const need = region_span_size(ntx, nrx, nslots, buf_size, extra);
  if (need == 0 || span < need) return E_NOFIT;
  const nbufs = region_nbufs(ntx, nrx, nslots, extra);
  const pool = base + pool_offset(ntx, nrx, nslots);
  const krings = desc + RGN_DESC_SIZE;
  const free = krings + KRING_SIZE * (ntx + nrx);

  memory.fill(base, 0, pool - base); // if and ring headers; buffers keep whatever they hold
  memory.fill(desc, 0, RGN_DESC_SIZE + KRING_SIZE * (ntx + nrx));
  store<u32>(desc, <u32>base, RGN_BASE);
  store<u32>(desc, span, RGN_SPAN);
  store<u32>(desc, <u32>base, RGN_IF);
  store<u32>(desc, <u32>pool, RGN_BUF_BASE);
  store<u32>(desc, buf_size, RGN_BUF_SIZE);
  store<u32>(desc, nbufs, RGN_NBUFS);
  store<u32>(desc, <u32>free, RGN_FREE);
  store<u32>(desc, ntx, RGN_NTX);
  store<u32>(desc, nrx, RGN_NRX);
  store<u32>(desc, nslots, RGN_NSLOTS);
  store<u32>(desc, <u32>krings, RGN_KRINGS);
  store<u32>(desc, <u32>(free + 4 * nbufs), RGN_BITMAP);

  const nifp = base;
  store<u32>(nifp, NI_PRIV_MEM, IF_FLAGS);
  store<u32>(nifp, ntx, IF_TX_RINGS);
  store<u32>(nifp, nrx, IF_RX_RINGS);
  let ring = base + if_bytes(ntx, nrx);
  let next_buf: u32 = BUF_RESERVED;
  for (let i: u32 = 0; i < ntx + nrx; i++) {
    const dir = i < ntx ? DIR_TX : DIR_RX;
    store<i64>(nifp + IF_RING_OFS + 8 * i, <i64>(ring - nifp));
    store<i64>(ring, <i64>pool - <i64>ring, RING_BUF_OFS);
    store<u32>(ring, nslots, RING_NUM_SLOTS);
    store<u32>(ring, buf_size, RING_BUF_SIZE);
    store<u16>(ring, <u16>(dir == DIR_TX ? i : i - ntx), RING_RINGID);
    store<u16>(ring, <u16>dir, RING_DIR);
    // head = cur = 0; a tx ring starts all free (tail = n-1), an rx ring empty (tail = 0)
    store<u32>(ring, dir == DIR_TX ? nslots - 1 : 0, RING_TAIL);
    for (let s: u32 = 0; s < nslots; s++) {
      store<u32>(ring + RING_SLOTS + SLOT_SIZE * s, next_buf++, SLOT_BUF_IDX);
    }
    const k = krings + KRING_SIZE * i;
    store<u32>(k, <u32>ring, KR_RING);
    store<u32>(k, <u32>ring, KR_USER);
    store<u32>(k, nslots, KR_NSLOTS);
    store<u32>(k, dir == DIR_TX ? nslots - 1 : 0, KR_HWTAIL);
    store<u32>(k, dir, KR_DIR);
    store<u32>(k, <u32>pool, KR_BUF_BASE);
    store<u32>(k, buf_size, KR_BUF_SIZE);
    store<u32>(k, nbufs, KR_NBUFS);
    store<u32>(k, <u32>desc, KR_REGION);
    ring += ring_bytes(nslots);
  }
  let n: u32 = 0;
  while (next_buf < nbufs) { store<u32>(free + 4 * n, next_buf++); n++; }
  store<u32>(desc, n, RGN_FREE_COUNT);
  return E_OK;
}

/** The kring of tx ring i (dir 0) or rx ring i (dir 1), or 0 if there is none. */
export function region_kring(desc: usize, dir: u32, i: u32): usize {
  const ntx = load<u32>(desc, RGN_NTX);
  const nrx = load<u32>(desc, RGN_NRX);
  if (dir == DIR_TX ? i >= ntx : i >= nrx) return 0;
  return <usize>load<u32>(desc, RGN_KRINGS) + KRING_SIZE * (dir == DIR_TX ? i : ntx + i);
}

/** Write the port name into netmap_if.ni_name (truncated to 15 bytes + NUL). */
export function region_set_name(desc: usize, name: usize, len: u32): void {
  const nifp = <usize>load<u32>(desc, RGN_IF);
  memory.fill(nifp + IF_NAME, 0, 16);
  memory.copy(nifp + IF_NAME, name, min(len, 15));
}

/** Take a buffer from the pool: its index, or 0 (never a valid buffer) when the pool is empty. */
export function pool_alloc(desc: usize): u32 {
  const n = load<u32>(desc, RGN_FREE_COUNT);
  if (n == 0) return 0;
  store<u32>(desc, n - 1, RGN_FREE_COUNT);
  return load<u32>(<usize>load<u32>(desc, RGN_FREE) + 4 * (n - 1));
}

/** Give a buffer back. Rejects reserved and out-of-range indices and a full stack. */
export function pool_free(desc: usize, idx: u32): i32 {
  const n = load<u32>(desc, RGN_FREE_COUNT);
  const nbufs = load<u32>(desc, RGN_NBUFS);
  if (idx < BUF_RESERVED || idx >= nbufs || n >= nbufs - BUF_RESERVED) return E_INVAL;
  store<u32>(<usize>load<u32>(desc, RGN_FREE) + 4 * n, idx);
  store<u32>(desc, n + 1, RGN_FREE_COUNT);
  return E_OK;
}

export function pool_free_count(desc: usize): u32 { return load<u32>(desc, RGN_FREE_COUNT); }

@inline export function buf_addr(k: usize, idx: u32): usize {
  return <usize>load<u32>(k, KR_BUF_BASE) + <usize>idx * <usize>load<u32>(k, KR_BUF_SIZE);
}
