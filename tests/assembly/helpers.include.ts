// Helpers for region.spec.ts, ring.spec.ts and pipe.spec.ts: regions in fresh memory, the
// user's view of a ring (head/cur/tail, slots, buffers), byte snapshots, and a buffer audit.
import {
  SLOT_SIZE, SLOT_BUF_IDX, SLOT_LEN, SLOT_FLAGS, RING_BUF_OFS, RING_NUM_SLOTS, RING_BUF_SIZE,
  RING_HEAD, RING_CUR, RING_TAIL, RING_SLOTS, KR_RING, KR_NSLOTS, KRING_SIZE, RGN_NBUFS,
  RGN_FREE, RGN_FREE_COUNT, RGN_NTX, RGN_NRX, RGN_NSLOTS, RGN_KRINGS, DIR_TX, DIR_RX,
} from '../../assembly/abi';
import { region_span_size, region_priv_size, region_init, region_kring } from '../../assembly/region';
import { pipe_link } from '../../assembly/pipe';

/** A region in fresh memory (base aligned to 64 KiB); returns its descriptor. */
export function hx_region(ntx: u32, nrx: u32, nslots: u32, bsize: u32, extra: u32): usize {
  const span = region_span_size(ntx, nrx, nslots, bsize, extra);
  assert(span != 0, 'hx_region: bad geometry');
  const base = (heap.alloc(<usize>span + 65536) + 65535) & ~(<usize>65535);
  const desc = heap.alloc(region_priv_size(ntx, nrx, nslots, extra));
  const rc = region_init(desc, base, span, ntx, nrx, nslots, bsize, extra);
  assert(rc == 0, 'hx_region: region_init failed');
  return desc;
}

/** 64 KiB-aligned memory of `bytes` bytes (never freed; specs are short-lived). */
export function hx_mem(bytes: u32): usize {
  return (heap.alloc(<usize>bytes + 65536) + 65535) & ~(<usize>65535);
}

export function hx_ring(k: usize): usize { return <usize>load<u32>(k, KR_RING); }
export function hx_n(k: usize): u32 { return load<u32>(k, KR_NSLOTS); }
export function hx_slot(k: usize, i: u32): usize { return hx_ring(k) + RING_SLOTS + <usize>SLOT_SIZE * <usize>i; }
export function hx_idx(k: usize, i: u32): u32 { return load<u32>(hx_slot(k, i), SLOT_BUF_IDX); }
export function hx_len(k: usize, i: u32): u32 { return <u32>load<u16>(hx_slot(k, i), SLOT_LEN); }
export function hx_flags(k: usize, i: u32): u32 { return <u32>load<u16>(hx_slot(k, i), SLOT_FLAGS); }
export function hx_set_idx(k: usize, i: u32, idx: u32): void { store<u32>(hx_slot(k, i), idx, SLOT_BUF_IDX); }
export function hx_set_len(k: usize, i: u32, len: u32): void { store<u16>(hx_slot(k, i), <u16>len, SLOT_LEN); }
export function hx_set_flags(k: usize, i: u32, f: u32): void { store<u16>(hx_slot(k, i), <u16>f, SLOT_FLAGS); }

export function hx_head(k: usize): u32 { return load<u32>(hx_ring(k), RING_HEAD); }
export function hx_cur(k: usize): u32 { return load<u32>(hx_ring(k), RING_CUR); }
export function hx_tail(k: usize): u32 { return load<u32>(hx_ring(k), RING_TAIL); }
export function hx_set_hc(k: usize, h: u32, c: u32): void {
  store<u32>(hx_ring(k), h, RING_HEAD);
  store<u32>(hx_ring(k), c, RING_CUR);
}
/** head = cur = head + d (mod n), as a user does after filling or consuming d slots. */
export function hx_advance(k: usize, d: u32): void {
  const n = hx_n(k);
  const h = (hx_head(k) + d) % n;
  hx_set_hc(k, h, h);
}
/** Slots the user owns: [head, tail). */
export function hx_space(k: usize): u32 {
  const n = hx_n(k);
  return (hx_tail(k) + n - hx_head(k)) % n;
}

/** The address of slot i's buffer as the user computes it: ring + buf_ofs + idx * buf_size. */
export function hx_buf(k: usize, i: u32): usize {
  const r = hx_ring(k);
  return <usize>(<i64>r + load<i64>(r, RING_BUF_OFS)) + <usize>hx_idx(k, i) * <usize>load<u32>(r, RING_BUF_SIZE);
}

/** Bytes of a ring: header plus slots. */
export function hx_ring_bytes(k: usize): u32 { return RING_SLOTS + SLOT_SIZE * load<u32>(hx_ring(k), RING_NUM_SLOTS); }

/** A copy of [p, p+len). */
export function hx_snap(p: usize, len: u32): usize {
  const s = heap.alloc(len);
  memory.copy(s, p, len);
  return s;
}
/** Bytes in [p, p+len) that differ from the snapshot. */
export function hx_diff(p: usize, snap: usize, len: u32): u32 {
  let d: u32 = 0;
  for (let i: u32 = 0; i < len; i++) if (load<u8>(p + i) != load<u8>(snap + i)) d++;
  return d;
}

/**
 * Buffer conservation: problems found, 0 when every buffer 2..nbufs-1 appears exactly once
 * across all slots of all rings plus the free stack. Each slot or stack entry with a reserved,
 * out-of-range or repeated index counts one, and each buffer held by nobody counts one.
 */
export function hx_audit(desc: usize): i32 {
  const nbufs = load<u32>(desc, RGN_NBUFS);
  const seen = heap.alloc(nbufs);
  memory.fill(seen, 0, nbufs);
  const nr = load<u32>(desc, RGN_NTX) + load<u32>(desc, RGN_NRX);
  const ns = load<u32>(desc, RGN_NSLOTS);
  let bad: i32 = 0;
  for (let r: u32 = 0; r < nr; r++) {
    const k = <usize>load<u32>(desc, RGN_KRINGS) + <usize>KRING_SIZE * r;
    for (let s: u32 = 0; s < ns; s++) {
      const idx = hx_idx(k, s);
      if (idx < 2 || idx >= nbufs || load<u8>(seen + idx) != 0) bad++;
      else store<u8>(seen + idx, 1);
    }
  }
  const free = <usize>load<u32>(desc, RGN_FREE);
  const nfree = load<u32>(desc, RGN_FREE_COUNT);
  if (nfree > nbufs - 2) bad++;
  for (let i: u32 = 0; i < nfree && i < nbufs; i++) {
    const idx = load<u32>(free + 4 * i);
    if (idx < 2 || idx >= nbufs || load<u8>(seen + idx) != 0) bad++;
    else store<u8>(seen + idx, 1);
  }
  for (let i: u32 = 2; i < nbufs; i++) if (load<u8>(seen + i) == 0) bad++;
  heap.free(seen);
  return bad;
}

/** A region with one tx ring linked to one rx ring (a pipe); returns its descriptor. */
export function hx_pipe_desc(nslots: u32, bsize: u32, extra: u32): usize {
  const desc = hx_region(1, 1, nslots, bsize, extra);
  assert(pipe_link(region_kring(desc, DIR_TX, 0), region_kring(desc, DIR_RX, 0)) == 0, 'hx_pipe_desc: link failed');
  return desc;
}

/** One tx ring linked to one rx ring of the same region. */
export class HxPipe { desc: usize = 0; tx: usize = 0; rx: usize = 0; }
export function hx_pipe(nslots: u32, bsize: u32 = 2048, extra: u32 = 0): HxPipe {
  const p = new HxPipe();
  p.desc = hx_pipe_desc(nslots, bsize, extra);
  p.tx = region_kring(p.desc, DIR_TX, 0);
  p.rx = region_kring(p.desc, DIR_RX, 0);
  return p;
}

/** Frame length used for sequence number `seq` (deterministic, varies, 60..1059). */
export function hx_len_for(seq: u32): u32 { return 60 + (seq * 37) % 1000; }

/**
 * Queue `count` single-slot packets at the tx head, numbered seq, seq+1, ...: the number goes
 * into the first 4 bytes of the buffer and decides the length. Advances head and cur.
 */
export function hx_send(k: usize, count: u32, seq: u32): void {
  const n = hx_n(k);
  assert(count <= hx_space(k), 'hx_send: more than the user owns');
  let h = hx_head(k);
  for (let c: u32 = 0; c < count; c++) {
    store<u32>(hx_buf(k, h), seq + c);
    hx_set_len(k, h, hx_len_for(seq + c));
    hx_set_flags(k, h, 0);
    h = (h + 1) % n;
  }
  hx_set_hc(k, h, h);
}

/**
 * Consume up to `max` slots of an rx ring from its head, checking that they carry the numbers
 * expect, expect+1, ... with the matching lengths. Returns how many it consumed, or -1 - i on
 * the first mismatch at consumed position i. Advances head and cur.
 */
export function hx_recv(k: usize, max: u32, expect: u32): i32 {
  const n = hx_n(k);
  let h = hx_head(k);
  let c: u32 = 0;
  while (c < max && h != hx_tail(k)) {
    if (load<u32>(hx_buf(k, h)) != expect + c || hx_len(k, h) != hx_len_for(expect + c)) return -1 - <i32>c;
    h = (h + 1) % n;
    c++;
  }
  hx_set_hc(k, h, h);
  return <i32>c;
}
