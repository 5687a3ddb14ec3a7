// The flow hash that spreads a vhost-user port's received frames over the guest's RX queues
// (assembly/virtio/steer.ts): one flow always hashes alike, flows differing only in a port or
// an address differ, IPv4 fragments hash by addresses alone, VLAN tags are looked through, and
// short or odd frames never read past their length (bytes beyond it are changed to show it).
// vq_push_steer itself runs against real virtqueues in tests/integration/vhost-mq.test.ts.
import { flow_hash } from '../../assembly/virtio/steer';

const HDR: u32 = 12;

function buf(): usize { const p = heap.alloc(2048); memory.fill(p, 0, 2048); return p; }

/** virtio-net header + Ethernet (optional VLAN tags) + IPv4/UDP from sport to dport. */
function v4(p: usize, sport: u16, dport: u16, src: u32, tags: u32 = 0, frag: u16 = 0): u32 {
  let o: u32 = HDR + 12;
  for (let t: u32 = 0; t < tags; t++) { store<u8>(p + o, 0x81); store<u8>(p + o + 1, 0); store<u8>(p + o + 3, <u8>(t + 5)); o += 4; }
  store<u8>(p + o, 0x08); store<u8>(p + o + 1, 0x00); o += 2;
  store<u8>(p + o, 0x45); store<u8>(p + o + 6, <u8>(frag >> 8)); store<u8>(p + o + 7, <u8>frag); store<u8>(p + o + 9, 17);
  store<u32>(p + o + 12, src); store<u32>(p + o + 16, 0x0200000a);
  store<u8>(p + o + 20, <u8>(sport >> 8)); store<u8>(p + o + 21, <u8>sport);
  store<u8>(p + o + 22, <u8>(dport >> 8)); store<u8>(p + o + 23, <u8>dport);
  return o + 28;
}

describe('flow_hash', () => {
  it('is the same for every frame of a flow, whatever the payload', () => {
    const a = buf(), b = buf();
    const la = v4(a, 1000, 80, 0x0100000a), lb = v4(b, 1000, 80, 0x0100000a);
    store<u8>(b + lb, 0x77);
    expect(flow_hash(a, la)).toBe(flow_hash(b, lb + 10));
  });
  it('differs with the source port or address (16 flows land on more than one of two queues)', () => {
    const p = buf();
    let odd: u32 = 0;
    for (let s: u16 = 0; s < 16; s++) odd += flow_hash(p, v4(p, 4000 + s, 9, 0x0100000a)) & 1;
    expect(odd > 0 && odd < 16).toBe(true);
    const h1 = flow_hash(p, v4(p, 1, 2, 0x0100000a)), h2 = flow_hash(p, v4(p, 1, 2, 0x0300000a));
    expect(h1 != h2).toBe(true);
  });
  it('hashes IPv4 fragments by addresses only (every fragment of a datagram alike)', () => {
    const p = buf();
    const a = flow_hash(p, v4(p, 1, 2, 0x0100000a, 0, 0x2000)), b = flow_hash(p, v4(p, 7, 8, 0x0100000a, 0, 0x00b9));
    expect(a).toBe(b);
  });
  it('looks through VLAN tags', () => {
    const p = buf();
    const t0 = flow_hash(p, v4(p, 5, 6, 0x0100000a, 1)), t1 = flow_hash(p, v4(p, 5, 6, 0x0100000a, 1));
    expect(t0).toBe(t1);
    expect(flow_hash(p, v4(p, 5, 6, 0x0100000a, 2)) != flow_hash(p, v4(p, 9, 6, 0x0100000a, 2))).toBe(true);
  });
  it('reads nothing past the length it is given', () => {
    const p = buf();
    const len = v4(p, 1000, 80, 0x0100000a);
    for (let cut: u32 = 0; cut <= len; cut++) {
      const h = flow_hash(p, cut);
      memory.fill(p + cut, 0xa5, 2048 - cut); // what lies beyond: changed
      expect(flow_hash(p, cut)).toBe(h);
      v4(p, 1000, 80, 0x0100000a); // restored for the next cut
      memory.fill(p + len, 0, 2048 - len);
    }
  });
});
