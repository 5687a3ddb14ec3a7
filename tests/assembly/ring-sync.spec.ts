import { hx_region, hx_ring, hx_slot, hx_audit } from './helpers.include';
import {
  RING_HEAD, RING_CUR, RING_TAIL, KR_HWCUR, KR_HWTAIL, KR_FLAGS, KR_ERR, KRF_BROKEN, NS_MOREFRAG,
  E_HEAD, E_CUR, E_BROKEN, E_BUF_IDX, E_BUF_LEN, E_FRAGS, DIR_TX, DIR_RX, RGN_NBUFS,
} from '../../assembly/abi';
import { region_kring } from '../../assembly/region';
import { ring_dist, ring_next, ring_prev, sync_prologue, tx_scan, kring_reset, scan_pkts } from '../../assembly/ring';

function ring(k: usize): usize { return hx_ring(k); }
function setHC(k: usize, h: u32, c: u32): void { store<u32>(ring(k), h, RING_HEAD); store<u32>(ring(k), c, RING_CUR); }

describe('ring arithmetic', () => {
  it('wraps next and prev', () => { expect(ring_next(7, 8)).toBe(0); expect(ring_prev(0, 8)).toBe(7); });
  it('measures distance circularly', () => { expect(ring_dist(6, 2, 8)).toBe(4); expect(ring_dist(2, 6, 8)).toBe(4); expect(ring_dist(3, 3, 8)).toBe(0); });
});

describe('tx sync prologue', () => {
  it('accepts head and cur up to tail', () => {
    const k = region_kring(hx_region(1, 1, 8, 2048, 0), DIR_TX, 0);
    setHC(k, 7, 7);
    expect(sync_prologue(k)).toBe(0);
  });
  it('accepts cur ahead of head', () => {
    const k = region_kring(hx_region(1, 1, 8, 2048, 0), DIR_TX, 0);
    setHC(k, 2, 5);
    expect(sync_prologue(k)).toBe(0);
  });
  it('rejects head past tail, breaks the ring and touches nothing', () => {
    const k = region_kring(hx_region(1, 1, 8, 2048, 0), DIR_TX, 0);
    store<u32>(k, 4, KR_HWTAIL); store<u32>(ring(k), 4, RING_TAIL);
    setHC(k, 5, 5);
    expect(sync_prologue(k)).toBe(E_HEAD);
    expect(load<u32>(k, KR_FLAGS) & KRF_BROKEN).toBe(KRF_BROKEN);
    expect(load<i32>(k, KR_ERR)).toBe(E_HEAD);
    expect(load<u32>(ring(k), RING_HEAD)).toBe(5);
    expect(load<u32>(ring(k), RING_TAIL)).toBe(4);
  });
  it('rejects cur past tail', () => {
    const k = region_kring(hx_region(1, 1, 8, 2048, 0), DIR_TX, 0);
    store<u32>(k, 4, KR_HWTAIL);
    setHC(k, 2, 6);
    expect(sync_prologue(k)).toBe(E_CUR);
  });
  it('rejects head or cur beyond the ring size', () => {
    const k = region_kring(hx_region(1, 1, 8, 2048, 0), DIR_TX, 0);
    setHC(k, 8, 8);
    expect(sync_prologue(k)).toBe(E_HEAD);
    const k2 = region_kring(hx_region(1, 1, 8, 2048, 0), DIR_TX, 0);
    setHC(k2, 1, 100);
    expect(sync_prologue(k2)).toBe(E_CUR);
  });
  it('checks the wrapped case: tail behind head', () => {
    const k = region_kring(hx_region(1, 1, 8, 2048, 0), DIR_TX, 0);
    // old head 6, tail 2 (wrapped): valid heads are 6, 7, 0, 1, 2
    store<u32>(k, 6, 16); store<u32>(k, 6, KR_HWCUR); store<u32>(k, 2, KR_HWTAIL);
    setHC(k, 1, 2);
    expect(sync_prologue(k)).toBe(0);
    setHC(k, 3, 3);
    expect(sync_prologue(k)).toBe(E_HEAD);
  });
  it('stays broken until reset, then works again', () => {
    const k = region_kring(hx_region(1, 1, 8, 2048, 0), DIR_TX, 0);
    store<u32>(k, 4, KR_HWTAIL);
    setHC(k, 6, 6);
    expect(sync_prologue(k)).toBe(E_HEAD);
    setHC(k, 1, 1);
    expect(sync_prologue(k)).toBe(E_BROKEN);
    kring_reset(k);
    expect(load<u32>(ring(k), RING_HEAD)).toBe(0);
    expect(load<u32>(ring(k), RING_TAIL)).toBe(4);
    setHC(k, 1, 1);
    expect(sync_prologue(k)).toBe(0);
  });
  it('restores a tail the user overwrote', () => {
    const k = region_kring(hx_region(1, 1, 8, 2048, 0), DIR_TX, 0);
    store<u32>(ring(k), 3, RING_TAIL);
    setHC(k, 0, 0);
    expect(sync_prologue(k)).toBe(0);
    expect(load<u32>(ring(k), RING_TAIL)).toBe(7);
  });
});

describe('rx sync prologue', () => {
  it('accepts head within [hwcur, hwtail] and rejects beyond', () => {
    const k = region_kring(hx_region(1, 1, 8, 2048, 0), DIR_RX, 0);
    store<u32>(k, 3, KR_HWTAIL);
    setHC(k, 3, 3);
    expect(sync_prologue(k)).toBe(0);
    const k2 = region_kring(hx_region(1, 1, 8, 2048, 0), DIR_RX, 0);
    store<u32>(k2, 3, KR_HWTAIL);
    setHC(k2, 4, 4);
    expect(sync_prologue(k2)).toBe(E_HEAD);
  });
});

describe('tx slot scan', () => {
  it('counts whole packets and holds back an open chain', () => {
    const k = region_kring(hx_region(1, 1, 16, 2048, 0), DIR_TX, 0);
    store<u16>(hx_slot(k, 0), NS_MOREFRAG, 6); store<u16>(hx_slot(k, 1), 0, 6); // packet of 2
    store<u16>(hx_slot(k, 2), 0, 6);                                         // packet of 1
    store<u16>(hx_slot(k, 3), NS_MOREFRAG, 6);                               // open chain
    setHC(k, 4, 4);
    expect(sync_prologue(k)).toBe(0);
    expect(tx_scan(k, 0, 1024)).toBe(3);
    expect(scan_pkts).toBe(2);
  });
  it('never splits a packet at the batch bound', () => {
    const k = region_kring(hx_region(1, 1, 16, 2048, 0), DIR_TX, 0);
    store<u16>(hx_slot(k, 0), 0, 6); store<u16>(hx_slot(k, 1), NS_MOREFRAG, 6); store<u16>(hx_slot(k, 2), 0, 6);
    setHC(k, 3, 3);
    sync_prologue(k);
    expect(tx_scan(k, 0, 2)).toBe(1);
  });
  it('rejects a reserved buffer index', () => {
    const k = region_kring(hx_region(1, 1, 16, 2048, 0), DIR_TX, 0);
    store<u32>(hx_slot(k, 1), 1);
    setHC(k, 2, 2);
    sync_prologue(k);
    expect(tx_scan(k, 0, 1024)).toBe(E_BUF_IDX);
    expect(load<u32>(k, KR_FLAGS) & KRF_BROKEN).toBe(KRF_BROKEN);
  });
  it('rejects an index beyond the region', () => {
    const desc = hx_region(1, 1, 16, 2048, 0);
    const k = region_kring(desc, DIR_TX, 0);
    store<u32>(hx_slot(k, 0), load<u32>(desc, RGN_NBUFS));
    setHC(k, 1, 1);
    sync_prologue(k);
    expect(tx_scan(k, 0, 1024)).toBe(E_BUF_IDX);
  });
  it('rejects len larger than the buffer', () => {
    const k = region_kring(hx_region(1, 1, 16, 256, 0), DIR_TX, 0);
    store<u16>(hx_slot(k, 0), 257, 4);
    setHC(k, 1, 1);
    sync_prologue(k);
    expect(tx_scan(k, 0, 1024)).toBe(E_BUF_LEN);
  });
  it('rejects a chain longer than 64 fragments', () => {
    const k = region_kring(hx_region(1, 1, 128, 2048, 0), DIR_TX, 0);
    for (let i: u32 = 0; i < 70; i++) store<u16>(hx_slot(k, i), NS_MOREFRAG, 6);
    setHC(k, 70, 70);
    sync_prologue(k);
    expect(tx_scan(k, 0, 1024)).toBe(E_FRAGS);
  });
  it('accepts a packet of exactly 64 fragments (NETMAP_MAX_FRAGS)', () => {
    const k = region_kring(hx_region(1, 1, 128, 2048, 0), DIR_TX, 0);
    for (let i: u32 = 0; i < 63; i++) store<u16>(hx_slot(k, i), NS_MOREFRAG, 6);
    store<u16>(hx_slot(k, 63), 0, 6);
    setHC(k, 64, 64);
    sync_prologue(k);
    expect(tx_scan(k, 0, 1024)).toBe(64);
    expect(scan_pkts).toBe(1);
  });
  it('repairs duplicate and bad indices on reset so no buffer is lost', () => {
    const desc = hx_region(1, 1, 16, 2048, 3);
    const k = region_kring(desc, DIR_TX, 0);
    const dup = load<u32>(hx_slot(k, 1));
    store<u32>(hx_slot(k, 0), dup);     // buffer of slot 0 now held by nobody
    store<u32>(hx_slot(k, 5), 0);       // reserved
    store<u32>(hx_slot(k, 6), 999999);  // out of range
    expect(hx_audit(desc)).toBeGreaterThan(0);
    setHC(k, 7, 7);
    sync_prologue(k);
    expect(tx_scan(k, 0, 1024)).toBe(E_BUF_IDX);
    kring_reset(k);
    expect(hx_audit(desc)).toBe(0);
  });
});
