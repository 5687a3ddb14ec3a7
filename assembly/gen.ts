// pkt-gen's fill and drain loops: a generator writes a UDP/IPv4 template into a tx ring's free
// slots (patching addresses, ports and checksums when ranges are given), a sink consumes an
// rx ring. Both act as the ring's user: they move head/cur and never touch the kernel side.
import {
  SLOT_SIZE, SLOT_BUF_IDX, SLOT_LEN, SLOT_FLAGS, RING_HEAD, RING_CUR, RING_TAIL, RING_SLOTS,
  KR_RING, KR_NSLOTS, KR_BUF_BASE, KR_BUF_SIZE, KR_NBUFS, BUF_RESERVED, E_OK, E_INVAL,
  G_LEN, G_FLAGS, G_SRC_IP, G_DST_IP, G_SRC_PORT, G_DST_PORT, G_UDP_SUM, G_IP_SUM, G_BUDGET,
  G_TX_PKTS, G_TX_BYTES, G_RX_PKTS, G_RX_BYTES, G_SLOT_FLAGS, G_TEMPLATE, G_TEMPLATE_MAX, GF_VARY, GF_NOFILL,
} from './abi';
import { csum_add, csum_fold } from './offload/csum';
import { ring_dist } from './ring';
import { copy_frag } from './switch/snap';

const ETH: u32 = 14;
const IP: u32 = 20;
const UDP: u32 = 8;

export function gen_size(): u32 { return G_TEMPLATE + G_TEMPLATE_MAX; }

@inline function be16(p: usize, v: u32): void { store<u16>(p, bswap<u16>(<u16>v)); }
@inline function be32(p: usize, v: u32): void { store<u32>(p, bswap<u32>(v)); }

/**
 * Build the frame: the caller has put destination and source MACs in the template's first 12
 * bytes. Ranges are inclusive [lo, hi], IPs in host order. Returns E_INVAL for a frame shorter
 * than 42 bytes (Ethernet + IPv4 + UDP) or longer than the template room, or inverted ranges.
 */
export function gen_init(g: usize, len: u32, sip_lo: u32, sip_hi: u32, dip_lo: u32, dip_hi: u32,
                         sp_lo: u32, sp_hi: u32, dp_lo: u32, dp_hi: u32): i32 {
  if (len < ETH + IP + UDP || len > G_TEMPLATE_MAX || len > 65535 + ETH) return E_INVAL;
  if (sip_lo > sip_hi || dip_lo > dip_hi || sp_lo > sp_hi || dp_lo > dp_hi || sp_hi > 65535 || dp_hi > 65535) return E_INVAL;
  const t = g + G_TEMPLATE;
  store<u32>(g, len, G_LEN);
  store<u32>(g, sip_lo, G_SRC_IP); store<u32>(g, sip_hi, G_SRC_IP + 4); store<u32>(g, sip_lo, G_SRC_IP + 8);
  store<u32>(g, dip_lo, G_DST_IP); store<u32>(g, dip_hi, G_DST_IP + 4); store<u32>(g, dip_lo, G_DST_IP + 8);
  store<u32>(g, sp_lo, G_SRC_PORT); store<u32>(g, sp_hi, G_SRC_PORT + 4); store<u32>(g, sp_lo, G_SRC_PORT + 8);
  store<u32>(g, dp_lo, G_DST_PORT); store<u32>(g, dp_hi, G_DST_PORT + 4); store<u32>(g, dp_lo, G_DST_PORT + 8);
  const vary = sip_lo != sip_hi || dip_lo != dip_hi || sp_lo != sp_hi || dp_lo != dp_hi;
  store<u32>(g, (vary ? GF_VARY : 0) | (load<u32>(g, G_FLAGS) & GF_NOFILL), G_FLAGS);
  be16(t + 12, 0x0800);
  const ip = t + ETH;
  store<u8>(ip, 0x45); store<u8>(ip, 0x10, 1); be16(ip + 2, len - ETH);
  be16(ip + 4, 0); be16(ip + 6, 0x4000); store<u8>(ip, 64, 8); store<u8>(ip, 17, 9); be16(ip + 10, 0);
  be32(ip + 12, 0); be32(ip + 16, 0);
  const udp = ip + IP;
  const ulen = len - ETH - IP;
  be16(udp, 0); be16(udp + 2, 0); be16(udp + 4, ulen); be16(udp + 6, 0);
  const msg = 'wasmap pkt-gen payload. ';
  const pay = udp + UDP;
  for (let i: u32 = 0; i < ulen - UDP; i++) store<u8>(pay + i, <u8>msg.charCodeAt(i % msg.length));
  // the sums of everything that never changes; addresses and ports are added per frame
  store<u32>(g, csum_fold(csum_add(ip, IP, 0)), G_IP_SUM);
  store<u32>(g, csum_fold(csum_add(pay, ulen - UDP, <u64>17 + <u64>ulen + <u64>ulen)), G_UDP_SUM);
  patch(g, t);
  store<u64>(g, <u64>-1, G_BUDGET);
  return E_OK;
}

/** Write the current addresses and ports and the checksums that depend on them. */
@inline function patch(g: usize, t: usize): void {
  const sip = load<u32>(g, G_SRC_IP + 8), dip = load<u32>(g, G_DST_IP + 8);
  const sp = load<u32>(g, G_SRC_PORT + 8), dp = load<u32>(g, G_DST_PORT + 8);
  const ip = t + ETH, udp = ip + IP;
  be32(ip + 12, sip); be32(ip + 16, dip);
  be16(udp, sp); be16(udp + 2, dp);
  const a = <u64>(sip >> 16) + <u64>(sip & 0xffff) + <u64>(dip >> 16) + <u64>(dip & 0xffff);
  be16(ip + 10, ~csum_fold(<u64>load<u32>(g, G_IP_SUM) + a) & 0xffff);
  let u = ~csum_fold(<u64>load<u32>(g, G_UDP_SUM) + a + <u64>sp + <u64>dp) & 0xffff;
  be16(udp + 6, u == 0 ? 0xffff : u);
}

/** Next address/port combination, pkt-gen's order: source port, source IP, dest port, dest IP. */
@inline function step(g: usize): void {
  if (bump_range(g, G_SRC_PORT)) return;
  if (bump_range(g, G_SRC_IP)) return;
  if (bump_range(g, G_DST_PORT)) return;
  bump_range(g, G_DST_IP);
}
@inline function bump_range(g: usize, off: u32): bool {
  const r = g + off;
  const cur = load<u32>(r, 8);
  if (cur < load<u32>(r, 4)) { store<u32>(r, cur + 1, 8); return true; }
  store<u32>(r, load<u32>(r), 8);
  return false;
}

/** Fill up to `max` free tx slots (and the budget) with frames; advance head and cur. */
export function gen_tx(g: usize, k: usize, max: u32): u32 {
  const ring = <usize>load<u32>(k, KR_RING);
  const n = load<u32>(k, KR_NSLOTS);
  const head = load<u32>(ring, RING_HEAD);
  const tail = load<u32>(ring, RING_TAIL);
  if (head >= n || tail >= n) return 0;
  let cnt = ring_dist(head, tail, n);
  if (cnt > max) cnt = max;
  const budget = load<u64>(g, G_BUDGET);
  if (<u64>cnt > budget) cnt = <u32>budget;
  const len = load<u32>(g, G_LEN);
  const bsize = load<u32>(k, KR_BUF_SIZE);
  if (len > bsize) return 0; // gen_init's caller checks this and says so
  const base = <usize>load<u32>(k, KR_BUF_BASE);
  const nbufs = load<u32>(k, KR_NBUFS);
  const slots = ring + RING_SLOTS;
  const t = g + G_TEMPLATE;
  const vary = (load<u32>(g, G_FLAGS) & GF_VARY) != 0;
  const fill = (load<u32>(g, G_FLAGS) & GF_NOFILL) == 0;
  const sflags = load<u16>(g, G_SLOT_FLAGS);
  let i = head;
  let done: u32 = 0;
  for (; done < cnt; done++) {
    const s = slots + <usize>(SLOT_SIZE * i);
    const idx = load<u32>(s, SLOT_BUF_IDX);
    if (idx < BUF_RESERVED || idx >= nbufs) break; // never write outside this region
    if (fill) {
      copy_frag(base + <usize>idx * <usize>bsize, t, len);
      if (vary) { step(g); patch(g, t); }
    }
    store<u16>(s, <u16>len, SLOT_LEN);
    store<u16>(s, sflags, SLOT_FLAGS);
    i = i + 1 == n ? 0 : i + 1;
  }
  store<u32>(ring, i, RING_HEAD);
  store<u32>(ring, i, RING_CUR);
  store<u64>(g, budget - done, G_BUDGET);
  store<u64>(g, load<u64>(g, G_TX_PKTS) + done, G_TX_PKTS);
  store<u64>(g, load<u64>(g, G_TX_BYTES) + <u64>done * len, G_TX_BYTES);
  return done;
}

/** Consume everything in [head, tail) of an rx ring; returns frames (slots without MOREFRAG). */
export function gen_rx(g: usize, k: usize): u32 {
  const ring = <usize>load<u32>(k, KR_RING);
  const n = load<u32>(k, KR_NSLOTS);
  const head = load<u32>(ring, RING_HEAD);
  const tail = load<u32>(ring, RING_TAIL);
  if (head >= n || tail >= n) return 0;
  const cnt = ring_dist(head, tail, n);
  const slots = ring + RING_SLOTS;
  let i = head;
  let pkts: u32 = 0;
  let bytes: u64 = 0;
  for (let c: u32 = 0; c < cnt; c++) {
    const s = slots + <usize>(SLOT_SIZE * i);
    bytes += load<u16>(s, SLOT_LEN);
    if ((load<u16>(s, SLOT_FLAGS) & 0x20) == 0) pkts++;
    i = i + 1 == n ? 0 : i + 1;
  }
  store<u32>(ring, tail, RING_HEAD);
  store<u32>(ring, tail, RING_CUR);
  store<u64>(g, load<u64>(g, G_RX_PKTS) + pkts, G_RX_PKTS);
  store<u64>(g, load<u64>(g, G_RX_BYTES) + bytes, G_RX_BYTES);
  return pkts;
}
