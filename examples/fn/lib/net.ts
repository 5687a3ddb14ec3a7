// Parsing the addresses a configuration names (IPv4, prefixes, MACs, port numbers and ranges)
// and reading header fields. Parsers take raw text (ptr, len) and return their result through
// the globals below, with `ok` saying whether the whole text was valid.

export let ok = false;
/** parsePrefix: the prefix (host byte order) and its length. */
export let prefix: u32 = 0;
export let prefixLen: i32 = 0;
/** parseRange: the inclusive bounds. */
export let rangeLo: i32 = 0;
export let rangeHi: i32 = 0;

/** A decimal number of 1..9 digits in [0, max] at (ptr, len), or -1. */
export function parseUint(ptr: usize, len: i32, max: i32): i32 {
  if (len < 1 || len > 9) return -1;
  let v = 0;
  for (let i = 0; i < len; i++) {
    const c = <i32>load<u8>(ptr + i) - 0x30;
    if (<u32>c > 9) return -1;
    v = v * 10 + c;
  }
  return v <= max ? v : -1;
}

/** "a.b.c.d" (host byte order); sets ok. */
export function parseIPv4(ptr: usize, len: i32): u32 {
  let v: u32 = 0;
  let start = 0;
  let parts = 0;
  ok = false;
  for (let i = 0; i <= len; i++) {
    if (i < len && load<u8>(ptr + i) != 0x2e) continue;
    const b = parseUint(ptr + start, i - start, 255);
    if (b < 0 || ++parts > 4) return 0;
    v = (v << 8) | <u32>b;
    start = i + 1;
  }
  ok = parts == 4;
  return v;
}

/** "a.b.c.d/len" or "a.b.c.d" (a /32) into prefix/prefixLen; bits set past the length are refused. */
export function parsePrefix(ptr: usize, len: i32): bool {
  let slash = len;
  for (let i = 0; i < len; i++) if (load<u8>(ptr + i) == 0x2f) { slash = i; break; }
  prefix = parseIPv4(ptr, slash);
  if (!ok) return false;
  prefixLen = slash == len ? 32 : parseUint(ptr + slash + 1, len - slash - 1, 32);
  ok = prefixLen >= 0 && (prefix & ~maskOf(prefixLen)) == 0;
  return ok;
}

/** The netmask of a prefix length (0..32), host byte order. */
@inline export function maskOf(len: i32): u32 { return len == 0 ? 0 : <u32>-1 << <u32>(32 - len); }

/** "aa:bb:cc:dd:ee:ff" written as six bytes at `to`; sets ok. */
export function parseMac(ptr: usize, len: i32, to: usize): bool {
  ok = false;
  if (len != 17) return false;
  for (let i = 0; i < 6; i++) {
    const b = hex(load<u8>(ptr + 3 * i)) << 4 | hex(load<u8>(ptr + 3 * i + 1));
    if (b < 0 || (i < 5 && load<u8>(ptr + 3 * i + 2) != 0x3a)) return false;
    store<u8>(to + i, <u8>b);
  }
  ok = true;
  return true;
}
function hex(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  c |= 0x20; // lower case
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -0x100; // stays negative after the shift and or above
}

/** "lo-hi" or "n" (0..65535) into rangeLo/rangeHi; sets ok. */
export function parseRange(ptr: usize, len: i32): bool {
  let dash = len;
  for (let i = 0; i < len; i++) if (load<u8>(ptr + i) == 0x2d) { dash = i; break; }
  rangeLo = parseUint(ptr, dash, 65535);
  rangeHi = dash == len ? rangeLo : parseUint(ptr + dash + 1, len - dash - 1, 65535);
  ok = rangeLo >= 0 && rangeHi >= rangeLo;
  return ok;
}

/** Big-endian (network order) loads from a header. */
@inline export function be16(ptr: usize): i32 { return <i32>bswap<u16>(load<u16>(ptr)); }
@inline export function be32(ptr: usize): u32 { return bswap<u32>(load<u32>(ptr)); }

/** A MAC as a 48-bit number (little-endian load like netmap's: bit 0 is the group bit). */
@inline export function mac48(ptr: usize): u64 {
  return <u64>load<u32>(ptr) | (<u64>load<u16>(ptr, 4) << 32);
}
@inline export function storeMac48(ptr: usize, mac: u64): void {
  store<u32>(ptr, <u32>mac);
  store<u16>(ptr, <u16>(mac >> 32), 4);
}
export const BROADCAST: u64 = 0xffff_ffff_ffff;
@inline export function isGroup(mac: u64): bool { return (mac & 1) != 0; }
