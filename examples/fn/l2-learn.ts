// The switch's default lookup — VALE's learning bridge — as a forwarding function.
//
// Every frame teaches the table where its source MAC lives (unless it is a group address, which
// no station owns, or the sender set NS_NO_LEARN). The destination then decides: a group
// address (broadcast or multicast: bit 0 of the first byte) or an unknown or aged-out MAC is
// flooded; a known MAC goes to its port, or is dropped if that is the port the frame came from
// (the station is on the sender's side already).
//
// Configuration (optional): {"age": seconds} — how long an entry lives without being refreshed
// (default 300, like most bridges).
import { badBatch, decide, FLOOD, hdr, hdrLen, NS_NO_LEARN, record, slotFlags, srcPort } from "./lib/abi";
import { bump, counter } from "./lib/counters";
import * as J from "./lib/json";
import { find, forgetAll, learn } from "./lib/mactable";
import { isGroup, mac48 } from "./lib/net";
export { wasmap_fn_version, wasmap_fn_batch } from "./lib/abi";
export { wasmap_fn_counters } from "./lib/counters";
export { configBuf as wasmap_fn_config_buf } from "./lib/mem";

const FORWARDED = counter("forwarded");
const FLOODED = counter("flooded");
const SAME_PORT = counter("drop_same_port");
const RUNT = counter("drop_runt");

let age: u32 = 300;
let lastNports: i32 = -1;

export function wasmap_fn_config(ptr: i32, len: i32): i32 {
  let a: u32 = 300;
  J.begin(ptr, len);
  if (!J.obj()) return -1;
  while (J.next()) {
    if (J.key("age")) a = J.intIn(1, 0x7fffffff);
    else J.fail();
  }
  if (!J.done()) return -1;
  age = a;
  return 0;
}

export function wasmap_fn_lookup(n: i32, nports: i32, now: i32): i32 {
  if (badBatch(n)) return -1;
  // A port came or went: what was learned may name a port that is no longer attached, and
  // naming it would be a bad decision. Start over (the function cannot see which port left).
  if (nports != lastNports) { forgetAll(); lastNports = nports; }
  for (let i = 0; i < n; i++) {
    const r = record(i);
    if (hdrLen(r) < 14) { bump(RUNT); continue; } // no Ethernet header: dropped
    const h = hdr(r);
    const src = srcPort(r);
    const smac = mac48(h + 6);
    if (!isGroup(smac) && (slotFlags(r) & NS_NO_LEARN) == 0) learn(smac, src, now);
    const dmac = mac48(h);
    const out = isGroup(dmac) ? -1 : find(dmac, now, age);
    if (out < 0 || out >= nports) { decide(r, FLOOD); bump(FLOODED); }
    else if (out == src) bump(SAME_PORT);
    else { decide(r, out); bump(FORWARDED); }
  }
  return 0;
}
