// Internet checksum (RFC 1071): a ones'-complement sum of big-endian 16-bit words.
// The sum does not care about byte order as long as it is swapped back at the end, so the
// bulk is summed as little-endian 16-bit lanes with SIMD (16 bytes a step, widened to 32-bit
// accumulators), folded, byte-swapped, and only the tail is summed word by word.

/** Add `len` bytes at `p` to a running (unfolded, big-endian) sum. */
export function csum_add(p: usize, len: u32, sum: u64): u64 {
  let i: u32 = 0;
  if (len >= 64) {
    let a = i32x4.splat(0), b = i32x4.splat(0);
    const end = len & ~31;
    for (; i < end; i += 32) { // a 32-bit lane takes 65536 steps before it could overflow
      const x = v128.load(p + i), y = v128.load(p + i, 16);
      a = i32x4.add(a, i32x4.extadd_pairwise_i16x8_u(x));
      b = i32x4.add(b, i32x4.extadd_pairwise_i16x8_u(y));
    }
    const t = i32x4.add(a, b);
    const le: u64 = <u64>i32x4.extract_lane(t, 0) + <u64>i32x4.extract_lane(t, 1) + <u64>i32x4.extract_lane(t, 2) + <u64>i32x4.extract_lane(t, 3);
    sum += <u64>bswap<u16>(<u16>csum_fold(le));
  }
  for (; i + 4 <= len; i += 4) sum += <u64>bswap<u32>(load<u32>(p + i));
  for (; i + 2 <= len; i += 2) sum += <u64>bswap<u16>(load<u16>(p + i));
  if (i < len) sum += <u64>load<u8>(p + i) << 8;
  return sum;
}

/** Fold a running sum to 16 bits (not complemented). */
@inline export function csum_fold(sum: u64): u32 {
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffffffff) + (sum >> 32);
  let s = <u32>sum;
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return s;
}

/** The folded checksum of `len` bytes at `p` (for benchmarks and hosts). */
export function csum_bytes(p: usize, len: u32): u32 { return csum_fold(csum_add(p, len, 0)); }
