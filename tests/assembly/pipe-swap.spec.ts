import { hx_region, hx_ring, hx_slot, hx_audit } from './helpers.include';
import { RING_HEAD, RING_CUR, RING_TAIL, NS_BUF_CHANGED, NS_MOREFRAG, KR_HWTAIL, DIR_TX, DIR_RX, E_XREGION, E_INVAL, E_BUF_IDX } from '../../assembly/abi';
import { region_kring } from '../../assembly/region';
import { pipe_link, pipe_txsync, rxsync } from '../../assembly/pipe';

class Pair { tx: usize = 0; rx: usize = 0; desc: usize = 0; }
function pair(slots: u32): Pair {
  const p = new Pair();
  p.desc = hx_region(1, 1, slots, 2048, 0);
  p.tx = region_kring(p.desc, DIR_TX, 0);
  p.rx = region_kring(p.desc, DIR_RX, 0);
  pipe_link(p.tx, p.rx);
  return p;
}
function advance(k: usize, n: u32): void {
  const r = hx_ring(k);
  const size = load<u32>(r, 8);
  const h = (load<u32>(r, RING_HEAD) + n) % size;
  store<u32>(r, h, RING_HEAD); store<u32>(r, h, RING_CUR);
}
function space(k: usize): u32 { const r = hx_ring(k); const n = load<u32>(r, 8); return (load<u32>(r, RING_TAIL) + n - load<u32>(r, RING_HEAD)) % n; }

describe('pipe', () => {
  it('refuses to link rings of two regions or the wrong directions', () => {
    const a = pair(8), b = pair(8);
    expect(pipe_link(a.tx, b.rx)).toBe(E_XREGION);
    expect(pipe_link(a.rx, a.tx)).toBe(E_INVAL);
  });
  it('moves packets by swapping buffers, zero-copy', () => {
    const p = pair(8);
    const idx = load<u32>(hx_slot(p.tx, 0));
    store<u16>(hx_slot(p.tx, 0), 60, 4);
    advance(p.tx, 1);
    expect(pipe_txsync(p.tx)).toBe(1);
    rxsync(p.rx);
    expect(space(p.rx)).toBe(1);
    expect(load<u32>(hx_slot(p.rx, 0))).toBe(idx);
    expect(load<u16>(hx_slot(p.rx, 0), 4)).toBe(60);
    expect(load<u16>(hx_slot(p.rx, 0), 6) & NS_BUF_CHANGED).toBe(NS_BUF_CHANGED);
    expect(load<u32>(hx_slot(p.tx, 0))).not.toBe(idx);
    expect(hx_audit(p.desc)).toBe(0);
  });
  it('frees the tx ring at once while the reader has room', () => {
    const p = pair(8);
    advance(p.tx, 5);
    pipe_txsync(p.tx);
    expect(space(p.tx)).toBe(7);
  });
  it('blocks when the reader is full, and moves exactly what the reader released', () => {
    const p = pair(8);
    advance(p.tx, 7);
    expect(pipe_txsync(p.tx)).toBe(7);
    advance(p.tx, 5);
    expect(pipe_txsync(p.tx)).toBe(0); // reader full: pending, not dropped
    rxsync(p.rx);
    advance(p.rx, 3); // read 3
    rxsync(p.rx);
    expect(pipe_txsync(p.tx)).toBe(3);
    expect(hx_audit(p.desc)).toBe(0);
  });
  it('wraps around many times', () => {
    const p = pair(8);
    let moved: u32 = 0;
    for (let i = 0; i < 100; i++) {
      advance(p.tx, 3);
      moved += <u32>pipe_txsync(p.tx);
      rxsync(p.rx);
      advance(p.rx, space(p.rx));
      rxsync(p.rx);
    }
    expect(moved).toBe(300);
    expect(hx_audit(p.desc)).toBe(0);
  });
  it('delivers a MOREFRAG packet whole, or not at all', () => {
    const p = pair(8);
    store<u16>(hx_slot(p.tx, 0), NS_MOREFRAG, 6);
    store<u16>(hx_slot(p.tx, 1), NS_MOREFRAG, 6);
    advance(p.tx, 2);
    expect(pipe_txsync(p.tx)).toBe(0); // open chain held back
    store<u16>(hx_slot(p.tx, 2), 0, 6);
    advance(p.tx, 1);
    expect(pipe_txsync(p.tx)).toBe(1);
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(3);
    expect(load<u16>(hx_slot(p.rx, 0), 6) & NS_MOREFRAG).toBe(NS_MOREFRAG);
    expect(load<u16>(hx_slot(p.rx, 2), 6) & NS_MOREFRAG).toBe(0);
  });
  it('does not split a chain when the reader has less room than it needs', () => {
    const p = pair(8);
    advance(p.tx, 5);
    pipe_txsync(p.tx); // reader: 5 of 7
    store<u16>(hx_slot(p.tx, 5), NS_MOREFRAG, 6); store<u16>(hx_slot(p.tx, 6), NS_MOREFRAG, 6); store<u16>(hx_slot(p.tx, 7), 0, 6);
    advance(p.tx, 3);
    expect(pipe_txsync(p.tx)).toBe(0);
    expect(load<u32>(p.rx, KR_HWTAIL)).toBe(5);
  });
  it('breaks the reader, not the writer, when the reader corrupts a free slot', () => {
    const p = pair(8);
    store<u32>(hx_slot(p.rx, 0), 1);
    advance(p.tx, 1);
    expect(pipe_txsync(p.tx)).toBe(0);
    rxsync(p.rx);
    expect(rxsync(p.rx)).toBeLessThan(0);
  });
});
