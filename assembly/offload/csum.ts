// Internet checksum (RFC 1071): a ones'-complement sum of big-endian 16-bit words.

/** Add `len` bytes at `p` to a running (unfolded) sum. */
export function csum_add(p: usize, len: u32, sum: u64): u64 {
  let i: u32 = 0;
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
