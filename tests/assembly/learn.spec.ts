import { mac_hash } from '../../assembly/switch/learn';
import { csum_add, csum_fold } from '../../assembly/offload/csum';

// netmap-facts.md §2.4: buckets computed from netmap's nm_vale_rthash (1024 buckets)
function mac(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8): u64 {
  return <u64>a | (<u64>b << 8) | (<u64>c << 16) | (<u64>d << 24) | (<u64>e << 32) | (<u64>f << 40);
}

describe('mac_hash (netmap nm_vale_rthash)', () => {
  it('00:00:00:00:00:00 → 269', () => { expect(mac_hash(mac(0, 0, 0, 0, 0, 0)) & 1023).toBe(269); });
  it('ff:ff:ff:ff:ff:ff → 604', () => { expect(mac_hash(mac(255, 255, 255, 255, 255, 255)) & 1023).toBe(604); });
  it('02:00:00:00:00:01 → 92', () => { expect(mac_hash(mac(2, 0, 0, 0, 0, 1)) & 1023).toBe(92); });
  it('02:00:00:00:00:02 → 23', () => { expect(mac_hash(mac(2, 0, 0, 0, 0, 2)) & 1023).toBe(23); });
  it('00:aa:bb:cc:dd:ee → 77', () => { expect(mac_hash(mac(0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee)) & 1023).toBe(77); });
  it('02:00:00:00:07:e7 collides with 02:00:00:00:00:01 (92)', () => { expect(mac_hash(mac(2, 0, 0, 0, 7, 0xe7)) & 1023).toBe(92); });
});

describe('csum', () => {
  it('sums the RFC 1071 example to 0xddf2', () => {
    const p = heap.alloc(8);
    store<u8>(p, 0x00); store<u8>(p + 1, 0x01); store<u8>(p + 2, 0xf2); store<u8>(p + 3, 0x03);
    store<u8>(p + 4, 0xf4); store<u8>(p + 5, 0xf5); store<u8>(p + 6, 0xf6); store<u8>(p + 7, 0xf7);
    expect(csum_fold(csum_add(p, 8, 0))).toBe(0xddf2);
  });
  it('pads an odd last byte with zero', () => {
    const p = heap.alloc(4);
    store<u8>(p, 0x12); store<u8>(p + 1, 0x34); store<u8>(p + 2, 0x56);
    expect(csum_fold(csum_add(p, 3, 0))).toBe(0x1234 + 0x5600);
  });
});
