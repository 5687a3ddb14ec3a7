// Forwarding functions, the switch's side (docs/forwarding-functions.md). A batch's headers go
// into 128-byte records; the host hands them to the user's module (its own instance, its own
// memory: it never sees a ring, a buffer or this switch) and the decisions come back in the
// same records. Every answer is checked here before a single frame moves, so a bad answer
// costs only its own batch: dropped, counted, and the function is switched off.
import {
  NS_MOREFRAG, SW_ACTIVE, SW_NPORTS, SW_NOW, SW_LOOKUP, SW_FN_REC, SW_FN_FALLBACK, SW_FN_FAULT,
  SW_FN_FAULT_AT, SW_FN_FAULT_DROPS, SW_FN_FRAMES, SW_FN_CALLS, SW_VN_IN_MAX, SW_DST_DROP,
  PK_SIZE, PK_FIRST, PK_NFRAGS, PK_NEXT, PK_BYTES, PK_REWRITE, FN_REC_SIZE, FN_HDR, FN_HDR_MAX,
  FN_REWRITE, FNE_RC, FNE_DECISION, FNE_REWRITE, FNE_FLAGS, SW_MAX_PORTS, SN_DST, SN_NH, SN_REP, SN_BYTES,
} from '../abi';
import { snap_at, snap_take, snap_len } from './snap';

// The host runs the module: it copies the records in and out (or shares them), sets the fuel,
// catches a trap, and on failure sets SW_FN_FAULT and the fallback itself and returns < 0.
// @ts-ignore: decorator
@external("wasmap", "fn_lookup")
declare function host_fn_lookup(sw: usize, n: u32, nports: u32, now: u32): i32;

// Builds that run without such a host (the WASI command) define WASMAP_NO_FN: no import.
@inline function call_host(sw: usize, n: u32, nports: u32, now: u32): i32 {
  if (isDefined(WASMAP_NO_FN)) return -1;
  else return host_fn_lookup(sw, n, nports, now);
}

/** Make packet record `pk` of the fragments from index `f` (up to the one without MOREFRAG):
 *  first fragment, count, bytes, no queue link, no rewrite. Returns the next packet's first. */
@inline export function pk_split(pk: usize, frags: usize, f: u32): u32 {
  const first = f;
  let plen: u32 = 0;
  while (true) {
    const fl = load<u16>(frags + 8 * <usize>f, 6);
    plen += load<u16>(frags + 8 * <usize>f, 4);
    f++;
    if ((fl & NS_MOREFRAG) == 0) break;
  }
  store<u32>(pk, first, PK_FIRST);
  store<u16>(pk, <u16>(f - first), PK_NFRAGS);
  store<u32>(pk, plen, PK_BYTES);
  store<u32>(pk, 0, PK_NEXT);
  store<u16>(pk, 0, PK_REWRITE);
  return f;
}

/** Record k of the switch's record area. */
@inline function fn_rec(sw: usize, k: u32): usize { return <usize>load<u32>(sw, SW_FN_REC) + <usize>FN_REC_SIZE * <usize>k; }

/** Header bytes a record carries for a frame whose first fragment is `fl0` bytes (vnet header
 *  included): what the function sees and what a REWRITE replaces. */
@inline export function fn_hlen(fl0: u32, hdr: u32): u32 {
  const l = fl0 - hdr;
  return l < FN_HDR_MAX ? l : FN_HDR_MAX;
}

/** How many of the frame's first bytes a REWRITE replaces: the record's u16 at 10, where 0
 *  (what the switch writes) means all `hl` input header bytes. */
@inline function fn_replaced(r: usize, hl: u32): u32 {
  const rep = <u32>load<u16>(r, 10);
  return rep == 0 ? hl : rep;
}

export let fn_bytes: u64 = 0; // bytes of the batch just filled (set by fn_fill)

/**
 * Split a batch of `npk` packets (fragments at `frags`) into PK records as the learning path
 * does, and fill one function record per packet. The frame's first bytes (vnet header and up
 * to FN_HDR_MAX more) are read once from the sender's buffer into the packet's private
 * snapshot; the record is filled from the snapshot, and deliveries write those bytes from it
 * too: what the function decides on is what goes out, whatever the sender (or the function,
 * in its record) writes meanwhile.
 */
export function fn_fill(sw: usize, src: u32, hdr: u32, npk: u32, frags: usize, pkts: usize, bsize: u32): void {
  const rec = <usize>load<u32>(sw, SW_FN_REC);
  const zero = i64x2.splat(0);
  let f: u32 = 0, bytes: u64 = 0;
  for (let k: u32 = 0; k < npk; k++) {
    const pk = pkts + <usize>PK_SIZE * <usize>k;
    const first = f;
    f = pk_split(pk, frags, f);
    const plen = load<u32>(pk, PK_BYTES);
    bytes += plen;
    const fr = frags + 8 * <usize>first;
    const r = rec + <usize>FN_REC_SIZE * <usize>k;
    const sn = snap_at(sw, k, true);
    const fl0 = <u32>load<u16>(fr, 4);
    store<u32>(sn, SW_DST_DROP, SN_DST);
    store<u8>(r, <u8>src, 0);
    store<u8>(r, <u8>SW_DST_DROP, 1);
    store<u16>(r, 0, 6);
    store<u32>(r, 0, 12);
    v128.store(r, zero, 16);
    if (fl0 < 14 + hdr) { // a runt: the function sees its length only, and it is dropped
      store<u16>(r, <u16>(plen >= hdr ? plen - hdr : 0), 2);
      store<u16>(r, 0, 4);
      store<u16>(r, 0, 10);
      continue;
    }
    store<u16>(r, <u16>(plen - hdr), 2);
    const hl = fn_hlen(fl0, hdr);
    store<u16>(r, <u16>hl, 4);
    store<u16>(r, load<u16>(fr, 6), 8);
    store<u16>(r, 0, 10);
    // the snapshot: in strides from the sender's buffer (frames start at a buffer's start) as
    // far as the record's strides below read it (hdr + 64 or hdr + 96 bytes)
    const b = <usize>load<u32>(fr);
    if (bsize >= SN_BYTES) {
      v128.store(sn, v128.load(b));
      v128.store(sn, v128.load(b, 16), 16);
      v128.store(sn, v128.load(b, 32), 32);
      v128.store(sn, v128.load(b, 48), 48);
      if (hdr != 0 || hl > 64) v128.store(sn, v128.load(b, 64), 64);
      if (hl > 64) {
        v128.store(sn, v128.load(b, 80), 80);
        v128.store(sn, v128.load(b, 96), 96);
      }
    } else snap_take(sn, b, snap_len(fl0, hdr, true), true, bsize);
    const a = sn + hdr;
    v128.store(r, v128.load(a), FN_HDR);
    v128.store(r, v128.load(a, 16), FN_HDR + 16);
    v128.store(r, v128.load(a, 32), FN_HDR + 32);
    v128.store(r, v128.load(a, 48), FN_HDR + 48);
    if (hl > 64) {
      v128.store(r, v128.load(a, 64), FN_HDR + 64);
      v128.store(r, v128.load(a, 80), FN_HDR + 80);
    }
  }
  fn_bytes = bytes;
}

/** Highest attached port index + 1: the decisions the function may name. */
function fn_nports(sw: usize): u32 {
  const active = <usize>load<u32>(sw, SW_ACTIVE);
  const n = load<u32>(sw, SW_NPORTS);
  let top: u32 = 0;
  for (let a: u32 = 0; a < n; a++) {
    const i = <u32>load<u8>(active + a) + 1;
    if (i > top) top = i;
  }
  return top;
}

/** Disable the function: `at` = record index | the offending value << 16. */
function fault(sw: usize, code: i32, at: u32): void {
  store<i32>(sw, code, SW_FN_FAULT);
  store<u32>(sw, at, SW_FN_FAULT_AT);
  store<u32>(sw, load<u32>(sw, SW_FN_FALLBACK), SW_LOOKUP);
}

/**
 * Run the function on the filled records and check its answers. Returns true when the
 * decisions stand (then PK_REWRITE marks rewritten packets); false when the batch is dropped
 * (every record then says drop; the fault and the fallback are set).
 */
export function fn_decide(sw: usize, hdr: u32, npk: u32, frags: usize, pkts: usize): bool {
  const rec = <usize>load<u32>(sw, SW_FN_REC);
  const nports = fn_nports(sw);
  store<u64>(sw, load<u64>(sw, SW_FN_CALLS) + 1, SW_FN_CALLS);
  const rc = call_host(sw, npk, nports, load<u32>(sw, SW_NOW));
  let ok = rc >= 0;
  if (!ok && load<i32>(sw, SW_FN_FAULT) == 0) fault(sw, FNE_RC, 0); // a host that did not say why
  for (let k: u32 = 0; ok && k < npk; k++) {
    const r = rec + <usize>FN_REC_SIZE * <usize>k;
    // every answer is read once from the record (the function's memory) into the snapshot
    const d = <u32>load<u8>(r, 1);
    const flags = load<u16>(r, 6);
    const pk = pkts + <usize>PK_SIZE * <usize>k;
    const sn = snap_at(sw, k, true);
    const fl0 = <u32>load<u16>(frags + 8 * <usize>load<u32>(pk, PK_FIRST), 4);
    if (d < SW_MAX_PORTS && d >= nports) { fault(sw, FNE_DECISION, k | (d << 16)); ok = false; break; }
    if (fl0 >= 14 + hdr) store<u32>(sn, d, SN_DST); // a runt stays dropped
    if (flags == 0 || d == SW_DST_DROP) continue;
    if (flags != FN_REWRITE) { fault(sw, FNE_FLAGS, k | (<u32>flags << 16)); ok = false; break; }
    const nh = <u32>load<u16>(r, 4);
    const plen = load<u32>(pk, PK_BYTES);
    if (fl0 < 14 + hdr) continue; // a runt: dropped whatever was said
    const hl = fn_hlen(fl0, hdr), rep = fn_replaced(r, hl);
    if (nh > FN_HDR_MAX || rep > hl) { fault(sw, FNE_REWRITE, k | (nh << 16)); ok = false; break; }
    const newlen = plen - hdr - rep + nh;
    if (newlen < 14 || newlen > 65535 || newlen + hdr > SW_VN_IN_MAX) { fault(sw, FNE_REWRITE, k | (nh << 16)); ok = false; break; }
    store<u16>(sn, <u16>nh, SN_NH);
    store<u16>(sn, <u16>rep, SN_REP);
    store<u16>(pk, 1, PK_REWRITE);
  }
  if (!ok) {
    for (let k: u32 = 0; k < npk; k++) {
      store<u8>(rec + <usize>FN_REC_SIZE * <usize>k, <u8>SW_DST_DROP, 1);
      store<u32>(snap_at(sw, k, true), SW_DST_DROP, SN_DST);
      store<u16>(pkts + <usize>PK_SIZE * <usize>k, 0, PK_REWRITE);
    }
    store<u64>(sw, load<u64>(sw, SW_FN_FAULT_DROPS) + <u64>npk, SW_FN_FAULT_DROPS);
    return false;
  }
  store<u64>(sw, load<u64>(sw, SW_FN_FRAMES) + <u64>npk, SW_FN_FRAMES);
  return true;
}

/** The checked decision for packet k of a decided batch (a runt is always dropped). */
@inline export function fn_dst(sw: usize, k: u32): u32 {
  return load<u32>(snap_at(sw, k, true), SN_DST);
}

/**
 * Gather packet `pk` (index k) into `out` with its function-rewritten header: the vnet header
 * (hdr bytes) as it was, the new header from the record, then the frame past the bytes
 * replaced — the part of those the function saw from the snapshot, the rest from the buffers.
 * A vnet header asking for a checksum has its csum_start moved by the length change. Returns
 * the bytes written (the checked new length + hdr <= SW_VN_IN_MAX).
 */
export function fn_gather_rewritten(sw: usize, k: u32, pk: usize, frags: usize, hdr: u32, out: usize): u32 {
  const r = fn_rec(sw, k), sn = snap_at(sw, k, true);
  const nf = <u32>load<u16>(pk, PK_NFRAGS);
  const first = frags + 8 * <usize>load<u32>(pk, PK_FIRST);
  const old = <u32>load<u16>(sn, SN_REP), nh = <u32>load<u16>(sn, SN_NH), s = snap_len(<u32>load<u16>(first, 4), hdr, true);
  memory.copy(out, sn, hdr);
  memory.copy(out + hdr, r + FN_HDR, nh);
  let at = hdr + nh, skip = hdr + old;
  for (let f: u32 = 0; f < nf; f++) {
    const fr = first + 8 * <usize>f;
    const l = <u32>load<u16>(fr, 4);
    if (skip >= l) { skip -= l; continue; }
    memory.copy(out + at, <usize>load<u32>(fr) + skip, l - skip);
    at += l - skip;
    skip = 0;
  }
  if (s > hdr + old) memory.copy(out + hdr + nh, sn + hdr + old, s - hdr - old); // what the function saw
  if (hdr != 0 && (load<u8>(out) & 1) != 0) { // VIRTIO_NET_HDR_F_NEEDS_CSUM
    store<u16>(out, <u16>(<i32>load<u16>(out, 6) + <i32>nh - <i32>old), 6);
  }
  return at;
}

/**
 * The fast path of a rewrite: packet `pk` (index k, one fragment) written with its new header
 * straight into a receiver's buffer `dst` of `bsize` bytes (the sender's are `src_bsize`).
 * Returns the length written, or -1 when it does not fit in one buffer or one slot's u16
 * length (then the caller gathers). The vnet header and the bytes the function saw come from
 * the snapshot. Copies of 64 bytes or less go in 16-byte strides when both buffers have room
 * for the overshoot.
 */
export function fn_rewrite_into(sw: usize, k: u32, pk: usize, frags: usize, hdr: u32, dst: usize, bsize: u32, src_bsize: u32): i32 {
  const r = fn_rec(sw, k), sn = snap_at(sw, k, true);
  const fr = frags + 8 * <usize>load<u32>(pk, PK_FIRST);
  const fl0 = <u32>load<u16>(fr, 4);
  const rep = <u32>load<u16>(sn, SN_REP), nh = <u32>load<u16>(sn, SN_NH), s = snap_len(fl0, hdr, true);
  const rest = fl0 - hdr - rep, total = hdr + nh + rest;
  if (total > bsize || total > 65535) return -1;
  const src = <usize>load<u32>(fr);
  if (hdr != 0) {
    memory.copy(dst, sn, hdr);
    if ((load<u8>(sn) & 1) != 0) store<u16>(dst, <u16>(<i32>load<u16>(sn, 6) + <i32>nh - <i32>rep), 6); // NEEDS_CSUM
  }
  const h = dst + hdr;
  if (hdr + FN_HDR_MAX <= bsize) { // the header: 96 bytes in strides (the rest overwrites the slack)
    v128.store(h, v128.load(r, FN_HDR));
    v128.store(h, v128.load(r, FN_HDR + 16), 16);
    v128.store(h, v128.load(r, FN_HDR + 32), 32);
    v128.store(h, v128.load(r, FN_HDR + 48), 48);
    if (nh > 64) {
      v128.store(h, v128.load(r, FN_HDR + 64), 64);
      v128.store(h, v128.load(r, FN_HDR + 80), 80);
    }
  } else memory.copy(h, r + FN_HDR, nh);
  const from = src + hdr + rep, to = h + nh;
  if (rest <= 64 && hdr + rep + 64 <= src_bsize && hdr + nh + 64 <= bsize) {
    v128.store(to, v128.load(from));
    v128.store(to, v128.load(from, 16), 16);
    v128.store(to, v128.load(from, 32), 32);
    v128.store(to, v128.load(from, 48), 48);
  } else memory.copy(to, from, rest);
  if (s > hdr + rep) memory.copy(to, sn + hdr + rep, s - hdr - rep); // what the function saw
  return <i32>total;
}
