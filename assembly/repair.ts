// Re-account a region's buffers after a user broke a ring: every buffer 2..nbufs-1 must sit in
// exactly one ring slot or on the free stack. Bad or duplicate indices are replaced by buffers
// nobody holds, so a reset ring loses nothing and the pool count is whole again.
import {
  SLOT_SIZE, SLOT_BUF_IDX, SLOT_LEN, RING_SLOTS, KRING_SIZE, KR_RING, RGN_NBUFS, RGN_BUF_SIZE,
  RGN_FREE, RGN_FREE_COUNT, RGN_NTX, RGN_NRX, RGN_NSLOTS, RGN_KRINGS, RGN_BITMAP, BUF_RESERVED,
} from './abi';

@inline function seen(bm: usize, i: u32): bool { return (load<u32>(bm + 4 * (i >> 5)) & (1 << (i & 31))) != 0; }
@inline function mark(bm: usize, i: u32): void { const w = bm + 4 * (i >> 5); store<u32>(w, load<u32>(w) | (1 << (i & 31))); }

// Keep a slot's buffer if nobody claimed it yet; else empty the slot (it gets one later).
@inline function claim(p: usize, nbufs: u32, bsize: u32, bm: usize): u32 {
  const idx = load<u32>(p, SLOT_BUF_IDX);
  let bad: u32 = 0;
  if (idx >= BUF_RESERVED && idx < nbufs && !seen(bm, idx)) mark(bm, idx);
  else { store<u32>(p, 0, SLOT_BUF_IDX); store<u16>(p, 0, SLOT_LEN); bad = 1; }
  if (<u32>load<u16>(p, SLOT_LEN) > bsize) store<u16>(p, 0, SLOT_LEN);
  return bad;
}

/** Returns how many slot or stack entries had to be replaced (0 for a healthy region).
 *  `blame`: the kring whose user broke the rules (0 if none). */
export function region_repair(desc: usize, blame: usize): u32 {
  const nbufs = load<u32>(desc, RGN_NBUFS);
  const bsize = load<u32>(desc, RGN_BUF_SIZE);
  const bm = <usize>load<u32>(desc, RGN_BITMAP);
  const free = <usize>load<u32>(desc, RGN_FREE);
  const nrings = load<u32>(desc, RGN_NTX) + load<u32>(desc, RGN_NRX);
  const nslots = load<u32>(desc, RGN_NSLOTS);
  const krings = <usize>load<u32>(desc, RGN_KRINGS);
  memory.fill(bm, 0, 4 * ((nbufs + 31) >> 5));
  let fixed: u32 = 0;
  // 1. keep the first holder of every valid index; mark the rest as needing a buffer (0).
  // The ring being reset (`blame`) broke the rules, so it is looked at last: a buffer it
  // copied from another ring or from the free stack stays where it was.
  for (let r: u32 = 0; r < nrings; r++) {
    const k = krings + <usize>KRING_SIZE * r;
    if (k == blame) continue;
    const slots = <usize>load<u32>(k, KR_RING) + RING_SLOTS;
    for (let s: u32 = 0; s < nslots; s++) fixed += claim(slots + <usize>(SLOT_SIZE * s), nbufs, bsize, bm);
  }
  let nfree = load<u32>(desc, RGN_FREE_COUNT);
  if (nfree > nbufs) nfree = nbufs;
  let kept: u32 = 0;
  for (let i: u32 = 0; i < nfree; i++) {
    const idx = load<u32>(free + 4 * i);
    if (idx >= BUF_RESERVED && idx < nbufs && !seen(bm, idx)) { mark(bm, idx); store<u32>(free + 4 * kept++, idx); }
    else fixed++;
  }
  if (blame != 0) {
    const slots = <usize>load<u32>(blame, KR_RING) + RING_SLOTS;
    for (let s: u32 = 0; s < nslots; s++) fixed += claim(slots + <usize>(SLOT_SIZE * s), nbufs, bsize, bm);
  }
  // 2. hand the unclaimed buffers to the empty slots first, then back to the stack
  let next: u32 = BUF_RESERVED;
  for (let r: u32 = 0; r < nrings; r++) {
    const slots = <usize>load<u32>(krings + KRING_SIZE * r, KR_RING) + RING_SLOTS;
    for (let s: u32 = 0; s < nslots; s++) {
      const p = slots + SLOT_SIZE * s;
      if (load<u32>(p, SLOT_BUF_IDX) != 0) continue;
      while (next < nbufs && seen(bm, next)) next++;
      if (next >= nbufs) break; // cannot happen: slots + stack never exceed the pool
      mark(bm, next);
      store<u32>(p, next, SLOT_BUF_IDX);
    }
  }
  for (; next < nbufs; next++) {
    if (!seen(bm, next)) { mark(bm, next); store<u32>(free + 4 * kept++, next); }
  }
  store<u32>(desc, kept, RGN_FREE_COUNT);
  return fixed;
}
