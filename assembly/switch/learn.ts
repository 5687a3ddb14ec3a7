// The default lookup: a learning bridge. Source MACs are learned into a direct-mapped table
// (netmap's hash, more buckets); a destination that is known, fresh and on a live port goes
// there, anything else floods. Entries carry the port's generation, so a port that detached
// (or was replaced by another at the same index) invalidates everything learned on it.
import {
  SW_NOW, SW_AGE, SW_TABLE, SW_TABLE_MASK, SW_PORTS, SW_LEARNED, PORT_SIZE, P_TX, P_GEN,
  MAC_ENTRY_SIZE, SW_DST_BCAST, SW_DST_DROP, NS_NO_LEARN, NS_PORT_SHIFT, SW_MAX_PORTS,
} from '../abi';

const MAC48: u64 = 0xffffffffffff;

/** netmap's nm_vale_rthash: Bob Jenkins' mix over the six address bytes. */
@inline export function mac_hash(mac: u64): u32 {
  let a: u32 = 0x9e3779b9 + <u32>mac;
  let b: u32 = 0x9e3779b9 + <u32>(mac >> 32);
  let c: u32 = 0;
  a -= b; a -= c; a ^= (c >> 13);
  b -= c; b -= a; b ^= (a << 8);
  c -= a; c -= b; c ^= (b >> 13);
  a -= b; a -= c; a ^= (c >> 12);
  b -= c; b -= a; b ^= (a << 16);
  c -= a; c -= b; c ^= (b >> 5);
  a -= b; a -= c; a ^= (c >> 3);
  b -= c; b -= a; b ^= (a << 10);
  c -= a; c -= b; c ^= (b >> 15);
  return c;
}

@inline function port_gen(sw: usize, p: u32): u64 {
  return <u64>(load<u32>(<usize>load<u32>(sw, SW_PORTS) + PORT_SIZE * p, P_GEN) & 0xffff);
}

/** What the lookup needs from the switch, read once per batch instead of once per frame. */
// (module globals, not an object: the datapath allocates nothing)
let c_table: usize = 0, c_mask: u32 = 0, c_now: u32 = 0, c_age: u32 = 0, c_ports: usize = 0, c_src_gen: u64 = 0;
// A batch is mostly one flow: remember the last source found learned and the last
// destination resolved, and skip the table while they repeat. Any table write forgets both.
const NONE: u64 = 0xffffffffffffffff; // never a 48-bit MAC
let c_last_smac: u64 = NONE, c_last_dmac: u64 = NONE, c_last_dst: u32 = 0;

export function lookup_ctx(sw: usize, src: u32): void {
  c_table = <usize>load<u32>(sw, SW_TABLE);
  c_mask = load<u32>(sw, SW_TABLE_MASK);
  c_now = load<u32>(sw, SW_NOW);
  c_age = load<u32>(sw, SW_AGE);
  c_ports = <usize>load<u32>(sw, SW_PORTS);
  c_src_gen = <u64>(load<u32>(c_ports + <usize>PORT_SIZE * <usize>src, P_GEN) & 0xffff);
  c_last_smac = NONE;
  c_last_dmac = NONE;
}

/**
 * Decide where the frame at `buf` (len >= 14 checked by the caller) from port `src` goes:
 * a port index, SW_DST_BCAST or SW_DST_DROP. `flags` are the first slot's flags: a non-zero
 * high byte names the destination (1..254 = port value-1, 255 = flood) and skips learning.
 */
@inline export function learn_lookup(sw: usize, src: u32, buf: usize, flags: u16): u32 {
  const explicit = <u32>flags >> NS_PORT_SHIFT;
  if (explicit != 0) {
    if (explicit == 255) return SW_DST_BCAST;
    return explicit - 1; // the caller checks the port exists and is not the source
  }
  const table = c_table;
  const mask = c_mask;
  const now = c_now;
  const dmac = load<u64>(buf) & MAC48;
  const smac = load<u64>(buf, 4) >> 16;
  // learn: unicast sources only; write the entry only when something changed
  if ((smac & 1) == 0 && (flags & NS_NO_LEARN) == 0 && smac != c_last_smac) {
    const e = table + <usize>MAC_ENTRY_SIZE * <usize>(mac_hash(smac) & mask);
    const want = smac | (c_src_gen << 48);
    if (load<u64>(e) != want || load<u32>(e, 8) != src) {
      store<u64>(e, want);
      store<u32>(e, src, 8);
      store<u64>(sw, load<u64>(sw, SW_LEARNED) + 1, SW_LEARNED);
      c_last_dmac = NONE;
    }
    if (load<u32>(e, 12) != now) store<u32>(e, now, 12);
    c_last_smac = smac;
  }
  if (dmac & 1) return SW_DST_BCAST; // broadcast and multicast
  if (dmac == c_last_dmac) return c_last_dst;
  const dst = resolve(src, dmac, table, mask, now);
  c_last_dmac = dmac;
  c_last_dst = dst;
  return dst;
}

@inline function resolve(src: u32, dmac: u64, table: usize, mask: u32, now: u32): u32 {
  const e = table + <usize>MAC_ENTRY_SIZE * <usize>(mac_hash(dmac) & mask);
  const ent = load<u64>(e);
  if ((ent & MAC48) != dmac) return SW_DST_BCAST;
  const p = load<u32>(e, 8);
  if (p >= SW_MAX_PORTS) return SW_DST_BCAST;
  const pp = c_ports + <usize>PORT_SIZE * <usize>p;
  if ((ent >> 48) != <u64>(load<u32>(pp, P_GEN) & 0xffff) || load<u32>(pp, P_TX) == 0) return SW_DST_BCAST;
  if (now - load<u32>(e, 12) > c_age) return SW_DST_BCAST;
  return p == src ? SW_DST_DROP : p;
}
