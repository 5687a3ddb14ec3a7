// A load balancer like netmap's `lb`: frames from the input port are spread over the output
// ports by a hash of their flow, and frames from any output port go back to the input port.
// Configuration: {"in": 0, "out": [1, 2, 3]}.
//
// The hash is symmetric — both directions of a connection give the same value — so a flow and
// its replies map to the same output (what a set of stateful middleboxes behind the balancer
// needs). It covers the IPv4 addresses, the protocol and, for TCP/UDP/SCTP, the ports; each
// pair is put in order (smaller first) before hashing, which is what makes it symmetric.
// Fragments are hashed without ports (only the first one carries them), so all the fragments
// of a datagram go the same way. Frames that are not IPv4 are hashed over their two MACs.
import { badBatch, decide, ETH_IPV4, hdr, hdrLen, record, srcPort } from "./lib/abi";
import { bump, counter, truncateCounters } from "./lib/counters";
import * as J from "./lib/json";
import { be16, mac48 } from "./lib/net";
export { wasmap_fn_version, wasmap_fn_batch } from "./lib/abi";
export { wasmap_fn_counters } from "./lib/counters";
export { configBuf as wasmap_fn_config_buf } from "./lib/mem";

const TO_IN = counter("to_in");
const PORT_DOWN = counter("drop_port_down");
const UNCONFIGURED = counter("drop_unconfigured_port");
const RUNT = counter("drop_runt");
/** Then one counter per output, "out_N" (N: its position in "out"). */
const FIXED_COUNTERS = RUNT + 1;

const MAX_OUT: i32 = 32;
let inPort: i32 = -1;
let nout: i32 = 0;
const OUT: usize = memory.data(32);
/** Per port: 1 if it is one of the outputs. */
const IS_OUT: usize = memory.data(256);

// ---- configuration ----

function configure(ptr: i32, len: i32): bool {
  inPort = -1; nout = 0;
  memory.fill(IS_OUT, 0, 256);
  J.begin(ptr, len);
  if (!J.obj()) return false;
  while (J.next()) {
    if (J.key("in")) inPort = J.intIn(0, 253);
    else if (J.key("out") && J.arr()) {
      while (J.item()) {
        const port = J.intIn(0, 253);
        if (nout >= MAX_OUT || load<u8>(IS_OUT + port)) J.fail(); // too many, or twice
        else { store<u8>(OUT + nout++, port); store<u8>(IS_OUT + port, 1); }
      }
    } else J.fail();
  }
  return J.done() && inPort >= 0 && nout > 0 && !load<u8>(IS_OUT + inPort);
}

export function wasmap_fn_config(ptr: i32, len: i32): i32 {
  if (!configure(ptr, len)) { inPort = -1; nout = 0; memory.fill(IS_OUT, 0, 256); return -1; }
  truncateCounters(FIXED_COUNTERS);
  for (let k = 0; k < nout; k++) counter("out_", k); // index FIXED_COUNTERS + k
  return 0;
}

// ---- hashing (MurmurHash3's 32-bit mixing steps) ----

@inline function mix(h: u32, k: u32): u32 {
  k *= 0xcc9e2d51; k = rotl<u32>(k, 15); k *= 0x1b873593;
  h ^= k; h = rotl<u32>(h, 13);
  return h * 5 + 0xe6546b64;
}
@inline function finish(h: u32): u32 {
  h ^= h >>> 16; h *= 0x85ebca6b; h ^= h >>> 13; h *= 0xc2b2ae35;
  return h ^ (h >>> 16);
}
@inline function min32(a: u32, b: u32): u32 { return a < b ? a : b; }
@inline function max32(a: u32, b: u32): u32 { return a < b ? b : a; }

/** The symmetric flow hash of the frame whose header is at h (hlen ≥ 14 bytes). */
@inline function flowHash(h: usize, hlen: i32): u32 {
  const ip = h + 14;
  const vihl = <i32>load<u8>(ip);
  if (be16(h + 12) == ETH_IPV4 && hlen >= 34 && (vihl >> 4) == 4 && (vihl & 15) >= 5) {
    // addresses and ports as loaded (byte order does not matter, only that both directions agree)
    const a = load<u32>(ip, 12), b = load<u32>(ip, 16);
    const proto = <u32>load<u8>(ip, 9);
    let hash = mix(mix(mix(0x5eed, min32(a, b)), max32(a, b)), proto);
    const l4 = 14 + ((vihl & 15) << 2);
    if ((proto == 6 || proto == 17 || proto == 132) && (be16(ip + 6) & 0x3fff) == 0 && l4 + 4 <= hlen) {
      // not a fragment (no MF flag, offset 0): the ports are there and every packet has them
      const sp = <u32>load<u16>(h + l4), dp = <u32>load<u16>(h + l4 + 2);
      hash = mix(hash, min32(sp, dp) << 16 | max32(sp, dp));
    }
    return finish(hash);
  }
  const d = mac48(h), s = mac48(h + 6);
  const lo = d < s ? d : s, hi = d < s ? s : d;
  return finish(mix(mix(mix(mix(0xe7e7, <u32>lo), <u32>(lo >> 32)), <u32>hi), <u32>(hi >> 32)));
}

// ---- lookup ----

export function wasmap_fn_lookup(n: i32, nports: i32, now: i32): i32 {
  if (badBatch(n)) return -1;
  for (let i = 0; i < n; i++) {
    const r = record(i);
    const hlen = hdrLen(r);
    if (hlen < 14) { bump(RUNT); continue; }
    const src = srcPort(r);
    if (src == inPort) {
      const k = <i32>(flowHash(hdr(r), hlen) % <u32>nout);
      const out = <i32>load<u8>(OUT + k);
      // an output that is not attached: drop rather than move the flow (it comes back when the port does)
      if (out >= nports) { bump(PORT_DOWN); continue; }
      decide(r, out);
      bump(FIXED_COUNTERS + k);
    } else if (load<u8>(IS_OUT + src)) {
      if (inPort >= nports) { bump(PORT_DOWN); continue; }
      decide(r, inPort);
      bump(TO_IN);
    } else bump(UNCONFIGURED);
  }
  return 0;
}
