// A small JSON reader for configurations, over the raw UTF-8 text: a cursor and a few globals,
// no allocation. Strings come back as the pointer and length of their raw bytes (escapes are
// left in place: every key and value the examples compare against is plain ASCII). Numbers
// must be integers. Any syntax error sets `err`; after it every call fails, so a parse loop
// simply ends and `done()` reports the error.
//
//   if (!J.obj()) return -1;
//   while (J.next()) {                  // reads the next key and its ':', false at '}'
//     if (J.key("age")) age = J.int();
//     else J.fail();                    // unknown keys are refused: a typo should not pass silently
//   }
//   if (!J.done()) return -1;

let p: usize = 0;
let end: usize = 0;
let depth: i32 = 0;
export let err = false;
/** The last string read (by str() or as a key by next()): raw bytes. */
export let sp: usize = 0;
export let sl: i32 = 0;
let kp: usize = 0;
let kl: i32 = 0;

const MAX_DEPTH: i32 = 32;
/** Per open container: 1 until its first member was read (then members need a ',' first). */
const FIRST: usize = memory.data(32);

export function begin(ptr: usize, len: i32): void {
  p = ptr; end = ptr + <usize>len; depth = 0; err = false;
}

export function fail(): bool { err = true; p = end; return false; }

/** The next significant byte, or -1 at the end of the text. */
export function peek(): i32 {
  while (p < end) {
    const c = <i32>load<u8>(p);
    if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) return c;
    p++;
  }
  return -1;
}

function open(c: i32): bool {
  if (peek() != c || depth >= MAX_DEPTH) return fail();
  p++;
  store<u8>(FIRST + depth++, 1);
  return true;
}
export function obj(): bool { return open(0x7b); }
export function arr(): bool { return open(0x5b); }

/** Step to the next member of the innermost container; false (and close it) at `close`. */
function member(close: i32): bool {
  if (err) return false;
  const c = peek();
  if (c == close) { p++; depth--; return false; }
  const first = FIRST + depth - 1;
  if (load<u8>(first)) store<u8>(first, 0);
  else if (c == 0x2c) p++;
  else return fail();
  return true;
}

/** The next key of the current object (then key() tests it): false at its '}' or on error. */
export function next(): bool {
  if (!member(0x7d) || !str()) return false;
  kp = sp; kl = sl;
  if (peek() != 0x3a) return fail();
  p++;
  return true;
}

/** The next element of the current array: false at its ']' or on error. */
export function item(): bool { return member(0x5d); }

/** A string value: sets sp/sl. */
export function str(): bool {
  if (peek() != 0x22) return fail();
  const s = ++p;
  while (p < end) {
    const c = <i32>load<u8>(p);
    if (c == 0x22) { sp = s; sl = <i32>(p - s); p++; return true; }
    if (c < 0x20) break;
    p += c == 0x5c ? 2 : 1;
  }
  return fail();
}

/** An integer value (at most 15 digits; fractions and exponents are refused). */
export function int(): i64 {
  let c = peek();
  const neg = c == 0x2d;
  if (neg) p++;
  let v: i64 = 0;
  let digits = 0;
  while (p < end && digits <= 15) {
    c = <i32>load<u8>(p);
    if (c < 0x30 || c > 0x39) break;
    v = v * 10 + (c - 0x30);
    digits++; p++;
  }
  if (digits == 0 || digits > 15) { fail(); return 0; }
  if (p < end) {
    c = <i32>load<u8>(p);
    if (c == 0x2e || c == 0x65 || c == 0x45) { fail(); return 0; }
  }
  return neg ? -v : v;
}

/** An integer value in [lo, hi]; fails otherwise. */
export function intIn(lo: i32, hi: i32): i32 {
  const v = int();
  if (v < lo || v > hi) { fail(); return lo; }
  return <i32>v;
}

/** The next value is a string / a number. */
export function isStr(): bool { return peek() == 0x22; }
export function isNum(): bool { const c = peek(); return c == 0x2d || (c >= 0x30 && c <= 0x39); }

/** The raw bytes (ptr, len) equal the ASCII string s. */
export function eq(ptr: usize, len: i32, s: string): bool {
  if (len != s.length) return false;
  for (let i = 0; i < len; i++) if (<i32>load<u8>(ptr + i) != s.charCodeAt(i)) return false;
  return true;
}
/** The last key read is s. */
export function key(s: string): bool { return eq(kp, kl, s); }
export function keyPtr(): usize { return kp; }
export function keyLen(): i32 { return kl; }
/** The last string read is s. */
export function strIs(s: string): bool { return eq(sp, sl, s); }

/** The whole text was one well-formed value. */
export function done(): bool { return !err && depth == 0 && peek() == -1; }
