// The CSB protocol of assembly/csb.ts, both halves in one memory: a guest's view of the ring is
// the ring itself (as for a guest that maps the region), the switch works through its shadow.
import {
  RING_HEAD, RING_TAIL, KR_USER, KR_RING, CSB_PAGE, CSB_ATOK_TX, CSB_ATOK_RX, CSB_KTOA_TX,
  CSB_KTOA_RX, CSB_ATOK_HEAD, CSB_ATOK_APPL_NEED_KICK, CSB_KTOA_HWTAIL,
  CSB_KTOA_KERN_NEED_KICK, CSB_KTOA_ERROR, CSB_KTOA_KICK_SEQ, SW_PT_PORTS, SW_KICKS_DUE, DIR_TX, DIR_RX, E_HEAD, E_INVAL,
} from '../../assembly/abi';
import { region_kring } from '../../assembly/region';
import { sw_priv_size, sw_init, sw_attach, sw_detach, sw_round } from '../../assembly/switch/forward';
import { pt_attach, pt_detach, pt_sleep, pt_wake, pt_take_kick, pt_app_sync, pt_app_want_kick, pt_app_awake } from '../../assembly/csb';
import { gen_size, gen_init, gen_tx, gen_rx } from '../../assembly/gen';
import { hx_mem, hx_region } from './helpers.include';

class Pt { tx: usize = 0; rx: usize = 0; idx: i32 = -1; csb: usize = 0; }

function setup(sw: usize): Pt {
  const desc = hx_region(1, 1, 64, 2048, 0);
  const p = new Pt();
  p.tx = region_kring(desc, DIR_TX, 0); p.rx = region_kring(desc, DIR_RX, 0);
  p.idx = sw_attach(sw, p.tx, p.rx);
  p.csb = hx_mem(CSB_PAGE);
  expect(pt_attach(sw, <u32>p.idx, p.csb, heap.alloc(128))).toBe(0);
  return p;
}
function ring(k: usize): usize { return <usize>load<u32>(k, KR_RING); }
function newSwitch(): usize { const sw = hx_mem(sw_priv_size()); sw_init(sw); return sw; }
// frames to the broadcast address from 02:00:00:00:00:01 (the template starts at offset 256)
function newGen(): usize {
  const g = heap.alloc(gen_size());
  memory.fill(g, 0, gen_size());
  memory.fill(g + 256, 0xff, 6);
  store<u8>(g + 262, 2); store<u8>(g + 267, 1);
  gen_init(g, 60, 1, 1, 2, 2, 1, 1, 1, 1);
  return g;
}

describe('CSB', () => {
  it('the switch reads head/cur only from the CSB: a guest writing the ring header alone moves nothing', () => {
    const sw = newSwitch(), a = setup(sw), b = setup(sw), g = newGen();
    expect(load<u32>(sw, SW_PT_PORTS)).toBe(2);
    expect(gen_tx(g, a.tx, 10)).toBe(10, 'gen'); // head advanced in the ring, not yet in the CSB
    expect(sw_round(sw, 1)).toBe(0);
    pt_app_sync(ring(a.tx), a.csb + CSB_ATOK_TX, a.csb + CSB_KTOA_TX);
    expect(atomic.load<u32>(a.csb + CSB_ATOK_TX, CSB_ATOK_HEAD)).toBe(10, 'atok');
    expect(sw_round(sw, 1)).toBe(10, 'round');
    expect(atomic.load<u32>(b.csb + CSB_KTOA_RX, CSB_KTOA_HWTAIL)).toBe(10);
    pt_app_sync(ring(b.rx), b.csb + CSB_ATOK_RX, b.csb + CSB_KTOA_RX);
    expect(load<u32>(ring(b.rx), RING_TAIL)).toBe(10);
    expect(gen_rx(g, b.rx)).toBe(10);
  });

  it('kicks go only to a guest that asked, once, and only when its ring moved', () => {
    const sw = newSwitch(), a = setup(sw), b = setup(sw), g = newGen();
    // b finds nothing and asks for a kick; the tail has not moved, so it may sleep
    pt_app_sync(ring(b.rx), b.csb + CSB_ATOK_RX, b.csb + CSB_KTOA_RX);
    expect(pt_app_want_kick(ring(b.rx), b.csb + CSB_ATOK_RX, b.csb + CSB_KTOA_RX)).toBe(0);
    sw_round(sw, 1);
    expect(load<u32>(sw, SW_KICKS_DUE)).toBe(0); // nothing moved: no kick
    gen_tx(g, a.tx, 5);
    pt_app_sync(ring(a.tx), a.csb + CSB_ATOK_TX, a.csb + CSB_KTOA_TX);
    const seq = atomic.load<i32>(b.csb + CSB_KTOA_TX, CSB_KTOA_KICK_SEQ);
    sw_round(sw, 1);
    expect(load<u32>(sw, SW_KICKS_DUE)).toBe(1);
    expect(pt_take_kick(sw, <u32>b.idx)).toBe(1);
    expect(pt_take_kick(sw, <u32>a.idx)).toBe(0); // a never asked
    expect(atomic.load<i32>(b.csb + CSB_KTOA_TX, CSB_KTOA_KICK_SEQ)).toBe(seq + 1);
    expect(atomic.load<u32>(b.csb + CSB_ATOK_RX, CSB_ATOK_APPL_NEED_KICK)).toBe(0); // claimed
    gen_tx(g, a.tx, 5);
    pt_app_sync(ring(a.tx), a.csb + CSB_ATOK_TX, a.csb + CSB_KTOA_TX);
    sw_round(sw, 1);
    expect(load<u32>(sw, SW_KICKS_DUE)).toBe(0); // b did not ask again
  });

  it('a guest that asks for a kick after news arrived is told not to sleep', () => {
    const sw = newSwitch(), a = setup(sw), b = setup(sw), g = newGen();
    gen_tx(g, a.tx, 3);
    pt_app_sync(ring(a.tx), a.csb + CSB_ATOK_TX, a.csb + CSB_KTOA_TX);
    sw_round(sw, 1); // delivered to b before b looked
    expect(pt_app_want_kick(ring(b.rx), b.csb + CSB_ATOK_RX, b.csb + CSB_KTOA_RX)).toBe(1);
    expect(atomic.load<u32>(b.csb + CSB_ATOK_RX, CSB_ATOK_APPL_NEED_KICK)).toBe(0);
    expect(load<u32>(ring(b.rx), RING_TAIL)).toBe(3);
    pt_app_awake(b.csb + CSB_ATOK_RX);
  });

  it('a switch going to sleep asks the guests for a kick, re-checks, and is kicked once', () => {
    const sw = newSwitch(), a = setup(sw), g = newGen();
    expect(pt_sleep(sw)).toBe(0); // nothing pending: it may sleep
    expect(atomic.load<u32>(a.csb + CSB_KTOA_TX, CSB_KTOA_KERN_NEED_KICK)).toBe(1);
    gen_tx(g, a.tx, 2);
    expect(pt_app_sync(ring(a.tx), a.csb + CSB_ATOK_TX, a.csb + CSB_KTOA_TX)).toBe(1); // kick it
    expect(pt_app_sync(ring(a.tx), a.csb + CSB_ATOK_TX, a.csb + CSB_KTOA_TX)).toBe(0); // once
    expect(pt_sleep(sw)).toBe(1); // work pending now: do not sleep
    pt_wake(sw);
    expect(atomic.load<u32>(a.csb + CSB_KTOA_TX, CSB_KTOA_KERN_NEED_KICK)).toBe(0);
    expect(pt_app_sync(ring(a.tx), a.csb + CSB_ATOK_TX, a.csb + CSB_KTOA_TX)).toBe(0);
  });

  it('garbage in the CSB breaks only that port, and the guest reads why', () => {
    const sw = newSwitch(), a = setup(sw), b = setup(sw), c = setup(sw), g = newGen();
    atomic.store<u32>(a.csb + CSB_ATOK_TX, 9999, CSB_ATOK_HEAD);
    gen_tx(g, b.tx, 4);
    pt_app_sync(ring(b.tx), b.csb + CSB_ATOK_TX, b.csb + CSB_KTOA_TX);
    expect(sw_round(sw, 1)).toBe(4); // b's frames reach c all the same (a's rx side is healthy too)
    expect(atomic.load<i32>(a.csb + CSB_KTOA_TX, CSB_KTOA_ERROR)).toBe(E_HEAD);
    expect(atomic.load<u32>(c.csb + CSB_KTOA_RX, CSB_KTOA_HWTAIL)).toBe(4);
    expect(atomic.load<i32>(c.csb + CSB_KTOA_TX, CSB_KTOA_ERROR)).toBe(0);
    // the guest's own ring header was never touched by the switch's checks
    expect(load<u32>(ring(a.tx), RING_HEAD)).toBe(0);
  });

  it('detaching gives the rings their own user fields back; bad calls are refused', () => {
    const sw = newSwitch(), a = setup(sw);
    expect(pt_attach(sw, <u32>a.idx, a.csb, heap.alloc(128))).toBe(E_INVAL); // already
    expect(pt_attach(sw, 200, a.csb, heap.alloc(128))).toBe(E_INVAL); // no such port
    expect(pt_detach(sw, <u32>a.idx)).toBe(0);
    expect(load<u32>(a.tx, KR_USER)).toBe(load<u32>(a.tx, KR_RING));
    expect(load<u32>(sw, SW_PT_PORTS)).toBe(0);
    expect(pt_detach(sw, <u32>a.idx)).toBe(E_INVAL);
    expect(pt_attach(sw, <u32>a.idx, a.csb, heap.alloc(128))).toBe(0);
    expect(sw_detach(sw, <u32>a.idx)).toBe(0); // detaching the port ends passthrough too
    expect(load<u32>(sw, SW_PT_PORTS)).toBe(0);
    expect(load<u32>(a.rx, KR_USER)).toBe(load<u32>(a.rx, KR_RING));
  });
});
