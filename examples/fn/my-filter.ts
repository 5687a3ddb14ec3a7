// Ports in pairs (0↔1, 2↔3 …), IPv6 dropped and counted.
import { badBatch, decide, record, srcPort, hdr, hdrLen } from "./lib/abi";
import { bump, counter } from "./lib/counters";
export { wasmap_fn_version, wasmap_fn_batch } from "./lib/abi";
export { wasmap_fn_counters } from "./lib/counters";

const PASSED = counter("passed");
const IPV6 = counter("drop_ipv6");

export function wasmap_fn_lookup(n: i32, nports: i32, now: i32): i32 {
  if (badBatch(n)) return -1;
  for (let i = 0; i < n; i++) {
    const r = record(i);                       // 128 bytes: src port, decision, lengths, header
    if (hdrLen(r) < 14) continue;              // no Ethernet header: leave the decision at drop
    const type = bswap<u16>(load<u16>(hdr(r), 12));
    if (type == 0x86dd) { bump(IPV6); continue; }
    const out = srcPort(r) ^ 1;
    if (out < nports) { decide(r, out); bump(PASSED); }
  }
  return 0;
}
