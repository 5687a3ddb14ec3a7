// VXLAN / Geneve encapsulation, decapsulation and the tunnel fdb (assembly/tunnel/tunnel.ts).
import {
  TS_SIZE, TP_SIZE, TUN_TX_AREA, TS_D_FLAGS, TS_D_VNI, TS_D_SHORT, TS_D_VERSION, TS_D_CRITICAL, TS_D_OPTS, TS_D_PROTO, TS_D_OAM,
  TP_RX_FRAMES, TP_D_INNER_SHORT, TP_FLOODED, TP_TX_DGRAMS, TP_D_TOO_BIG,
  tun_rx_flush, tun_sock_init, tun_port_add, tun_port_del, tun_set_remotes, tun_fdb_add, tun_fdb_del, tun_fdb_count, decap, tun_tx, tun_tx_count, tun_tx_msgs,
} from '../../assembly/tunnel/tunnel';
import { DIR_TX, DIR_RX, RING_TAIL, SLOT_LEN, SLOT_FLAGS } from '../../assembly/abi';
import { region_kring } from '../../assembly/region';
import { csum_add, csum_fold } from '../../assembly/offload/csum';
import { hx_region, hx_mem, hx_head, hx_len, hx_buf, hx_ring, hx_slot } from './helpers.include';

class T { ss: usize = 0; ps: usize = 0; ps2: usize = 0; tx: usize = 0; rx: usize = 0; tx2: usize = 0; }

function setup(kind: u32): T {
  const t = new T();
  t.ss = hx_mem(TS_SIZE); memory.fill(t.ss, 0, TS_SIZE);
  const txa = hx_mem(TUN_TX_AREA);
  tun_sock_init(t.ss, kind, 0, 4789, 0, 0, 0, txa, 4, 1);
  const d = hx_region(1, 1, 64, 2048, 0), d2 = hx_region(1, 1, 64, 2048, 0);
  t.tx = region_kring(d, DIR_TX, 0); t.rx = region_kring(d, DIR_RX, 0); t.tx2 = region_kring(d2, DIR_TX, 0);
  t.ps = hx_mem(TP_SIZE); memory.fill(t.ps, 0, TP_SIZE);
  t.ps2 = hx_mem(TP_SIZE); memory.fill(t.ps2, 0, TP_SIZE);
  expect(tun_port_add(t.ss, t.ps, 42, t.tx, t.rx, 1464, 300)).toBe(0);
  expect(tun_port_add(t.ss, t.ps2, 43, t.tx2, region_kring(d2, DIR_RX, 0), 1464, 300)).toBe(0);
  return t;
}
function cnt(p: usize, off: u32): u64 { return load<u64>(p + off); }

// a datagram: header bytes then an inner frame of `flen` bytes (dst broadcast, src 02:..:src)
function dgram(hdr: u8[], flen: u32, src: u8 = 1): usize {
  const p = heap.alloc(<usize>(hdr.length + flen + 16));
  for (let i = 0; i < hdr.length; i++) store<u8>(p + i, hdr[i]);
  const f = p + hdr.length;
  for (let i: u32 = 0; i < flen; i++) store<u8>(f + i, <u8>(i * 7));
  if (flen >= 12) { memory.fill(f, 0xff, 6); store<u8>(f + 6, 2); memory.fill(f + 7, 0, 4); store<u8>(f + 11, src); }
  return p;
}
const VX42: u8[] = [0x08, 0, 0, 0, 0, 0, 42, 0];

describe('VXLAN decapsulation', () => {
  it('delivers the inner frame behind a zero 12-byte virtio-net header to the VNI\'s port', () => {
    const t = setup(0);
    const p = dgram(VX42, 100);
    expect(decap(t.ss, p, 108, 1000)).toBe(1);
    expect(hx_head(t.tx)).toBe(1);
    expect(hx_len(t.tx, 0)).toBe(112);
    const b = hx_buf(t.tx, 0);
    expect(load<u64>(b)).toBe(0); expect(load<u32>(b, 8)).toBe(0);
    expect(memory.compare(b + 12, p + 8, 100)).toBe(0);
    expect(cnt(t.ps, TP_RX_FRAMES)).toBe(1);
    expect(cnt(t.ps2, TP_RX_FRAMES)).toBe(0);
  });
  it('the VNI picks the port; an unknown one is counted and goes nowhere', () => {
    const t = setup(0);
    expect(decap(t.ss, dgram([0x08, 0, 0, 0, 0, 0, 43, 0], 64), 72, 0)).toBe(1);
    expect(hx_head(t.tx2)).toBe(1); expect(hx_head(t.tx)).toBe(0);
    expect(decap(t.ss, dgram([0x08, 0, 0, 0, 0, 0, 44, 0], 64), 72, 0)).toBe(0);
    expect(cnt(t.ss, TS_D_VNI)).toBe(1);
    tun_port_del(t.ss, t.ps2);
    expect(decap(t.ss, dgram([0x08, 0, 0, 0, 0, 0, 43, 0], 64), 72, 0)).toBe(0);
    expect(cnt(t.ss, TS_D_VNI)).toBe(2);
  });
  it('requires the I flag alone and a zero reserved byte', () => {
    const t = setup(0);
    expect(decap(t.ss, dgram([0x00, 0, 0, 0, 0, 0, 42, 0], 64), 72, 0)).toBe(0);
    expect(decap(t.ss, dgram([0x0c, 0, 0, 0, 0, 0, 42, 0], 64), 72, 0)).toBe(0);
    expect(decap(t.ss, dgram([0x08, 0, 0, 0, 0, 0, 42, 1], 64), 72, 0)).toBe(0);
    expect(cnt(t.ss, TS_D_FLAGS)).toBe(3);
    expect(hx_head(t.tx)).toBe(0);
  });
  it('counts a truncated header and a truncated inner frame', () => {
    const t = setup(0);
    expect(decap(t.ss, dgram(VX42, 0), 7, 0)).toBe(0);
    expect(cnt(t.ss, TS_D_SHORT)).toBe(1);
    expect(decap(t.ss, dgram(VX42, 13), 21, 0)).toBe(0);
    expect(cnt(t.ps, TP_D_INNER_SHORT)).toBe(1);
  });
  it('chains a frame longer than a buffer with MOREFRAG', () => {
    const t = setup(0);
    const p = dgram(VX42, 3000);
    expect(decap(t.ss, p, 3008, 0)).toBe(1);
    expect(hx_head(t.tx)).toBe(2);
    expect(hx_len(t.tx, 0)).toBe(2048); expect(hx_len(t.tx, 1)).toBe(3012 - 2048);
    expect(load<u16>(hx_slot(t.tx, 0), SLOT_FLAGS) & 0x20).toBe(0x20);
    expect(memory.compare(hx_buf(t.tx, 1), p + 8 + 2036, 3012 - 2048)).toBe(0);
  });
});

describe('Geneve decapsulation', () => {
  it('skips options (non-critical) and delivers the frame after them', () => {
    const t = setup(1);
    // optlen 3 words: one option of 2 data words
    const p = dgram([0x03, 0, 0x65, 0x58, 0, 0, 42, 0, 0x01, 0x02, 0x05, 0x02, 1, 2, 3, 4, 5, 6, 7, 8], 80);
    expect(decap(t.ss, p, 100, 0)).toBe(1);
    expect(memory.compare(hx_buf(t.tx, 0) + 12, p + 20, 80)).toBe(0);
  });
  it('drops and counts version != 0, the C bit, a critical option, the O bit, another protocol, overrunning options', () => {
    const t = setup(1);
    expect(decap(t.ss, dgram([0x40, 0, 0x65, 0x58, 0, 0, 42, 0], 64), 72, 0)).toBe(0);
    expect(decap(t.ss, dgram([0x00, 0x40, 0x65, 0x58, 0, 0, 42, 0], 64), 72, 0)).toBe(0);
    expect(decap(t.ss, dgram([0x01, 0, 0x65, 0x58, 0, 0, 42, 0, 1, 2, 0x85, 0], 64), 76, 0)).toBe(0);
    expect(decap(t.ss, dgram([0x00, 0x80, 0x65, 0x58, 0, 0, 42, 0], 64), 72, 0)).toBe(0);
    expect(decap(t.ss, dgram([0x00, 0, 0x08, 0x00, 0, 0, 42, 0], 64), 72, 0)).toBe(0);
    expect(decap(t.ss, dgram([0x01, 0, 0x65, 0x58, 0, 0, 42, 0, 1, 2, 0x05, 3], 64), 76, 0)).toBe(0);
    expect(decap(t.ss, dgram([0x3f, 0, 0x65, 0x58, 0, 0, 42, 0], 64), 72, 0)).toBe(0);
    expect(cnt(t.ss, TS_D_VERSION)).toBe(1);
    expect(cnt(t.ss, TS_D_CRITICAL)).toBe(2);
    expect(cnt(t.ss, TS_D_OAM)).toBe(1);
    expect(cnt(t.ss, TS_D_PROTO)).toBe(1);
    expect(cnt(t.ss, TS_D_OPTS)).toBe(1);
    expect(cnt(t.ss, TS_D_SHORT)).toBe(1);
    expect(hx_head(t.tx)).toBe(0);
  });
});

describe('tunnel fdb', () => {
  it('learns inner sources, ages them out after the age, keeps static entries', () => {
    const t = setup(0);
    decap(t.ss, dgram(VX42, 64, 5), 72, 1000);
    decap(t.ss, dgram(VX42, 64, 6), 72, 1000);
    expect(tun_fdb_count(t.ps, 1000, 0)).toBe(2);
    expect(tun_fdb_count(t.ps, 1300, 0)).toBe(2);
    expect(tun_fdb_count(t.ps, 1301, 0)).toBe(0);
    const ip = heap.alloc(16); memory.fill(ip, 0, 16); store<u32>(ip, 0x0300630a); // 10.99.0.3
    expect(tun_fdb_add(t.ps, 0x0200, 0x00000005, ip, 1000)).toBe(0);
    expect(tun_fdb_count(t.ps, 1000, 1)).toBe(1);
    expect(tun_fdb_count(t.ps, 1000, 0)).toBe(1); // 02:..:05 is static now
    expect(tun_fdb_count(t.ps, 99999, 1)).toBe(1); // never ages
    expect(tun_fdb_del(t.ps, 0x0200, 0x00000005)).toBe(1);
    expect(tun_fdb_del(t.ps, 0x0200, 0x00000005)).toBe(0);
    expect(tun_fdb_count(t.ps, 1000, 1)).toBe(0);
  });
  it('never learns a group source', () => {
    const t = setup(0);
    const p = dgram(VX42, 64);
    store<u8>(p + 8 + 6, 3);
    decap(t.ss, p, 72, 0);
    expect(tun_fdb_count(t.ps, 0, 0)).toBe(0);
  });
});

// put one frame (12-byte zero header + inner frame, dst `dst`) into the port's rx ring as the switch would
function deliver(t: T, dst: u8, flen: u32): void {
  const b = hx_buf(t.rx, 0);
  memory.fill(b, 0, 12);
  for (let i: u32 = 0; i < flen; i++) store<u8>(b + 12 + i, <u8>i);
  memory.fill(b + 12, dst, 6);
  store<u16>(b + 24, bswap<u16>(0x0800));
  store<u16>(hx_slot(t.rx, 0), <u16>(12 + flen), SLOT_LEN);
  store<u16>(hx_slot(t.rx, 0), 0, SLOT_FLAGS);
  store<u32>(hx_ring(t.rx), 1, RING_TAIL);
}
function messages(t: T): u32 { let n: u32 = 0; for (let i: u32 = 0; i < 4; i++) n += tun_tx_count(t.ss, i); return n; }
function firstMsg(t: T): usize { for (let i: u32 = 0; i < 4; i++) if (tun_tx_count(t.ss, i)) return tun_tx_msgs(t.ss, i); return 0; }

describe('encapsulation (tun_tx)', () => {
  it('floods an unknown destination to every remote, one message each, behind a VXLAN header', () => {
    const t = setup(0);
    const ips = heap.alloc(32); memory.fill(ips, 0, 32); store<u32>(ips, 0x0200630a); store<u32>(ips + 16, 0x0300630a);
    expect(tun_set_remotes(t.ps, ips, 2)).toBe(0);
    deliver(t, 0x02, 100);
    expect(tun_tx(t.ps, 0)).toBe(1);
    expect(hx_head(t.rx)).toBe(1);
    expect(messages(t)).toBe(2);
    expect(cnt(t.ps, TP_FLOODED)).toBe(1);
    expect(cnt(t.ps, TP_TX_DGRAMS)).toBe(2);
    const m = firstMsg(t);
    const name = <usize>load<u64>(m), iov = <usize>load<u64>(m, 16);
    expect(load<u16>(name)).toBe(2); // AF_INET
    expect(bswap<u16>(load<u16>(name, 2))).toBe(4789);
    expect(load<u64>(m, 24)).toBe(2); // [header][frame]
    const h = <usize>load<u64>(iov);
    expect(load<u64>(iov, 8)).toBe(8);
    expect(load<u8>(h)).toBe(0x08); expect(load<u8>(h + 6)).toBe(42); expect(load<u8>(h + 7)).toBe(0);
    expect(load<u64>(iov, 24)).toBe(100);
  });
  it('sends a learned destination to its remote only', () => {
    const t = setup(0);
    const ips = heap.alloc(32); memory.fill(ips, 0, 32); store<u32>(ips, 0x0200630a); store<u32>(ips + 16, 0x0300630a);
    tun_set_remotes(t.ps, ips, 2);
    const ip = heap.alloc(16); memory.fill(ip, 0, 16); store<u32>(ip, 0x0300630a);
    expect(tun_fdb_add(t.ps, 0x0202, 0x02020202, ip, 0)).toBe(0);
    deliver(t, 0x02, 100);
    expect(tun_tx(t.ps, 0)).toBe(1);
    expect(messages(t)).toBe(1);
    expect(cnt(t.ps, TP_FLOODED)).toBe(0);
    expect(load<u32>(<usize>load<u64>(firstMsg(t)), 4)).toBe(0x0300630a);
  });
  it('drops and counts a plain frame over the inner MTU', () => {
    const t = setup(0);
    const ips = heap.alloc(16); memory.fill(ips, 0, 16); store<u32>(ips, 0x0200630a);
    tun_set_remotes(t.ps, ips, 1);
    deliver(t, 0xff, 1465);
    expect(tun_tx(t.ps, 0)).toBe(1);
    expect(messages(t)).toBe(0);
    expect(cnt(t.ps, TP_D_TOO_BIG)).toBe(1);
  });
});

// an inner TCP/IPv4 segment 10.0.0.1:1000 -> 10.0.0.2:2000, `pay` bytes from seq, flags, checksums right
function tcpSeg(seq: u32, pay: u32, flags: u8, badCsum: bool = false): usize {
  const p = heap.alloc(<usize>(8 + 54 + pay));
  memory.fill(p, 0, 8 + 54); store<u8>(p, 0x08); store<u8>(p + 6, 42);
  const f = p + 8;
  memory.fill(f, 0x02, 6); memory.fill(f + 6, 0x04, 6); store<u16>(f + 12, bswap<u16>(0x0800));
  store<u8>(f + 14, 0x45); store<u16>(f + 16, bswap<u16>(<u16>(40 + pay))); store<u16>(f + 20, bswap<u16>(0x4000));
  store<u8>(f + 22, 64); store<u8>(f + 23, 6);
  store<u32>(f + 26, 0x0100000a); store<u32>(f + 30, 0x0200000a);
  store<u16>(f + 34, bswap<u16>(1000)); store<u16>(f + 36, bswap<u16>(2000)); store<u32>(f + 38, bswap<u32>(seq)); store<u32>(f + 42, bswap<u32>(77));
  store<u8>(f + 46, 0x50); store<u8>(f + 47, flags); store<u16>(f + 48, bswap<u16>(500));
  for (let i: u32 = 0; i < pay; i++) store<u8>(f + 54 + i, <u8>(seq + i));
  store<u16>(f + 24, bswap<u16>(<u16>(~csum_fold(csum_add(f + 14, 20, 0)) & 0xffff)));
  const c = ~csum_fold(csum_add(f + 34, 20 + pay, csum_add(f + 26, 8, <u64>(6 + 20 + pay)))) & 0xffff;
  store<u16>(f + 50, bswap<u16>(<u16>(badCsum ? c ^ 1 : c)));
  return p;
}

describe('inner TCP coalescing', () => {
  it('merges in-order full segments of one flow into one TSO frame, published at the flush', () => {
    const t = setup(0);
    for (let i: u32 = 0; i < 3; i++) expect(decap(t.ss, tcpSeg(1000 + i * 1400, 1400, 0x10), 8 + 54 + 1400, 0)).toBe(1);
    expect(hx_head(t.tx)).toBe(0); // still building
    expect(decap(t.ss, tcpSeg(1000 + 3 * 1400, 500, 0x18), 8 + 54 + 500, 0)).toBe(1); // PSH, short: ends it
    const b = hx_buf(t.tx, 0);
    expect(load<u8>(b)).toBe(1); expect(load<u8>(b, 1)).toBe(1); // NEEDS_CSUM, TCPV4
    expect(load<u16>(b, 4)).toBe(1400); expect(load<u16>(b, 6)).toBe(34); expect(load<u16>(b, 8)).toBe(16);
    expect(bswap<u16>(load<u16>(b + 12 + 16))).toBe(40 + 3 * 1400 + 500);
    expect(load<u8>(b + 12 + 47)).toBe(0x18);
    expect(csum_fold(csum_add(b + 12 + 14, 20, 0))).toBe(0xffff); // IP header checksum right
    let total: u32 = 0, i: u32 = 0;
    while (i < hx_head(t.tx)) { total += hx_len(t.tx, i); i++; }
    expect(total).toBe(12 + 54 + 3 * 1400 + 500);
    // the payload continues across the slot boundary
    expect(load<u8>(hx_buf(t.tx, 1))).toBe(<u8>(1000 + 2048 - 66));
  });
  it('does not merge a segment with a bad checksum, out of order, or of another flow', () => {
    const t = setup(0);
    decap(t.ss, tcpSeg(1000, 1400, 0x10), 8 + 54 + 1400, 0);
    decap(t.ss, tcpSeg(2400, 1400, 0x10, true), 8 + 54 + 1400, 0); // bad checksum: alone
    decap(t.ss, tcpSeg(9999, 1400, 0x10), 8 + 54 + 1400, 0); // out of order: starts anew
    tun_rx_flush(t.ss);
    expect(hx_head(t.tx)).toBe(3);
    expect(load<u8>(hx_buf(t.tx, 0), 1)).toBe(0); // single segments: no GSO header
  });
});

// a TSO frame (12-byte header: NEEDS_CSUM, GSO_TCPV4, gso_size) of `pay` payload bytes, chained over the rx ring's slots
function deliverTso(t: T, pay: u32, gsoSize: u16): void {
  const seg = tcpSeg(5000, pay, 0x18);
  const flen: u32 = 54 + pay, total: u32 = 12 + flen;
  const g = heap.alloc(<usize>total);
  memory.fill(g, 0, 12);
  store<u8>(g, 1); store<u8>(g + 1, 1); store<u16>(g + 2, 54); store<u16>(g + 4, gsoSize); store<u16>(g + 6, 34); store<u16>(g + 8, 16);
  memory.copy(g + 12, seg + 8, flen);
  store<u8>(g + 12, 0x02); // unicast destination 02:02:02:02:02:02 (tcpSeg's)
  let o: u32 = 0, i: u32 = 0;
  while (o < total) {
    const l = total - o < 2048 ? total - o : 2048;
    memory.copy(hx_buf(t.rx, i), g + o, l);
    store<u16>(hx_slot(t.rx, i), <u16>l, SLOT_LEN);
    store<u16>(hx_slot(t.rx, i), o + l < total ? 0x20 : 0, SLOT_FLAGS);
    o += l; i++;
  }
  store<u32>(hx_ring(t.rx), i, RING_TAIL);
}

describe('encapsulation of TSO frames', () => {
  it('segments to the inner MTU (MSS lowered to fit) and sends one UDP GSO message', () => {
    const t = setup(0);
    const ips = heap.alloc(16); memory.fill(ips, 0, 16); store<u32>(ips, 0x0200630a);
    tun_set_remotes(t.ps, ips, 1);
    deliverTso(t, 10000, 1460); // the sender's MSS 1460 > 1464 - 54: cut to 1410
    expect(tun_tx(t.ps, 0)).toBe(1);
    expect(messages(t)).toBe(1);
    const m = firstMsg(t);
    expect(load<u64>(m, 24)).toBe(1); // one iovec: [hdr][seg][hdr][seg]...
    const ctl = <usize>load<u64>(m, 32);
    expect(load<u32>(ctl, 8)).toBe(17); expect(load<u32>(ctl, 12)).toBe(103); // SOL_UDP, UDP_SEGMENT
    expect(load<u16>(ctl, 16)).toBe(8 + 1464); // each datagram: our header + a full inner frame
    const iov = <usize>load<u64>(m, 16), p = <usize>load<u64>(iov);
    expect(load<u64>(iov, 8)).toBe(8 * 8 + 8 * 54 + 10000); // 8 segments (7 × 1410 + 130)
    expect(cnt(t.ps, TP_TX_DGRAMS)).toBe(8);
    // every segment: VXLAN header, then a frame whose IP length and TCP checksum are right
    for (let i: u32 = 0; i < 8; i++) {
      const d = p + <usize>(i * 1472);
      expect(load<u8>(d)).toBe(0x08); expect(load<u8>(d + 6)).toBe(42);
      const f = d + 8, pay: u32 = i < 7 ? 1410 : 130;
      expect(bswap<u16>(load<u16>(f + 16))).toBe(<u16>(40 + pay));
      expect(csum_fold(csum_add(f + 34, 20 + pay, csum_add(f + 26, 8, <u64>(6 + 20 + pay))))).toBe(0xffff);
      expect(bswap<u32>(load<u32>(f + 38))).toBe(5000 + i * 1410);
    }
  });
  it('without UDP_SEGMENT: one message per segment', () => {
    const t = setup(0);
    store<u32>(t.ss + 36, 0); // TS_GSO off
    const ips = heap.alloc(16); memory.fill(ips, 0, 16); store<u32>(ips, 0x0200630a);
    tun_set_remotes(t.ps, ips, 1);
    deliverTso(t, 10000, 1400);
    expect(tun_tx(t.ps, 0)).toBe(1);
    expect(messages(t)).toBe(8);
    expect(load<u64>(firstMsg(t), 40)).toBe(0); // no control data
  });
});
