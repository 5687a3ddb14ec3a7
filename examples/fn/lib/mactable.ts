// A MAC learning table like VALE's: a fixed array of buckets indexed by a hash of the key,
// where a new key simply replaces whatever was in its bucket (no chains, no probing: a lost
// entry only costs a flood until the station sends again). A key is a MAC (48 bits) plus, for
// the VLAN example, the VLAN id above it. Entries remember when they were last refreshed and
// are ignored once older than the age limit.

const BUCKETS_LOG2: u64 = 12; // 4096 buckets of 16 bytes: 64 KiB
const TABLE: usize = memory.data(4096 * 16, 64);
const VALID: u64 = 1 << 63;

@inline function bucket(key: u64): usize {
  // Fibonacci hashing: the top bits of key × 2^64/φ
  return TABLE + (<usize>((key * 0x9e37_79b9_7f4a_7c15) >> (64 - BUCKETS_LOG2)) << 4);
}

/** Remember that `key` was seen on `port` at time `now` (seconds). */
@inline export function learn(key: u64, port: i32, now: i32): void {
  const b = bucket(key);
  store<u64>(b, key | VALID);
  store<u32>(b, now, 8);
  store<u8>(b, port, 12);
}

/** The port of `key` if it was learned less than `age` seconds before `now`, else -1. */
@inline export function find(key: u64, now: i32, age: u32): i32 {
  const b = bucket(key);
  if (load<u64>(b) != (key | VALID) || <u32>(now - load<i32>(b, 8)) >= age) return -1;
  return load<u8>(b, 12);
}

export function forgetAll(): void { memory.fill(TABLE, 0, 4096 * 16); }
