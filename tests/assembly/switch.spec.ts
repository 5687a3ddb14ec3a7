import {
  SLOT_SIZE, RING_HEAD, RING_CUR, RING_TAIL, RING_SLOTS, KR_RING, KR_BUF_BASE, KR_BUF_SIZE,
  SW_PORTS, PORT_SIZE, P_TX_PKTS, P_RX_PKTS, P_DROP_FULL, P_DROP_LOOKUP, P_DROP_NODST,
  SW_FLOOD_EXTRA, NS_MOREFRAG, NS_NO_LEARN, DIR_TX, DIR_RX, SW_MAX_PORTS,
} from '../../assembly/abi';
import { region_span_size, region_priv_size, region_init, region_kring } from '../../assembly/region';
import { sw_priv_size, sw_init, sw_attach, sw_detach, sw_round } from '../../assembly/switch/forward';

function aligned(bytes: u32): usize { return (heap.alloc(bytes + 65536) + 65535) & ~65535; }

class P { tx: usize = 0; rx: usize = 0; idx: i32 = -1; }

function port(sw: usize, slots: u32): P {
  const span = region_span_size(1, 1, slots, 2048, 0);
  const base = aligned(span);
  const desc = heap.alloc(region_priv_size(1, 1, slots, 0));
  region_init(desc, base, span, 1, 1, slots, 2048, 0);
  const p = new P();
  p.tx = region_kring(desc, DIR_TX, 0);
  p.rx = region_kring(desc, DIR_RX, 0);
  p.idx = sw_attach(sw, p.tx, p.rx);
  return p;
}

function ring(k: usize): usize { return <usize>load<u32>(k, KR_RING); }
function buf(k: usize, slot: u32): usize {
  const s = ring(k) + RING_SLOTS + <usize>SLOT_SIZE * slot;
  return <usize>load<u32>(k, KR_BUF_BASE) + <usize>load<u32>(s) * <usize>load<u32>(k, KR_BUF_SIZE);
}
/** Queue one frame dst <- src MAC (last byte only) of `len` bytes with slot flags. */
function send(p: P, dst: u8, src: u8, len: u16, flags: u16): void {
  const r = ring(p.tx);
  const h = load<u32>(r, RING_HEAD);
  const b = buf(p.tx, h);
  memory.fill(b, 0, 14);
  store<u8>(b, 2); store<u8>(b + 5, dst);
  store<u8>(b + 6, 2); store<u8>(b + 11, src);
  const s = r + RING_SLOTS + <usize>SLOT_SIZE * h;
  store<u16>(s, len, 4);
  store<u16>(s, flags, 6);
  const n = load<u32>(r, 8);
  store<u32>(r, h + 1 == n ? 0 : h + 1, RING_HEAD);
  store<u32>(r, h + 1 == n ? 0 : h + 1, RING_CUR);
}
function pending(p: P): u32 { const r = ring(p.rx); const n = load<u32>(r, 8); return (load<u32>(r, RING_TAIL) + n - load<u32>(r, RING_HEAD)) % n; }
function consume(p: P): void { const r = ring(p.rx); store<u32>(r, load<u32>(r, RING_TAIL), RING_HEAD); store<u32>(r, load<u32>(r, RING_TAIL), RING_CUR); }
function ctr(sw: usize, p: P, off: u32): u64 { return load<u64>(<usize>load<u32>(sw, SW_PORTS) + <usize>PORT_SIZE * <usize>p.idx + off); }
function mksw(): usize { const sw = heap.alloc(sw_priv_size()); sw_init(sw); return sw; }

describe('VALE switch (wasm level)', () => {
  it('attaches ports at indices 0, 1, 2', () => {
    const sw = mksw();
    expect(port(sw, 64).idx).toBe(0);
    expect(port(sw, 64).idx).toBe(1);
    expect(port(sw, 64).idx).toBe(2);
  });
  it('floods an unknown destination to all other ports, then unicasts the reply', () => {
    const sw = mksw();
    const a = port(sw, 64), b = port(sw, 64), c = port(sw, 64);
    send(a, 2, 1, 60, 0);
    sw_round(sw, 1);
    expect(pending(b)).toBe(1);
    expect(pending(c)).toBe(1);
    expect(pending(a)).toBe(0);
    expect(load<u64>(sw, SW_FLOOD_EXTRA)).toBe(1);
    consume(b); consume(c);
    send(b, 1, 2, 60, 0);
    sw_round(sw, 1);
    expect(pending(a)).toBe(1);
    expect(pending(c)).toBe(0);
  });
  it('drops a frame whose learned destination is its source', () => {
    const sw = mksw();
    const a = port(sw, 64); port(sw, 64);
    send(a, 9, 1, 60, 0); // learn 1 on a
    send(a, 1, 9, 60, 0); // to 1, which lives on a
    sw_round(sw, 1);
    expect(ctr(sw, a, P_DROP_LOOKUP)).toBe(1);
  });
  it('drops runts (< 14 bytes) as lookup drops', () => {
    const sw = mksw();
    const a = port(sw, 64); port(sw, 64);
    send(a, 2, 1, 13, 0);
    sw_round(sw, 1);
    expect(ctr(sw, a, P_DROP_LOOKUP)).toBe(1);
    expect(ctr(sw, a, P_TX_PKTS)).toBe(1);
  });
  it('counts full destination rings as drops on the receiver', () => {
    const sw = mksw();
    const a = port(sw, 128), b = port(sw, 16);
    for (let i = 0; i < 40; i++) send(a, 0xff, 1, 60, 0);
    sw_round(sw, 1);
    expect(pending(b)).toBe(15);
    expect(ctr(sw, b, P_RX_PKTS)).toBe(15);
    expect(ctr(sw, b, P_DROP_FULL)).toBe(25);
  });
  it('sends to an explicit destination (flags high byte) and counts an absent one', () => {
    const sw = mksw();
    const a = port(sw, 64), b = port(sw, 64), c = port(sw, 64);
    send(a, 0xff, 1, 60, <u16>((c.idx + 1) << 8));
    send(a, 0xff, 1, 60, <u16>(100 << 8));
    sw_round(sw, 1);
    expect(pending(c)).toBe(1);
    expect(pending(b)).toBe(0);
    expect(ctr(sw, a, P_DROP_NODST)).toBe(1);
  });
  it('moves MOREFRAG frames whole and marks the fragment count', () => {
    const sw = mksw();
    const a = port(sw, 64), b = port(sw, 64);
    send(a, 2, 1, 100, NS_MOREFRAG);
    send(a, 2, 1, 100, NS_MOREFRAG);
    send(a, 2, 1, 100, 0);
    sw_round(sw, 1);
    expect(pending(b)).toBe(3);
    const s0 = ring(b.rx) + RING_SLOTS;
    expect(load<u16>(s0, 6)).toBe(<u16>((3 << 8) | NS_MOREFRAG));
    expect(load<u16>(s0 + 32, 6)).toBe(<u16>(3 << 8));
  });
  it('forgets what was learned on a detached port', () => {
    const sw = mksw();
    const a = port(sw, 64), b = port(sw, 64), c = port(sw, 64);
    send(b, 0xff, 2, 60, 0); // learn 2 on b
    sw_round(sw, 1);
    consume(a); consume(c);
    expect(sw_detach(sw, b.idx)).toBe(0);
    send(a, 2, 1, 60, 0); // 2's port is gone: flood to the rest
    sw_round(sw, 1);
    expect(pending(c)).toBe(1);
  });
  it('conserves frames: tx + flood extra = rx + drops', () => {
    const sw = mksw();
    const a = port(sw, 64), b = port(sw, 16), c = port(sw, 64);
    for (let i = 0; i < 30; i++) send(a, 0xff, 1, 60, 0);
    sw_round(sw, 1);
    const tx = ctr(sw, a, P_TX_PKTS) + ctr(sw, b, P_TX_PKTS) + ctr(sw, c, P_TX_PKTS);
    const rx = ctr(sw, a, P_RX_PKTS) + ctr(sw, b, P_RX_PKTS) + ctr(sw, c, P_RX_PKTS);
    const drops = ctr(sw, b, P_DROP_FULL) + ctr(sw, c, P_DROP_FULL);
    expect(tx + load<u64>(sw, SW_FLOOD_EXTRA)).toBe(rx + drops);
    expect(rx).toBe(45);
  });
  it('sends broadcast to every port but the source', () => {
    const sw = mksw();
    const a = port(sw, 64), b = port(sw, 64), c = port(sw, 64), d = port(sw, 64);
    send(b, 0xff, 2, 60, 0);
    store<u8>(buf(b.tx, 0), 0xff); // ff:..:ff
    sw_round(sw, 1);
    expect(pending(a)).toBe(1);
    expect(pending(c)).toBe(1);
    expect(pending(d)).toBe(1);
    expect(pending(b)).toBe(0);
    expect(load<u64>(sw, SW_FLOOD_EXTRA)).toBe(2);
  });
  it('relearns a station that moved to another port', () => {
    const sw = mksw();
    const a = port(sw, 64), b = port(sw, 64), c = port(sw, 64);
    send(b, 0xff, 7, 60, 0); // station 7 on b
    sw_round(sw, 1); consume(a); consume(c);
    send(a, 7, 1, 60, 0);
    sw_round(sw, 1);
    expect(pending(b)).toBe(1);
    expect(pending(c)).toBe(0);
    consume(b);
    send(c, 0xff, 7, 60, 0); // station 7 moves to c
    sw_round(sw, 1); consume(a); consume(b);
    send(a, 7, 1, 60, 0);
    sw_round(sw, 1);
    expect(pending(c)).toBe(1);
    expect(pending(b)).toBe(0);
  });
  it('does not learn from NS_NO_LEARN frames', () => {
    const sw = mksw();
    const a = port(sw, 64), b = port(sw, 64), c = port(sw, 64);
    send(b, 0xff, 5, 60, NS_NO_LEARN);
    sw_round(sw, 1); consume(a); consume(c);
    send(a, 5, 1, 60, 0); // 5 unknown: floods
    sw_round(sw, 1);
    expect(pending(b)).toBe(1);
    expect(pending(c)).toBe(1);
  });
  it('floods on request (high byte 255) without learning', () => {
    const sw = mksw();
    const a = port(sw, 64), b = port(sw, 64), c = port(sw, 64);
    send(a, 2, 1, 60, <u16>(255 << 8));
    sw_round(sw, 1);
    expect(pending(b)).toBe(1);
    expect(pending(c)).toBe(1);
  });
  it('takes 254 ports and refuses the 255th', () => {
    const sw = mksw();
    for (let i: u32 = 0; i < SW_MAX_PORTS; i++) expect(port(sw, 8).idx).toBe(<i32>i);
    expect(port(sw, 8).idx).toBeLessThan(0);
  });
});
