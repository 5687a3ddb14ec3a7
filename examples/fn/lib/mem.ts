// Memory beyond the static data: the configuration text, and tables whose size depends on the
// configuration (the router's trie). Both live from __heap_base up; the module never
// allocates through the runtime (--runtime stub), so nothing else uses that space.

/** First free byte after the static data, 64-byte aligned. */
export const HEAP: usize = (__heap_base + 63) & ~<usize>63;

/** Grow the memory so that [0, end) is addressable; false if the 256-page cap forbids it. */
export function ensureMemory(end: usize): bool {
  const have = <usize>memory.size() << 16;
  if (end <= have) return true;
  return memory.grow(<i32>((end - have + 0xffff) >>> 16)) >= 0;
}

/**
 * The body of wasmap_fn_config_buf: the text goes at HEAP (configuring is done once, before any
 * lookup, and the examples copy what they need into their own tables). -1 if it cannot fit.
 */
export function configBuf(len: i32): i32 {
  if (len < 0 || !ensureMemory(HEAP + <usize>len)) return -1;
  return <i32>HEAP;
}
