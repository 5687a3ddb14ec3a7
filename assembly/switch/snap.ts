// Per-packet snapshots (abi.ts SW_SNAP): the first bytes of a frame, read ONCE from the
// sender's buffer into switch-private memory. Whoever decides (the learning lookup, the
// offload check, a forwarding function) reads the snapshot, and every delivery writes those
// bytes from it, so a sender that rewrites its buffer meanwhile (a passthrough guest maps it)
// changes only bytes nobody decided on.
import { SW_SNAP, SN_SIZE, SN_BYTES, FN_HDR_MAX } from '../abi';

@inline export function snap_at(sw: usize, k: u32): usize {
  return <usize>load<u32>(sw, SW_SNAP) + <usize>SN_SIZE * <usize>k;
}

/** How many first bytes of a packet (first fragment fl0 bytes, vnet header hdr) the snapshot
 *  holds: what a forwarding function sees (header + FN_HDR_MAX), else the first 64 (the vnet
 *  header and the MACs the lookup and the offload check read, in one cache line). */
@inline export function snap_len(fl0: u32, hdr: u32, fnmode: bool): u32 {
  const want = fnmode ? hdr + FN_HDR_MAX : 64;
  return fl0 < want ? fl0 : want;
}

/** Snapshot s = snap_len(..) bytes of the frame at `a` (a buffer of bsize bytes, the frame at
 *  its start) into `sn`; `wide`: s may exceed 64 (a function's batch). */
@inline export function snap_take(sn: usize, a: usize, s: u32, wide: bool, bsize: u32): void {
  if (!wide && bsize >= 64) { // 4 strides (bytes past the frame are the sender's own buffer)
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
 *  holds from it, the rest from the buffer. Same overshoot rules as copy_frag. */
@inline export function snap_put_first(dst: usize, live: usize, fl0: u32, sn: usize, s: u32): void {
  if (fl0 <= s) { copy_small(dst, sn, fl0); return; }
  copy_big(dst, live, fl0);
  if (s == 64) {
    v128.store(dst, v128.load(sn));
    v128.store(dst, v128.load(sn, 16), 16);
    v128.store(dst, v128.load(sn, 32), 32);
    v128.store(dst, v128.load(sn, 48), 48);
  } else memory.copy(dst, sn, s);
}

// fl0 <= SN_BYTES: from the snapshot, in 16-byte strides (at most 112 bytes read of its 128)
@inline function copy_small(dst: usize, src: usize, len: u32): void {
  if (len <= 64) {
    v128.store(dst, v128.load(src));
    v128.store(dst, v128.load(src, 16), 16);
    v128.store(dst, v128.load(src, 32), 32);
    v128.store(dst, v128.load(src, 48), 48);
  } else for (let o: usize = 0; o < <usize>len; o += 16) v128.store(dst + o, v128.load(src + o));
}

@inline function copy_big(dst: usize, src: usize, len: u32): void {
  if (len <= 256) { for (let o: usize = 0; o < <usize>len; o += 16) v128.store(dst + o, v128.load(src + o)); }
  else memory.copy(dst, src, len);
}
