// A firewall between ports: 5-tuple rules, first match wins. Configuration:
//   {"rules": [{"src": "10.0.0.0/8", "dst": "192.168.1.0/24", "proto": "udp",
//               "sport": "1000-2000", "dport": 53, "action": "allow"},
//              {"ethertype": 2054, "action": "allow"}, …],
//    "default": "deny",                 (or "allow"; for IPv4 frames no rule matched)
//    "forward": {"0": 1, "1": 0}}       where an allowed frame from each port goes
//
// Every field of a rule but "action" may be left out: it then matches anything. "src"/"dst"
// are a prefix or one address; "proto" is "tcp", "udp", "icmp" or a number; "sport"/"dport"
// are a port or a "low-high" range and need "proto" tcp or udp; "ethertype" defaults to IPv4
// (0x0800), and a rule for another ethertype (e.g. 2054, ARP) may say nothing else.
//
// Only IPv4 is filtered: a frame of another ethertype passes only if a rule for that ethertype
// allows it ("default" does not apply to it: a firewall that forwards what it cannot read is
// not one). Fragments after the first carry no ports: rules that name ports do not match them.
import { badBatch, decide, ETH_IPV4, hdr, hdrLen, record, srcPort } from "./lib/abi";
import { bump, counter, truncateCounters } from "./lib/counters";
import * as J from "./lib/json";
import * as N from "./lib/net";
import { be16, be32, maskOf } from "./lib/net";
export { wasmap_fn_version, wasmap_fn_batch } from "./lib/abi";
export { wasmap_fn_counters } from "./lib/counters";
export { configBuf as wasmap_fn_config_buf } from "./lib/mem";

const ALLOWED = counter("allowed");
const DENIED = counter("denied");
const DEFAULT_DENIED = counter("default_denied");
const NON_IP = counter("drop_non_ip");
const BAD_IP = counter("drop_bad_ip");
const NO_FORWARD = counter("drop_no_forward");
const RUNT = counter("drop_runt");
const FIXED_COUNTERS = RUNT + 1;
/** Rules 0..31 also count their matches, as "rule_N". */
const COUNTED_RULES: i32 = 32;

// A rule, 32 bytes: src u32, src mask u32, dst u32, dst mask u32, sport low/high u16,
// dport low/high u16, ethertype u16, protocol i16 (-1: any), allow u8, names ports u8.
const MAX_RULES: i32 = 256;
const RULES: usize = memory.data(256 * 32, 16);
let nrules: i32 = 0;
let defaultAllow = false;
/** Per input port, where allowed frames go (255: nowhere). */
const FORWARD: usize = memory.data(256);
memory.fill(FORWARD, 255, 256);

const TCP: i32 = 6;
const UDP: i32 = 17;

// ---- configuration ----

function parseAddr(rule: usize, at: usize): bool {
  if (!J.str() || !N.parsePrefix(J.sp, J.sl)) return false;
  store<u32>(rule + at, N.prefix);
  store<u32>(rule + at + 4, maskOf(N.prefixLen));
  return true;
}

function parsePorts(rule: usize, at: usize): bool {
  if (J.isNum()) { const v = J.intIn(0, 65535); N.rangeLo = v; N.rangeHi = v; }
  else if (!J.str() || !N.parseRange(J.sp, J.sl)) return false;
  store<u16>(rule + at, N.rangeLo);
  store<u16>(rule + at + 2, N.rangeHi);
  store<u8>(rule, 1, 29);
  return !J.err;
}

function parseProto(rule: usize): bool {
  let proto = -1;
  if (J.isNum()) proto = J.intIn(0, 255);
  else if (J.str()) proto = J.strIs("tcp") ? TCP : J.strIs("udp") ? UDP : J.strIs("icmp") ? 1 : -1;
  store<i16>(rule, <i16>proto, 26);
  return !J.err && proto >= 0;
}

function parseRule(): bool {
  if (nrules >= MAX_RULES || !J.obj()) return false;
  const rule = RULES + (<usize>nrules << 5);
  // the defaults match everything IPv4
  memory.fill(rule, 0, 32);
  store<u16>(rule, 0xffff, 18); // sport 0-65535
  store<u16>(rule, 0xffff, 22); // dport 0-65535
  store<u16>(rule, ETH_IPV4, 24);
  store<i16>(rule, -1, 26);
  let action = -1;
  let ipFields = false;
  while (J.next()) {
    let good = true;
    if (J.key("src")) { good = parseAddr(rule, 0); ipFields = true; }
    else if (J.key("dst")) { good = parseAddr(rule, 8); ipFields = true; }
    else if (J.key("sport")) { good = parsePorts(rule, 16); ipFields = true; }
    else if (J.key("dport")) { good = parsePorts(rule, 20); ipFields = true; }
    else if (J.key("proto")) { good = parseProto(rule); ipFields = true; }
    else if (J.key("ethertype")) store<u16>(rule, J.intIn(0, 0xffff), 24);
    else if (J.key("action") && J.str()) action = J.strIs("allow") ? 1 : J.strIs("deny") ? 0 : -1;
    else good = false;
    if (!good) J.fail();
  }
  if (J.err || action < 0) return false;
  store<u8>(rule, action, 28);
  const proto = <i32>load<i16>(rule, 26);
  if (load<u8>(rule, 29) && proto != TCP && proto != UDP) return false; // ports need TCP or UDP
  if (ipFields && load<u16>(rule, 24) != ETH_IPV4) return false;       // only IPv4 has addresses
  nrules++;
  return true;
}

function configure(ptr: i32, len: i32): bool {
  nrules = 0;
  defaultAllow = false;
  memory.fill(FORWARD, 255, 256);
  J.begin(ptr, len);
  if (!J.obj()) return false;
  while (J.next()) {
    if (J.key("rules")) { if (J.arr()) while (J.item()) if (!parseRule()) J.fail(); }
    else if (J.key("default") && J.str() && (J.strIs("allow") || J.strIs("deny"))) defaultAllow = J.strIs("allow");
    else if (J.key("forward") && J.obj()) {
      while (J.next()) {
        const from = N.parseUint(J.keyPtr(), J.keyLen(), 253);
        const to = J.intIn(0, 253);
        if (from < 0) J.fail();
        else store<u8>(FORWARD + from, to);
      }
    } else J.fail();
  }
  return J.done();
}

export function wasmap_fn_config(ptr: i32, len: i32): i32 {
  if (!configure(ptr, len)) { nrules = 0; memory.fill(FORWARD, 255, 256); return -1; }
  truncateCounters(FIXED_COUNTERS);
  for (let k = 0; k < nrules && k < COUNTED_RULES; k++) counter("rule_", k); // index FIXED_COUNTERS + k
  return 0;
}

// ---- lookup ----

export function wasmap_fn_lookup(n: i32, nports: i32, now: i32): i32 {
  if (badBatch(n)) return -1;
  for (let i = 0; i < n; i++) {
    const r = record(i);
    const hlen = hdrLen(r);
    if (hlen < 14) { bump(RUNT); continue; }
    const h = hdr(r);
    const type = be16(h + 12);
    let sip: u32 = 0, dip: u32 = 0, proto = -1, sport = -1, dport = -1;
    if (type == ETH_IPV4) {
      const ip = h + 14;
      const vihl = <i32>load<u8>(ip);
      const l4 = 14 + ((vihl & 15) << 2);
      if (hlen < 34 || (vihl >> 4) != 4 || (vihl & 15) < 5 || l4 > hlen) { bump(BAD_IP); continue; }
      sip = be32(ip + 12);
      dip = be32(ip + 16);
      proto = load<u8>(ip, 9);
      // ports: TCP or UDP, the first fragment (offset 0), and the header holds them
      if ((proto == TCP || proto == UDP) && (be16(ip + 6) & 0x1fff) == 0 && l4 + 4 <= hlen) {
        sport = be16(h + l4);
        dport = be16(h + l4 + 2);
      }
    }
    let k = 0;
    for (; k < nrules; k++) {
      const rule = RULES + (<usize>k << 5);
      if (<i32>load<u16>(rule, 24) != type) continue;
      if (type != ETH_IPV4) break; // a rule for another ethertype names nothing else
      if ((sip & load<u32>(rule, 4)) != load<u32>(rule, 0)) continue;
      if ((dip & load<u32>(rule, 12)) != load<u32>(rule, 8)) continue;
      const rp = <i32>load<i16>(rule, 26);
      if (rp >= 0 && rp != proto) continue;
      if (load<u8>(rule, 29)) {
        if (sport < 0) continue;
        if (sport < <i32>load<u16>(rule, 16) || sport > <i32>load<u16>(rule, 18)) continue;
        if (dport < <i32>load<u16>(rule, 20) || dport > <i32>load<u16>(rule, 22)) continue;
      }
      break;
    }
    if (k < nrules) {
      if (k < COUNTED_RULES) bump(FIXED_COUNTERS + k);
      if (load<u8>(RULES + (<usize>k << 5), 28) == 0) { bump(DENIED); continue; }
    } else if (type != ETH_IPV4) { bump(NON_IP); continue; }
    else if (!defaultAllow) { bump(DEFAULT_DENIED); continue; }
    const out = <i32>load<u8>(FORWARD + srcPort(r));
    if (out >= nports) { bump(NO_FORWARD); continue; } // 255 (no forward) is ≥ nports too
    decide(r, out);
    bump(ALLOWED);
  }
  return 0;
}
