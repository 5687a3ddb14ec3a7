// 802.1Q access ports and a trunk. Configuration: {"trunk": 0, "access": {"1": 10, "2": 20}}
// — port 0 carries tagged frames, port 1 is VLAN 10, port 2 VLAN 20 (VLAN ids 1..4094).
//
// A frame from an access port is tagged with its VLAN (4 bytes, 0x8100 and the TCI with
// priority 0, inserted after the MACs) and sent to the trunk — unless its destination was
// learned on another access port of the same VLAN, where it goes directly, untagged. A frame
// from the trunk loses its tag and goes to the access port of its VLAN where its destination
// was learned or, when that is unknown or a group address, to the lowest-numbered access port
// of the VLAN: the ABI gives a frame one destination (or a flood to every port, which would
// leak it into other VLANs), so with several access ports in a VLAN, broadcasts and unknown
// destinations from the trunk reach only that one. MACs are learned per VLAN, like l2-learn.
//
// Dropped and counted: untagged frames from the trunk, tagged frames from an access port,
// VLANs with no access port, and frames from ports that are neither. Tagging and untagging
// rewrite only the first 12 or 16 bytes (the ABI's "bytes replaced" field), so frames of any
// length are tagged.
import { badBatch, decide, ETH_VLAN, hdr, hdrLen, NS_NO_LEARN, record, rewrite, slotFlags, srcPort } from "./lib/abi";
import { bump, counter } from "./lib/counters";
import * as J from "./lib/json";
import { find, forgetAll, learn } from "./lib/mactable";
import { be16, isGroup, mac48, parseUint } from "./lib/net";
export { wasmap_fn_version, wasmap_fn_batch } from "./lib/abi";
export { wasmap_fn_counters } from "./lib/counters";
export { configBuf as wasmap_fn_config_buf } from "./lib/mem";

const TO_TRUNK = counter("tagged_to_trunk");
const FROM_TRUNK = counter("untagged_from_trunk");
const LOCAL = counter("access_to_access");
const UNTAGGED = counter("drop_untagged_on_trunk");
const TAGGED = counter("drop_tagged_on_access");
const UNKNOWN_VLAN = counter("drop_unknown_vlan");
const UNCONFIGURED = counter("drop_unconfigured_port");
const SAME_PORT = counter("drop_same_port");
const PORT_DOWN = counter("drop_port_down");
const RUNT = counter("drop_runt");

const AGE: u32 = 300;
let trunk: i32 = -1;
/** Per port: its VLAN if it is an access port, else 0. */
const VLAN_OF: usize = memory.data(256 * 2, 2);
/** Per VLAN: its lowest-numbered access port, 255 if none. */
const FIRST_PORT: usize = memory.data(4096);
memory.fill(FIRST_PORT, 255, 4096);
let lastNports: i32 = -1;

function configure(ptr: i32, len: i32): bool {
  trunk = -1;
  memory.fill(VLAN_OF, 0, 256 * 2);
  memory.fill(FIRST_PORT, 255, 4096);
  J.begin(ptr, len);
  if (!J.obj()) return false;
  while (J.next()) {
    if (J.key("trunk")) trunk = J.intIn(0, 253);
    else if (J.key("access") && J.obj()) {
      while (J.next()) {
        const port = parseUint(J.keyPtr(), J.keyLen(), 253);
        const vid = J.intIn(1, 4094);
        if (port < 0) J.fail();
        else store<u16>(VLAN_OF + (<usize>port << 1), vid);
      }
    } else J.fail();
  }
  if (!J.done() || trunk < 0 || load<u16>(VLAN_OF + (<usize>trunk << 1)) != 0) return false;
  for (let port = 253; port >= 0; port--) {   // downwards: the lowest port is written last
    const vid = <usize>load<u16>(VLAN_OF + (<usize>port << 1));
    if (vid != 0) store<u8>(FIRST_PORT + vid, port);
  }
  forgetAll();
  return true;
}

export function wasmap_fn_config(ptr: i32, len: i32): i32 {
  if (configure(ptr, len)) return 0;
  trunk = -1; memory.fill(VLAN_OF, 0, 256 * 2); memory.fill(FIRST_PORT, 255, 4096);
  return -1;
}

/** Learning-table key: the MAC and, above its 48 bits, the VLAN. */
@inline function key(vid: i32, mac: u64): u64 { return mac | (<u64>vid << 48); }

export function wasmap_fn_lookup(n: i32, nports: i32, now: i32): i32 {
  if (badBatch(n)) return -1;
  if (nports != lastNports) { forgetAll(); lastNports = nports; } // see l2-learn
  for (let i = 0; i < n; i++) {
    const r = record(i);
    const hlen = hdrLen(r);
    if (hlen < 14) { bump(RUNT); continue; }
    const h = hdr(r);
    const src = srcPort(r);
    const smac = mac48(h + 6);
    const dmac = mac48(h);
    const learning = !isGroup(smac) && (slotFlags(r) & NS_NO_LEARN) == 0;

    if (src == trunk) {
      if (hlen < 18 || be16(h + 12) != ETH_VLAN) { bump(UNTAGGED); continue; }
      const vid = be16(h + 14) & 0xfff;
      let out = <i32>load<u8>(FIRST_PORT + vid);
      if (out == 255) { bump(UNKNOWN_VLAN); continue; }
      if (learning) learn(key(vid, smac), src, now);
      const known = isGroup(dmac) ? -1 : find(key(vid, dmac), now, AGE);
      if (known == src) { bump(SAME_PORT); continue; }
      if (known >= 0) out = known;
      if (out >= nports) { bump(PORT_DOWN); continue; }
      rewrite(r, 12, 16); // the MACs stay, the tag goes: 16 bytes replaced by the first 12
      decide(r, out);
      bump(FROM_TRUNK);
      continue;
    }

    const vid = <i32>load<u16>(VLAN_OF + (<usize>src << 1));
    if (vid == 0) { bump(UNCONFIGURED); continue; }
    if (be16(h + 12) == ETH_VLAN) { bump(TAGGED); continue; }
    if (learning) learn(key(vid, smac), src, now);
    const known = isGroup(dmac) ? -1 : find(key(vid, dmac), now, AGE);
    if (known == src) { bump(SAME_PORT); continue; }
    if (known >= 0 && known != trunk) {
      // a station on another access port of this VLAN: no tag needed
      if (known >= nports) { bump(PORT_DOWN); continue; }
      decide(r, known);
      bump(LOCAL);
      continue;
    }
    if (trunk >= nports) { bump(PORT_DOWN); continue; }
    store<u16>(h, bswap<u16>(<u16>ETH_VLAN), 12);
    store<u16>(h, bswap<u16>(<u16>vid), 14); // TCI: priority 0, DEI 0, VLAN id
    rewrite(r, 16, 12); // MACs + tag in place of the MACs: frames of any length
    decide(r, trunk);
    bump(TO_TRUNK);
  }
  return 0;
}
