// An IPv4 router. Configuration:
//   {"ports":  [{"port": 0, "mac": "02:00:00:00:00:01"}, …],          the router's MAC on each port
//    "routes": [{"prefix": "10.1.0.0/16", "port": 1, "via": "02:00:00:00:01:02"}, …]}
// where `via` is the MAC of the next hop (there is no ARP: neighbours are configured).
//
// A frame is routed when it is addressed to the input port's MAC and carries a well-formed
// IPv4 header with TTL > 1 whose destination matches a route (longest prefix wins; of two equal
// prefixes the later one): its destination MAC becomes `via`, its source MAC the output port's,
// its TTL drops by one (header checksum updated incrementally, RFC 1624) and it leaves by the
// route's port (which may be the input port: a one-armed router). Everything else is dropped
// and counted by reason; the header checksum is verified first (RFC 1812 §5.2.2). Link-layer
// broadcasts are not routed (RFC 1812 §5.3.4), and ARP is not answered — a real router would;
// this one only forwards, so its neighbours need static ARP entries for the port MACs.
//
// Longest-prefix match: a 16-8-8 multibit trie. Level 1 has an entry for each /16 (64 Ki × 2
// bytes); an entry is either a leaf (0 = no route, else route index + 1) or, with bit 15 set,
// the number of a 256-entry chunk for the next 8 bits; a chunk entry is the same for the last
// 8 bits. A lookup is one to three dependent 2-byte loads. Prefixes are inserted shortest first,
// each one overwriting the range it covers, so longer prefixes win; a chunk starts as a copy of
// the leaf it replaces. Chunks take 512 bytes each, from the memory after the static data (at
// most one per /16 and one per /24 holding a longer prefix: 10 000 prefixes need ≤ 10 MiB). At
// most 16384 routes; a configuration whose trie does not fit in the 16 MiB is refused.
import { badBatch, decide, ETH_ARP, ETH_IPV4, hdr, hdrLen, record, rewrite, srcPort } from "./lib/abi";
import { bump, counter } from "./lib/counters";
import * as J from "./lib/json";
import { ensureMemory, HEAP } from "./lib/mem";
import * as N from "./lib/net";
import { be16, be32, BROADCAST, mac48, storeMac48 } from "./lib/net";
export { wasmap_fn_version, wasmap_fn_batch } from "./lib/abi";
export { wasmap_fn_counters } from "./lib/counters";
export { configBuf as wasmap_fn_config_buf } from "./lib/mem";

const FORWARDED = counter("forwarded");
const RUNT = counter("drop_runt");
const UNCONFIGURED = counter("drop_unconfigured_port");
const NOT_FOR_US = counter("drop_not_for_us");
const L2_BROADCAST = counter("drop_l2_broadcast");
const ARP = counter("drop_arp");
const NOT_IPV4 = counter("drop_not_ipv4");
const BAD_IHL = counter("drop_bad_ihl");
const BAD_CHECKSUM = counter("drop_bad_checksum");
const TTL = counter("drop_ttl_expired");
const NO_ROUTE = counter("drop_no_route");
const PORT_DOWN = counter("drop_port_down");

/** Per port: its MAC with bit 63 set, or 0 if the port has no address. */
const PORT_MAC: usize = memory.data(256 * 8, 8);
const HAS_MAC: u64 = 1 << 63;
const SCRATCH: usize = memory.data(8, 8);

/** Routes, 16 bytes each: prefix u32, length u8, port u8, (2 spare), next hop MAC u64. */
const MAX_ROUTES: i32 = 16384;
const ROUTES: usize = memory.data(16384 * 16, 16);
let nroutes: i32 = 0;

const L1: usize = memory.data(65536 * 2, 64);
const CHUNK: usize = 512;
const IS_CHUNK: i32 = 0x8000;
let nchunks: i32 = 0;

@inline function chunkEntry(e: i32, byte: u32): usize {
  return HEAP + (<usize>(e & 0x7fff) << 9) + (<usize>(byte & 255) << 1);
}

/** The route (index + 1) for an address, 0 if none. */
@inline function lookupRoute(ip: u32): i32 {
  let e = <i32>load<u16>(L1 + (<usize>(ip >>> 16) << 1));
  if (e & IS_CHUNK) {
    e = load<u16>(chunkEntry(e, ip >>> 8));
    if (e & IS_CHUNK) e = load<u16>(chunkEntry(e, ip));
  }
  return e;
}

// ---- configuration ----

function reset(): void {
  memory.fill(PORT_MAC, 0, 256 * 8);
  memory.fill(L1, 0, 65536 * 2);
  nroutes = 0;
  nchunks = 0;
}

/** {"port": n, "mac": "…"} */
function parsePort(): bool {
  let port = -1;
  let mac: u64 = 0;
  if (!J.obj()) return false;
  while (J.next()) {
    if (J.key("port")) port = J.intIn(0, 253);
    else if (J.key("mac") && J.str() && N.parseMac(J.sp, J.sl, SCRATCH)) mac = load<u64>(SCRATCH) & BROADCAST;
    else J.fail();
  }
  // a router's own address must be unicast
  if (J.err || port < 0 || mac == 0 || (mac & 1) != 0) return false;
  store<u64>(PORT_MAC + (<usize>port << 3), mac | HAS_MAC);
  return true;
}

/** {"prefix": "a.b.c.d/n", "port": n, "via": "…"} */
function parseRoute(): bool {
  if (nroutes >= MAX_ROUTES || !J.obj()) return false;
  const r = ROUTES + (<usize>nroutes << 4);
  let have = 0;
  while (J.next()) {
    if (J.key("prefix") && J.str() && N.parsePrefix(J.sp, J.sl)) {
      store<u32>(r, N.prefix); store<u8>(r, N.prefixLen, 4); have |= 1;
    } else if (J.key("port")) {
      store<u8>(r, J.intIn(0, 253), 5); have |= 2;
    } else if (J.key("via") && J.str() && N.parseMac(J.sp, J.sl, r + 8)) {
      store<u16>(r, 0, 14); have |= 4;
    } else J.fail();
  }
  if (J.err || have != 7) return false;
  nroutes++;
  return true;
}

/** The chunk below the entry at `slot`, made (as a copy of the leaf there) if need be; -1 if out of room. */
function child(slot: usize): i32 {
  const e = <i32>load<u16>(slot);
  if (e & IS_CHUNK) return e;
  if (nchunks >= 0x8000 || !ensureMemory(HEAP + <usize>(nchunks + 1) * CHUNK)) return -1;
  const c = nchunks++ | IS_CHUNK;
  fill(chunkEntry(c, 0), e, 256);
  store<u16>(slot, c);
  return c;
}

function fill(at: usize, v: i32, count: i32): void {
  for (let i = 0; i < count; i++) store<u16>(at + (<usize>i << 1), v);
}

function insert(i: i32): bool {
  const r = ROUTES + (<usize>i << 4);
  const p = load<u32>(r);
  const len = <i32>load<u8>(r, 4);
  if (len <= 16) { fill(L1 + (<usize>(p >>> 16) << 1), i + 1, 1 << (16 - len)); return true; }
  const c2 = child(L1 + (<usize>(p >>> 16) << 1));
  if (c2 < 0) return false;
  if (len <= 24) { fill(chunkEntry(c2, p >>> 8), i + 1, 1 << (24 - len)); return true; }
  const c3 = child(chunkEntry(c2, p >>> 8));
  if (c3 < 0) return false;
  fill(chunkEntry(c3, p), i + 1, 1 << (32 - len));
  return true;
}

function configure(ptr: i32, len: i32): bool {
  reset();
  J.begin(ptr, len);
  if (!J.obj()) return false;
  while (J.next()) {
    if (J.key("ports")) { if (J.arr()) while (J.item()) if (!parsePort()) J.fail(); }
    else if (J.key("routes")) { if (J.arr()) while (J.item()) if (!parseRoute()) J.fail(); }
    else J.fail();
  }
  if (!J.done()) return false;
  // every route leaves by a port that has a MAC to send from
  for (let i = 0; i < nroutes; i++) {
    if (load<u64>(PORT_MAC + (<usize>load<u8>(ROUTES + (<usize>i << 4), 5) << 3)) == 0) return false;
  }
  // the text is no longer needed: the chunks may overwrite it
  for (let len = 0; len <= 32; len++) {
    for (let i = 0; i < nroutes; i++) {
      if (<i32>load<u8>(ROUTES + (<usize>i << 4), 4) == len && !insert(i)) return false;
    }
  }
  return true;
}

export function wasmap_fn_config(ptr: i32, len: i32): i32 {
  if (configure(ptr, len)) return 0;
  reset(); // refused: route nothing
  return -1;
}

// ---- lookup ----

/** The header checksum verifies: the ones' complement sum of the header is 0xffff (RFC 1071; any byte order). */
@inline function checksumOk(ip: usize, words: i32): bool {
  let s: u32 = 0;
  for (let i = 0; i < words; i++) s += load<u16>(ip + (<usize>i << 1));
  s = (s & 0xffff) + (s >>> 16);
  s += s >>> 16;
  return (s & 0xffff) == 0xffff;
}

export function wasmap_fn_lookup(n: i32, nports: i32, now: i32): i32 {
  if (badBatch(n)) return -1;
  for (let i = 0; i < n; i++) {
    const r = record(i);
    const hlen = hdrLen(r);
    if (hlen < 14) { bump(RUNT); continue; }
    const h = hdr(r);
    const me = load<u64>(PORT_MAC + (<usize>srcPort(r) << 3));
    if (me == 0) { bump(UNCONFIGURED); continue; }
    const type = be16(h + 12);
    const dmac = mac48(h);
    if (dmac != (me & BROADCAST)) {
      if (dmac != BROADCAST) bump(NOT_FOR_US);
      else bump(type == ETH_ARP ? ARP : L2_BROADCAST);
      continue;
    }
    if (type != ETH_IPV4) { bump(type == ETH_ARP ? ARP : NOT_IPV4); continue; }
    const ip = h + 14;
    const vihl = <i32>load<u8>(ip);
    if (hlen < 34 || (vihl >> 4) != 4) { bump(NOT_IPV4); continue; }
    const ihl = vihl & 15;
    if (ihl < 5 || 14 + (ihl << 2) > hlen) { bump(BAD_IHL); continue; }
    if (!checksumOk(ip, ihl << 1)) { bump(BAD_CHECKSUM); continue; }
    const ttl = <i32>load<u8>(ip, 8);
    if (ttl <= 1) { bump(TTL); continue; }
    const e = lookupRoute(be32(ip + 16));
    if (e == 0) { bump(NO_ROUTE); continue; }
    const route = ROUTES + (<usize>(e - 1) << 4);
    const out = <i32>load<u8>(route, 5);
    if (out >= nports) { bump(PORT_DOWN); continue; }

    storeMac48(h, load<u64>(route, 8));
    storeMac48(h + 6, load<u64>(PORT_MAC + (<usize>out << 3)));
    // TTL is the high byte of the 16-bit word at 8 (TTL, protocol): it loses 0x0100.
    // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), which stays right when the result is 0.
    const m = be16(ip + 8);
    let s = <u32>(~be16(ip + 10) & 0xffff) + <u32>(~m & 0xffff) + <u32>(m - 0x100);
    s = (s & 0xffff) + (s >>> 16);
    s += s >>> 16;
    store<u8>(ip, ttl - 1, 8);
    store<u16>(ip, bswap<u16>(<u16>~s), 10);
    rewrite(r, hlen);
    decide(r, out);
    bump(FORWARDED);
  }
  return 0;
}
