// Per-packet snapshots (abi.ts SW_SNAP): the first bytes of a frame, read ONCE from the
// sender's buffer into switch-private memory. Whoever decides (the learning lookup, the
// offload check, a forwarding function) reads the snapshot, and every delivery writes those
// bytes from it, so a sender that rewrites its buffer meanwhile (a passthrough guest maps it)
// changes only bytes nobody decided on.
// A function's batch keeps SN_SIZE bytes a packet (the vnet header and the FN_HDR_MAX bytes
// the function sees, then the checked answers); the learning lookup's keeps SN_LEARN (64)
// bytes a packet, one aligned cache line: the vnet header and the MACs it decides on, and all
// of a short frame, which is then delivered from the snapshot alone.
import { SW_SNAP, SN_SIZE, SN_BYTES, SN_LEARN, FN_HDR_MAX } from '../abi';

@inline export function snap_at(sw: usize, k: u32, fnmode: bool): usize {
  return <usize>load<u32>(sw, SW_SNAP) + <usize>(fnmode ? SN_SIZE : SN_LEARN) * <usize>k;
}

/** How many first bytes of a packet (first fragment fl0 bytes, vnet header hdr) the snapshot
 *  holds: what a forwarding function sees (header + FN_HDR_MAX), else the first SN_LEARN
 *  (the vnet header and the MACs the lookup and the offload check read, and more). */
@inline export function snap_len(fl0: u32, hdr: u32, fnmode: bool): u32 {
  const want = fnmode ? hdr + FN_HDR_MAX : SN_LEARN;
  return fl0 < want ? fl0 : want;
}

/** Snapshot s = snap_len(..) bytes of the frame at `a` (a buffer of bsize >= 64 bytes, the
 *  frame at its start) into `sn`. Strides read past the frame only into the sender's own
 *  buffer, so a snapshot never holds bytes of another port. */
@inline export function snap_take(sn: usize, a: usize, s: u32, fnmode: bool, bsize: u32): void {
  if (!fnmode) { // SN_LEARN bytes
    v128.store(sn, v128.load(a));
    v128.store(sn, v128.load(a, 16), 16);
    v128.store(sn, v128.load(a, 32), 32);
    v128.store(sn, v128.load(a, 48), 48);
  } else if (bsize >= SN_BYTES) {
    v128.store(sn, v128.load(a));
    v128.store(sn, v128.load(a, 16), 16);
    v128.store(sn, v128.load(a, 32), 32);
    v128.store(sn, v128.load(a, 48), 48);
    v128.store(sn, v128.load(a, 64), 64);
    v128.store(sn, v128.load(a, 80), 80);
    v128.store(sn, v128.load(a, 96), 96);
  } else {
    memory.copy(sn, a, s);
    memory.fill(sn + s, 0, SN_BYTES - s); // nothing of an earlier packet stays visible
  }
}

/** Write a packet's first fragment (fl0 bytes at `live`) to `dst`: the s bytes the snapshot
 *  holds from it, the rest from the buffer. Same overshoot rules as copy_frag (the slack
 *  written past fl0 comes from the sender's own buffer). */
@inline export function snap_put_first(dst: usize, live: usize, fl0: u32, sn: usize, s: u32, fnmode: bool): void {
  if (fl0 <= s) { copy_frag(dst, sn, fl0); return; } // all of it is in the snapshot (s <= SN_BYTES, 16-byte rounding stays inside)
  copy_frag(dst, live, fl0);
  if (s == 64) {
    v128.store(dst, v128.load(sn));
    v128.store(dst, v128.load(sn, 16), 16);
    v128.store(dst, v128.load(sn, 32), 32);
    v128.store(dst, v128.load(sn, 48), 48);
  } else memory.copy(dst, sn, s);
}

/** Copy a frame fragment; short ones in 16-byte strides, rounded up (buffers are whole
 *  multiples of 64 bytes, so the slack stays inside both buffers). */
@inline export function copy_frag(dst: usize, src: usize, len: u32): void {
  if (len <= 64) {
    v128.store(dst, v128.load(src));
    v128.store(dst, v128.load(src, 16), 16);
    v128.store(dst, v128.load(src, 32), 32);
    v128.store(dst, v128.load(src, 48), 48);
  } else if (len <= 256) {
    for (let o: usize = 0; o < <usize>len; o += 16) v128.store(dst + o, v128.load(src + o));
  } else {
    memory.copy(dst, src, len);
  }
}
