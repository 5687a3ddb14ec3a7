import { hx_region, hx_ring, hx_slot, hx_audit } from './helpers.include';
import {
  RING_BUF_OFS, RING_NUM_SLOTS, RING_BUF_SIZE, RING_DIR, RING_HEAD, RING_CUR, RING_TAIL, IF_TX_RINGS, IF_RX_RINGS,
  IF_RING_OFS, RGN_IF, RGN_NBUFS, RGN_BUF_BASE, KR_RING, E_INVAL, E_NOFIT, DIR_TX, DIR_RX,
} from '../../assembly/abi';
import { region_span_size, region_priv_size, region_init, region_kring, region_nbufs, pool_alloc, pool_free, pool_free_count } from '../../assembly/region';

describe('region', () => {
  it('counts buffers: 2 reserved + one per slot + extra', () => { expect(region_nbufs(1, 1, 64, 10)).toBe(2 + 128 + 10); });
  it('sizes spans in whole 64 KiB pages', () => { expect(region_span_size(1, 1, 64, 2048, 0) % 65536).toBe(0); });
  it('refuses bad geometry with 0', () => {
    expect(region_span_size(0, 0, 64, 2048, 0)).toBe(0);
    expect(region_span_size(1, 1, 1, 2048, 0)).toBe(0);
    expect(region_span_size(1, 1, 64, 100, 0)).toBe(0);
    expect(region_span_size(65, 1, 64, 2048, 0)).toBe(0);
  });
  it('lays out netmap_if, rings and buffers', () => {
    const desc = hx_region(2, 1, 32, 2048, 4);
    const nifp = <usize>load<u32>(desc, RGN_IF);
    expect(load<u32>(nifp, IF_TX_RINGS)).toBe(2);
    expect(load<u32>(nifp, IF_RX_RINGS)).toBe(1);
    const k = region_kring(desc, DIR_RX, 0);
    const ring = <usize>load<u32>(k, KR_RING);
    expect(<usize>(nifp + <usize>load<i64>(nifp + IF_RING_OFS + 16))).toBe(ring); // rx after 2 tx
    expect(load<u32>(ring, RING_NUM_SLOTS)).toBe(32);
    expect(load<u32>(ring, RING_BUF_SIZE)).toBe(2048);
    expect(load<u16>(ring, RING_DIR)).toBe(1);
    expect(<usize>(ring + <usize>load<i64>(ring, RING_BUF_OFS))).toBe(<usize>load<u32>(desc, RGN_BUF_BASE));
  });
  it('starts tx rings all free and rx rings empty', () => {
    const desc = hx_region(1, 1, 16, 2048, 0);
    const tx = <usize>load<u32>(region_kring(desc, DIR_TX, 0), KR_RING);
    const rx = <usize>load<u32>(region_kring(desc, DIR_RX, 0), KR_RING);
    expect(load<u32>(tx, RING_HEAD)).toBe(0);
    expect(load<u32>(tx, RING_CUR)).toBe(0);
    expect(load<u32>(tx, RING_TAIL)).toBe(15);
    expect(load<u32>(rx, RING_TAIL)).toBe(0);
  });
  it('gives every slot its own buffer and the rest to the pool', () => {
    const desc = hx_region(1, 1, 16, 2048, 7);
    expect(pool_free_count(desc)).toBe(7);
    expect(hx_audit(desc)).toBe(0);
  });
  it('returns 0 for a ring that does not exist', () => {
    const desc = hx_region(1, 1, 16, 2048, 0);
    expect(region_kring(desc, DIR_TX, 1)).toBe(0);
    expect(region_kring(desc, DIR_RX, 5)).toBe(0);
  });
  it('refuses a span that is too small and a misaligned base', () => {
    const span = region_span_size(1, 1, 64, 2048, 0);
    const base = (heap.alloc(span + 65536) + 65535) & ~65535;
    const desc = heap.alloc(region_priv_size(1, 1, 64, 0));
    expect(region_init(desc, base, span - 65536, 1, 1, 64, 2048, 0)).toBe(E_NOFIT);
    expect(region_init(desc, base + 8, span, 1, 1, 64, 2048, 0)).toBe(E_INVAL);
  });
  it('pool: LIFO, 0 when empty, refuses reserved and out-of-range buffers', () => {
    const desc = hx_region(1, 1, 8, 2048, 2);
    const a = pool_alloc(desc), b = pool_alloc(desc);
    expect(a).toBeGreaterThan(1);
    expect(b).toBeGreaterThan(1);
    expect(pool_alloc(desc)).toBe(0);
    expect(pool_free(desc, 0)).toBe(E_INVAL);
    expect(pool_free(desc, 1)).toBe(E_INVAL);
    expect(pool_free(desc, load<u32>(desc, RGN_NBUFS))).toBe(E_INVAL);
    expect(pool_free(desc, b)).toBe(0);
    expect(pool_alloc(desc)).toBe(b);
    pool_free(desc, a); pool_free(desc, b);
    expect(hx_audit(desc)).toBe(0);
  });
});
