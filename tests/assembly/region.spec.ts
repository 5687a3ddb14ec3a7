// region_init layout and initial ring states, argument checks, the free-buffer stack, krings.
import {
  hx_region, hx_mem, hx_ring, hx_idx, hx_len, hx_flags, hx_head, hx_cur, hx_tail, hx_buf,
  hx_snap, hx_diff, hx_audit, hx_set_idx,
} from './helpers.include';
import {
  SLOT_SIZE, RING_BUF_OFS, RING_NUM_SLOTS, RING_BUF_SIZE, RING_RINGID, RING_DIR, RING_SLOTS,
  IF_TX_RINGS, IF_RX_RINGS, IF_RING_OFS, KRING_SIZE, KR_RING, KR_NSLOTS, KR_HWCUR, KR_HWTAIL,
  KR_RHEAD, KR_RCUR, KR_FLAGS, KR_DIR, KR_BUF_BASE, KR_BUF_SIZE, KR_NBUFS, KR_PEER, KR_ERR,
  KR_REGION, RGN_BASE, RGN_IF, RGN_BUF_BASE, RGN_NBUFS, RGN_FREE_COUNT, DIR_TX, DIR_RX,
  E_OK, E_INVAL, E_NOFIT,
} from '../../assembly/abi';
import {
  region_nbufs, region_span_size, region_priv_size, region_init, region_kring, pool_alloc,
  pool_free, pool_free_count,
} from '../../assembly/region';

/** Call region_init on poisoned memory and report how many bytes of span header/descriptor changed. */
function init_poisoned(span_given: u32, base_off: u32, ntx: u32, nrx: u32, nslots: u32, bsize: u32, extra: u32, expect_rc: i32): u32 {
  const big: u32 = 4 * 65536;
  const base = hx_mem(big);
  const dsz: u32 = 4096;
  const desc = heap.alloc(dsz);
  memory.fill(base, 0xab, big);
  memory.fill(desc, 0xcd, dsz);
  const sb = hx_snap(base, big);
  const sd = hx_snap(desc, dsz);
  const rc = region_init(desc, base + base_off, span_given, ntx, nrx, nslots, bsize, extra);
  expect(rc).toBe(expect_rc);
  return hx_diff(base, sb, big) + hx_diff(desc, sd, dsz);
}

describe('region layout', () => {
  it('counts nbufs = 2 + (ntx+nrx)*nslots + extra and records it everywhere', () => {
    expect(region_nbufs(2, 3, 8, 5)).toBe(2 + 5 * 8 + 5);
    const desc = hx_region(2, 3, 8, 2048, 5);
    expect(load<u32>(desc, RGN_NBUFS)).toBe(47);
    for (let i: u32 = 0; i < 2; i++) expect(load<u32>(region_kring(desc, DIR_TX, i), KR_NBUFS)).toBe(47);
    for (let i: u32 = 0; i < 3; i++) expect(load<u32>(region_kring(desc, DIR_RX, i), KR_NBUFS)).toBe(47);
    expect(pool_free_count(desc)).toBe(5);
    expect(hx_audit(desc)).toBe(0);
  });

  it('writes netmap_if: ring counts and ring_ofs relative to the if, tx rings first', () => {
    const desc = hx_region(2, 3, 8, 2048, 0);
    const nifp = <usize>load<u32>(desc, RGN_IF);
    expect(nifp).toBe(<usize>load<u32>(desc, RGN_BASE));
    expect(load<u32>(nifp, IF_TX_RINGS)).toBe(2);
    expect(load<u32>(nifp, IF_RX_RINGS)).toBe(3);
    for (let i: u32 = 0; i < 5; i++) {
      const k = i < 2 ? region_kring(desc, DIR_TX, i) : region_kring(desc, DIR_RX, i - 2);
      const ofs = load<i64>(nifp + IF_RING_OFS + 8 * i);
      expect(ofs).toBeGreaterThan(0);
      expect(<usize>(<i64>nifp + ofs)).toBe(hx_ring(k));
      // rings do not overlap the if header or each other
      expect(ofs).toBeGreaterThanOrEqual(<i64>(IF_RING_OFS + 8 * 5));
      if (i > 0) expect(ofs - load<i64>(nifp + IF_RING_OFS + 8 * (i - 1))).toBeGreaterThanOrEqual(<i64>(RING_SLOTS + SLOT_SIZE * 8));
    }
  });

  it('writes ring headers: num_slots, buf_size, ringid, dir', () => {
    const desc = hx_region(2, 3, 16, 1024, 1);
    for (let i: u32 = 0; i < 2; i++) {
      const r = hx_ring(region_kring(desc, DIR_TX, i));
      expect(load<u32>(r, RING_NUM_SLOTS)).toBe(16);
      expect(load<u32>(r, RING_BUF_SIZE)).toBe(1024);
      expect(load<u16>(r, RING_RINGID)).toBe(<u16>i);
      expect(load<u16>(r, RING_DIR)).toBe(<u16>DIR_TX);
    }
    for (let i: u32 = 0; i < 3; i++) {
      const r = hx_ring(region_kring(desc, DIR_RX, i));
      expect(load<u32>(r, RING_NUM_SLOTS)).toBe(16);
      expect(load<u32>(r, RING_BUF_SIZE)).toBe(1024);
      expect(load<u16>(r, RING_RINGID)).toBe(<u16>i);
      expect(load<u16>(r, RING_DIR)).toBe(<u16>DIR_RX);
    }
  });

  it('resolves buffers through buf_ofs (relative to the ring) inside the span, past the rings', () => {
    const ntx: u32 = 1, nrx: u32 = 2, ns: u32 = 8, bs: u32 = 2048, extra: u32 = 3;
    const desc = hx_region(ntx, nrx, ns, bs, extra);
    const base = <usize>load<u32>(desc, RGN_BASE);
    const span = region_span_size(ntx, nrx, ns, bs, extra);
    const pool = <usize>load<u32>(desc, RGN_BUF_BASE);
    const nbufs = load<u32>(desc, RGN_NBUFS);
    expect(pool & 4095).toBe(0);
    for (let r: u32 = 0; r < 3; r++) {
      const k = r < ntx ? region_kring(desc, DIR_TX, r) : region_kring(desc, DIR_RX, r - ntx);
      const ring = hx_ring(k);
      expect(<usize>(<i64>ring + load<i64>(ring, RING_BUF_OFS))).toBe(pool);
      expect(pool).toBeGreaterThanOrEqual(ring + RING_SLOTS + SLOT_SIZE * ns);
      expect(<usize>load<u32>(k, KR_BUF_BASE)).toBe(pool);
      for (let s: u32 = 0; s < ns; s++) expect(hx_buf(k, s)).toBe(pool + <usize>hx_idx(k, s) * bs);
    }
    // the last buffer ends inside the span
    expect(pool + <usize>nbufs * bs).toBeLessThanOrEqual(base + span);
    expect(span % 65536).toBe(0);
  });

  it('gives every slot a distinct buffer in [2, nbufs) with len 0 and flags 0, the rest to the stack', () => {
    const desc = hx_region(2, 2, 32, 2048, 9);
    const nbufs = load<u32>(desc, RGN_NBUFS);
    expect(nbufs).toBe(2 + 128 + 9);
    for (let d: u32 = 0; d < 2; d++) for (let i: u32 = 0; i < 2; i++) {
      const k = region_kring(desc, d, i);
      for (let s: u32 = 0; s < 32; s++) {
        expect(hx_idx(k, s)).toBeGreaterThanOrEqual(2);
        expect(hx_idx(k, s)).toBeLessThan(nbufs);
        expect(hx_len(k, s)).toBe(0);
        expect(hx_flags(k, s)).toBe(0);
      }
    }
    expect(pool_free_count(desc)).toBe(9);
    expect(hx_audit(desc)).toBe(0);
    // the audit itself notices a duplicate (2 problems: the repeat and the buffer nobody holds)
    const k0 = region_kring(desc, DIR_TX, 0);
    const keep = hx_idx(k0, 3);
    hx_set_idx(k0, 3, hx_idx(k0, 4));
    expect(hx_audit(desc)).toBe(2);
    hx_set_idx(k0, 3, keep);
    expect(hx_audit(desc)).toBe(0);
  });

  it('starts tx rings with head=cur=0, tail=n-1 and rx rings with head=cur=tail=0', () => {
    const desc = hx_region(2, 2, 8, 2048, 0);
    for (let i: u32 = 0; i < 2; i++) {
      const t = region_kring(desc, DIR_TX, i);
      expect(hx_head(t)).toBe(0);
      expect(hx_cur(t)).toBe(0);
      expect(hx_tail(t)).toBe(7);
      const r = region_kring(desc, DIR_RX, i);
      expect(hx_head(r)).toBe(0);
      expect(hx_cur(r)).toBe(0);
      expect(hx_tail(r)).toBe(0);
    }
  });

  it('fills krings: ring, nslots, hwcur/hwtail, dir, buffers, region, healthy', () => {
    const desc = hx_region(1, 1, 64, 4096, 0);
    const t = region_kring(desc, DIR_TX, 0);
    const r = region_kring(desc, DIR_RX, 0);
    expect(r - t).toBe(<usize>KRING_SIZE);
    for (let j = 0; j < 2; j++) {
      const k = j == 0 ? t : r;
      expect(load<u32>(k, KR_RING)).not.toBe(0);
      expect(load<u32>(k, KR_NSLOTS)).toBe(64);
      expect(load<u32>(k, KR_HWCUR)).toBe(0);
      expect(load<u32>(k, KR_RHEAD)).toBe(0);
      expect(load<u32>(k, KR_RCUR)).toBe(0);
      expect(load<u32>(k, KR_HWTAIL)).toBe(j == 0 ? 63 : 0);
      expect(load<u32>(k, KR_DIR)).toBe(j == 0 ? DIR_TX : DIR_RX);
      expect(load<u32>(k, KR_BUF_SIZE)).toBe(4096);
      expect(<usize>load<u32>(k, KR_REGION)).toBe(desc);
      expect(load<u32>(k, KR_FLAGS)).toBe(0);
      expect(load<i32>(k, KR_ERR)).toBe(0);
      expect(load<u32>(k, KR_PEER)).toBe(0);
    }
    expect(hx_audit(desc)).toBe(0);
  });

  it('works with tx rings only and with rx rings only', () => {
    const a = hx_region(3, 0, 8, 2048, 2);
    expect(region_kring(a, DIR_RX, 0)).toBe(0);
    expect(hx_tail(region_kring(a, DIR_TX, 2))).toBe(7);
    expect(load<u32>(a, RGN_NBUFS)).toBe(2 + 24 + 2);
    expect(hx_audit(a)).toBe(0);
    const b = hx_region(0, 2, 8, 2048, 0);
    expect(region_kring(b, DIR_TX, 0)).toBe(0);
    expect(hx_tail(region_kring(b, DIR_RX, 1))).toBe(0);
    expect(hx_audit(b)).toBe(0);
  });

  it('region_kring: tx rings first then rx, 0 when out of range', () => {
    const desc = hx_region(2, 3, 8, 2048, 0);
    const t0 = region_kring(desc, DIR_TX, 0);
    expect(region_kring(desc, DIR_TX, 1)).toBe(t0 + KRING_SIZE);
    expect(region_kring(desc, DIR_RX, 0)).toBe(t0 + 2 * KRING_SIZE);
    expect(region_kring(desc, DIR_RX, 2)).toBe(t0 + 4 * KRING_SIZE);
    expect(region_kring(desc, DIR_TX, 2)).toBe(0);
    expect(region_kring(desc, DIR_RX, 3)).toBe(0);
    expect(region_kring(desc, DIR_TX, 0xffffffff)).toBe(0);
  });
});

describe('region_init argument checks', () => {
  it('accepts exactly region_span_size bytes', () => {
    const span = region_span_size(1, 1, 8, 2048, 0);
    expect(init_poisoned(span, 0, 1, 1, 8, 2048, 0, E_OK)).toBeGreaterThan(0);
  });

  it('E_INVAL on bad geometry, misaligned base or null descriptor, writing nothing', () => {
    const span: u32 = 4 * 65536 - 8192;
    expect(init_poisoned(span, 0, 0, 0, 8, 2048, 0, E_INVAL)).toBe(0);       // no rings
    expect(init_poisoned(span, 0, 65, 1, 8, 2048, 0, E_INVAL)).toBe(0);      // > 64 tx rings
    expect(init_poisoned(span, 0, 1, 65, 8, 2048, 0, E_INVAL)).toBe(0);      // > 64 rx rings
    expect(init_poisoned(span, 0, 1, 1, 1, 2048, 0, E_INVAL)).toBe(0);       // 1 slot
    expect(init_poisoned(span, 0, 1, 1, 4097, 2048, 0, E_INVAL)).toBe(0);    // > 4096 slots
    expect(init_poisoned(span, 0, 1, 1, 8, 32, 0, E_INVAL)).toBe(0);         // buffers < 64
    expect(init_poisoned(span, 0, 1, 1, 8, 0, 0, E_INVAL)).toBe(0);          // no buffers
    expect(init_poisoned(span, 0, 1, 1, 8, 65536 + 64, 0, E_INVAL)).toBe(0);  // buffers > 64 KiB
    expect(init_poisoned(span, 0, 1, 1, 8, 100, 0, E_INVAL)).toBe(0);        // not a multiple of 64
    expect(init_poisoned(span, 0, 1, 1, 8, 2048, (1 << 20) + 1, E_INVAL)).toBe(0); // too many extra
    expect(init_poisoned(span, 8, 1, 1, 8, 2048, 0, E_INVAL)).toBe(0);       // base not 4096-aligned
    expect(init_poisoned(span, 2048, 1, 1, 8, 2048, 0, E_INVAL)).toBe(0);
    const base = hx_mem(65536);
    expect(region_init(0, base, 65536, 1, 1, 8, 2048, 0)).toBe(E_INVAL);  // null descriptor
  });

  it('E_NOFIT when the span is too small, writing nothing', () => {
    const span = region_span_size(1, 1, 8, 2048, 0);
    expect(span).toBe(65536);
    expect(init_poisoned(span - 1, 0, 1, 1, 8, 2048, 0, E_NOFIT)).toBe(0);
    expect(init_poisoned(0, 0, 1, 1, 8, 2048, 0, E_NOFIT)).toBe(0);
    const span2 = region_span_size(1, 1, 8, 2048, 40); // 2 pages
    expect(span2).toBe(131072);
    expect(init_poisoned(65536, 0, 1, 1, 8, 2048, 40, E_NOFIT)).toBe(0);
    expect(init_poisoned(131072, 0, 1, 1, 8, 2048, 40, E_OK)).toBeGreaterThan(0);
  });

  it('a 4096-aligned (not 64 KiB-aligned) base is accepted', () => {
    const span = region_span_size(1, 1, 8, 2048, 0);
    const base = hx_mem(span + 65536) + 4096;
    const desc = heap.alloc(region_priv_size(1, 1, 8, 0));
    expect(region_init(desc, base, span, 1, 1, 8, 2048, 0)).toBe(E_OK);
    expect(<usize>load<u32>(desc, RGN_BASE)).toBe(base);
    expect(hx_audit(desc)).toBe(0);
  });
});

describe('free-buffer stack', () => {
  it('holds the extra buffers, pops them LIFO, then answers 0', () => {
    const desc = hx_region(1, 1, 8, 2048, 3);
    const nbufs = load<u32>(desc, RGN_NBUFS);
    expect(nbufs).toBe(21);
    const a = pool_alloc(desc), b = pool_alloc(desc), c = pool_alloc(desc);
    // the three extra buffers are the ones no slot holds: 18, 19, 20 in some order
    expect(a + b + c).toBe(18 + 19 + 20);
    expect(a != b && b != c && a != c).toBe(true);
    expect(pool_free_count(desc)).toBe(0);
    expect(pool_alloc(desc)).toBe(0);
    expect(pool_alloc(desc)).toBe(0);
    expect(pool_free_count(desc)).toBe(0);
    // LIFO: last in, first out
    expect(pool_free(desc, b)).toBe(E_OK);
    expect(pool_free(desc, c)).toBe(E_OK);
    expect(pool_free(desc, a)).toBe(E_OK);
    expect(pool_free_count(desc)).toBe(3);
    expect(pool_alloc(desc)).toBe(a);
    expect(pool_alloc(desc)).toBe(c);
    expect(pool_free(desc, c)).toBe(E_OK);
    expect(pool_alloc(desc)).toBe(c);
    expect(pool_alloc(desc)).toBe(b);
    expect(pool_alloc(desc)).toBe(0);
    pool_free(desc, a); pool_free(desc, b); pool_free(desc, c);
    expect(hx_audit(desc)).toBe(0);
  });

  it('pool_free rejects 0, 1 and indices >= nbufs, accepts the edges 2 and nbufs-1', () => {
    const desc = hx_region(1, 1, 8, 2048, 2);
    const nbufs = load<u32>(desc, RGN_NBUFS);
    const x = pool_alloc(desc), y = pool_alloc(desc);
    expect(x + y).toBe(nbufs - 1 + nbufs - 2);
    expect(pool_free(desc, 0)).toBe(E_INVAL);
    expect(pool_free(desc, 1)).toBe(E_INVAL);
    expect(pool_free(desc, nbufs)).toBe(E_INVAL);
    expect(pool_free(desc, nbufs + 1)).toBe(E_INVAL);
    expect(pool_free(desc, 0xffffffff)).toBe(E_INVAL);
    expect(pool_free_count(desc)).toBe(0);
    expect(pool_free(desc, nbufs - 1)).toBe(E_OK);
    expect(pool_alloc(desc)).toBe(nbufs - 1);
    // buffer 2 is the lowest valid index (here held by tx slot 0, so take it back at once)
    expect(pool_free(desc, 2)).toBe(E_OK);
    expect(pool_alloc(desc)).toBe(2);
    expect(load<u32>(desc, RGN_FREE_COUNT)).toBe(0);
    pool_free(desc, x); pool_free(desc, y);
    expect(hx_audit(desc)).toBe(0);
  });

  it('pool_free refuses to push beyond nbufs - 2 entries (a full stack)', () => {
    const desc = hx_region(1, 1, 2, 2048, 1);         // nbufs = 7: slots hold 2..5, stack [6]
    expect(load<u32>(desc, RGN_NBUFS)).toBe(7);
    for (let b: u32 = 2; b <= 5; b++) expect(pool_free(desc, b)).toBe(E_OK);
    expect(pool_free_count(desc)).toBe(5);
    expect(pool_free(desc, 6)).toBe(E_INVAL);
    expect(pool_free_count(desc)).toBe(5);
    for (let b: u32 = 5; b >= 2; b--) expect(pool_alloc(desc)).toBe(b);
    expect(pool_free_count(desc)).toBe(1);
    expect(hx_audit(desc)).toBe(0);
  });

  it('an empty stack (extra = 0) answers 0 at once', () => {
    const desc = hx_region(1, 1, 8, 2048, 0);
    expect(pool_free_count(desc)).toBe(0);
    expect(pool_alloc(desc)).toBe(0);
    expect(hx_audit(desc)).toBe(0);
  });

  it('re-init of the same memory gives a fresh, whole region', () => {
    const span = region_span_size(1, 1, 8, 2048, 2);
    const base = hx_mem(span);
    const desc = heap.alloc(region_priv_size(1, 1, 8, 2));
    expect(region_init(desc, base, span, 1, 1, 8, 2048, 2)).toBe(E_OK);
    const k = region_kring(desc, DIR_TX, 0);
    hx_set_idx(k, 0, 0);
    store<u32>(hx_ring(k), 5, 20);
    pool_alloc(desc);
    expect(region_init(desc, base, span, 1, 1, 8, 2048, 2)).toBe(E_OK);
    expect(hx_head(k)).toBe(0);
    expect(pool_free_count(desc)).toBe(2);
    expect(hx_audit(desc)).toBe(0);
  });
});
