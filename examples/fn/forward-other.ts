// The smallest useful forwarding function: ports come in pairs (0↔1, 2↔3, …) and every frame
// goes to the other port of its pair, like netmap's bridge between two ports. A frame whose
// partner port does not exist (port index ≥ nports) is dropped: naming a port that is not
// attached would be a bad decision and disable the function.
import { badBatch, decide, record, srcPort } from "./lib/abi";
export { wasmap_fn_version, wasmap_fn_batch } from "./lib/abi";

export function wasmap_fn_lookup(n: i32, nports: i32, now: i32): i32 {
  if (badBatch(n)) return -1;
  for (let i = 0; i < n; i++) {
    const r = record(i);
    const out = srcPort(r) ^ 1;
    if (out < nports) decide(r, out); // else leave the switch's 255: drop
  }
  return 0;
}
