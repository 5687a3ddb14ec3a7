// The ABI's counter table: u32 count, u32 0, then `count` entries of a NUL-padded 24-byte ASCII
// name and a u64 value. Examples define their counters once (top-level code runs when the
// module is instantiated) and bump them on the lookup path: one load and one store.

const MAX: i32 = 64;
const TABLE: usize = memory.data(8 + 32 * 64, 8);

@inline function entry(i: i32): usize { return TABLE + 8 + (<usize>i << 5); }

/** Append a counter called `name` (at most 23 ASCII characters) with the number `n` after it if n ≥ 0; its index. */
export function counter(name: string, n: i32 = -1): i32 {
  const i = <i32>load<u32>(TABLE);
  if (i >= MAX) unreachable();
  const e = entry(i);
  memory.fill(e, 0, 32);
  let k = 0;
  for (; k < name.length && k < 23; k++) store<u8>(e + k, <u8>name.charCodeAt(k));
  if (n >= 0) {
    // decimal digits, most significant first
    let d = 1;
    while (d * 10 <= n) d *= 10;
    for (; d > 0 && k < 23; d /= 10, k++) store<u8>(e + k, <u8>(0x30 + (n / d) % 10));
  }
  store<u32>(TABLE, i + 1);
  return i;
}

/** Drop the counters from index `count` on (examples whose counters depend on the configuration). */
export function truncateCounters(count: i32): void { store<u32>(TABLE, count); }

@inline export function bump(i: i32): void {
  const v = entry(i) + 24;
  store<u64>(v, load<u64>(v) + 1);
}

export function wasmap_fn_counters(): i32 { return <i32>TABLE; }
