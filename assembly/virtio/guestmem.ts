// A vhost-user guest's memory table and the translation of guest addresses (issue #8, #17).
//
// One entry per guest RAM region of VHOST_USER_SET_MEM_TABLE: guest physical address
// (descriptors carry these), size, the front-end's user address (vring addresses are these),
// and where the region is in this memory. A region is mapped one of two ways:
//  - whole ("direct"): the host mapped all of it at MTE_WASM. Small guests (the wasm32 memory
//    holds at most 4 GiB, so a region can only be mapped whole when it is small).
//  - through a window (MTE_WASM 0, MTE_TAB set): the region is cut into chunks of 2^shift
//    bytes (2 MiB: huge-page granular), and only chunks in use are mapped, each into a slot of
//    the port's window. A slot holds its chunk AND the region's next chunk (2 × 2^shift bytes,
//    when the region goes on), so anything that starts in a chunk and is at most 2^shift + 1
//    bytes long is contiguous in the slot: rings and indirect tables (≤ 512 KiB) always are,
//    and a buffer is handed out in pieces only where it runs past its slot's end.
//    The chunk table (8 bytes per chunk: u32 wasm address of the chunk's start in its slot,
//    0 = not mapped; u32 the clock at its last use, for the host's LRU) is read here and
//    written only by the host. A translation into a chunk not mapped is a miss: MT_MISSED is
//    returned and the chunk noted (MT_MISS_*); the caller stops without consuming anything,
//    the host maps the chunk, and the pass is run again.
// A translation never answers for bytes outside one region: [x, x+len) is checked against the
// region first (no wrap: len is compared with what is left), and a piece never runs past the
// bytes the host mapped for the slot (the region's next chunk, or the region's end).
import { E_OK, E_INVAL, E_NOFIT } from '../abi';

export const MT_MAX: u32 = 8; // vhost-user's VHOST_MEMORY_BASELINE_NREGIONS
const MT_COUNT: u32 = 0; // u32
export const MT_SHIFT: u32 = 4; // u32: log2 of the window chunk size
export const MT_CLOCK: u32 = 8; // u32: the host's pass clock, stamped on chunks as they are used
export const MT_MISS: u32 = 12; // u32: 1 after a miss (the host clears it)
export const MT_MISS_REGION: u32 = 16; // u32: the region (index in the table) of the last miss
export const MT_MISS_CHUNK: u32 = 20; // u32: its chunk
export const MT_MISSES: u32 = 24; // u64: misses, all time
const MT_ENTRIES: u32 = 32;
const MTE_SIZE: u32 = 32;
const MTE_GPA: u32 = 0; // u64
const MTE_LEN: u32 = 8; // u64
const MTE_UVA: u32 = 16; // u64
const MTE_WASM: u32 = 24; // u32: a whole mapping's address, 0 for a windowed region
const MTE_TAB: u32 = 28; // u32: a windowed region's chunk table, 0 for a whole mapping
export const MT_SIZE: u32 = MT_ENTRIES + MT_MAX * MTE_SIZE;
export const MT_CHUNK_SHIFT: u32 = 21; // 2 MiB chunks (a 2 MiB huge page each)
export const MT_CE_SIZE: u32 = 8; // bytes per chunk table entry
/** What a translation into a chunk not mapped returns (never a real address: 0 and 1 are below
 *  any mapping). */
export const MT_MISSED: usize = 1;

/** Bytes usable at the address the last translation returned (≤ the length asked for; less
 *  only when a windowed buffer runs past its slot: the rest is translated on its own). */
export let mt_piece: u64 = 0;

/** Empty the table (a new SET_MEM_TABLE replaces the whole table); chunks of 2 MiB. */
export function mt_init(mt: usize): void {
  memory.fill(mt, 0, MT_SIZE);
  store<u32>(mt, MT_CHUNK_SHIFT, MT_SHIFT);
}

/** Regions in the table. */
export function mt_count(mt: usize): u32 { return min(load<u32>(mt, MT_COUNT), MT_MAX); }

// [a, a+s) and [b, b+t) intersect (neither wraps: mt_add checked that)
@inline function overlap(a: u64, s: u64, b: u64, t: u64): bool { return a < b + t && b < a + s; }

function add(mt: usize, gpa: u64, size: u64, uva: u64, wasm: u32, tab: u32): i32 {
  const n = mt_count(mt);
  for (let i: u32 = 0; i < n; i++) {
    const e = mt + MT_ENTRIES + <usize>(i * MTE_SIZE);
    const len = load<u64>(e, MTE_LEN), w = load<u32>(e, MTE_WASM);
    if (overlap(gpa, size, load<u64>(e, MTE_GPA), len) || overlap(uva, size, load<u64>(e, MTE_UVA), len) ||
      (wasm != 0 && w != 0 && overlap(<u64>wasm, size, <u64>w, len))) return E_INVAL;
  }
  if (n == MT_MAX) return E_NOFIT;
  const e = mt + MT_ENTRIES + <usize>(n * MTE_SIZE);
  store<u64>(e, gpa, MTE_GPA);
  store<u64>(e, size, MTE_LEN);
  store<u64>(e, uva, MTE_UVA);
  store<u32>(e, wasm, MTE_WASM);
  store<u32>(e, tab, MTE_TAB);
  store<u32>(mt, n + 1, MT_COUNT);
  return E_OK;
}

/**
 * Add a region mapped whole at `wasm`. Refused (E_INVAL) when the size is zero, when the guest
 * range or the user range wraps past 2^64, when [wasm, wasm+size) is not inside the linear
 * memory (or wasm is 0, which mt_gpa uses for "no"), or when it overlaps a region already
 * there in guest, user or wasm addresses (a translation must have one answer); E_NOFIT when
 * the table is full.
 */
export function mt_add(mt: usize, gpa: u64, size: u64, uva: u64, wasm: u32): i32 {
  if (size == 0 || gpa + size < gpa || uva + size < uva || wasm == 0) return E_INVAL;
  if (<u64>wasm + size > (<u64>memory.size() << 16)) return E_INVAL;
  return add(mt, gpa, size, uva, wasm, 0);
}

/** Chunks of a windowed region of `size` bytes (its chunk table has this many entries). */
export function mt_chunks(mt: usize, size: u64): u32 {
  const sh = load<u32>(mt, MT_SHIFT);
  return <u32>((size + (<u64>1 << sh) - 1) >> sh);
}

/**
 * Add a region seen through the window: `tab` is its chunk table (mt_chunks × MT_CE_SIZE
 * bytes, zeroed by the host: nothing mapped). As mt_add, and E_INVAL when the table is not
 * inside the linear memory, is misaligned, or the region has more than 2^24 chunks (32 TiB).
 */
export function mt_add_window(mt: usize, gpa: u64, size: u64, uva: u64, tab: u32): i32 {
  if (size == 0 || gpa + size < gpa || uva + size < uva || tab == 0 || (tab & 7) != 0) return E_INVAL;
  if ((size >> load<u32>(mt, MT_SHIFT)) >= (1 << 24)) return E_INVAL;
  if (<u64>tab + <u64>mt_chunks(mt, size) * MT_CE_SIZE > (<u64>memory.size() << 16)) return E_INVAL;
  return add(mt, gpa, size, uva, 0, tab);
}

/** Remove the region that starts at guest address gpa (VHOST_USER_REM_MEM_REG). Queues that
 *  used it must be remapped (vq_remap) before they run again. E_INVAL if there is none. */
export function mt_del(mt: usize, gpa: u64): i32 {
  const n = mt_count(mt);
  for (let i: u32 = 0; i < n; i++) {
    const e = mt + MT_ENTRIES + <usize>(i * MTE_SIZE);
    if (load<u64>(e, MTE_GPA) != gpa) continue;
    memory.copy(e, mt + MT_ENTRIES + <usize>((n - 1) * MTE_SIZE), MTE_SIZE); // last one fills the hole
    memory.fill(mt + MT_ENTRIES + <usize>((n - 1) * MTE_SIZE), 0, MTE_SIZE);
    store<u32>(mt, n - 1, MT_COUNT);
    return E_OK;
  }
  return E_INVAL;
}

// A windowed region's chunk: its slot address + the offset, stamped for the LRU; or a miss.
function win(mt: usize, e: usize, i: u32, off: u64, len: u64): usize {
  const sh = load<u32>(mt, MT_SHIFT);
  const c = <u32>(off >> sh);
  const ce = <usize>load<u32>(e, MTE_TAB) + (<usize>c << 3);
  const w = <usize>load<u32>(ce);
  if (w == 0) {
    store<u32>(mt, 1, MT_MISS);
    store<u32>(mt, i, MT_MISS_REGION);
    store<u32>(mt, c, MT_MISS_CHUNK);
    store<u64>(mt, load<u64>(mt, MT_MISSES) + 1, MT_MISSES);
    return MT_MISSED;
  }
  store<u32>(ce, load<u32>(mt, MT_CLOCK), 4);
  const inner = off & ((<u64>1 << sh) - 1);
  // the slot holds this chunk and the next (the caller checked [off, off+len) is inside the
  // region, so the next chunk exists and was mapped whenever len reaches into it)
  const room = (<u64>2 << sh) - inner;
  mt_piece = len < room ? len : room;
  return w + <usize>inner;
}

// [x, x+len) inside ONE region's range at field `at`: the wasm address of x, MT_MISSED, or 0.
// off wraps to a huge value when x is below the region, and len is compared with what is
// left, so x+len is never computed and cannot wrap.
@inline function mt_find(mt: usize, x: u64, len: u64, at: u32): usize {
  const n = mt_count(mt);
  for (let i: u32 = 0; i < n; i++) {
    const e = mt + MT_ENTRIES + <usize>(i * MTE_SIZE);
    const off = x - load<u64>(e + at);
    const size = load<u64>(e, MTE_LEN);
    if (off < size && len <= size - off) {
      const w = load<u32>(e, MTE_WASM);
      if (w != 0) { mt_piece = len; return <usize>w + <usize>off; }
      return win(mt, e, i, off, len);
    }
  }
  return 0;
}

/** The wasm address of guest physical byte `gpa` if it is mapped now, else 0 — with no side
 *  effect (no miss recorded, no LRU stamp, mt_piece untouched): for touching bytes ahead of
 *  their use, so a cache miss starts early. Never for bytes that are used: see mt_gpa. */
export function mt_peek(mt: usize, gpa: u64): usize {
  const n = mt_count(mt);
  for (let i: u32 = 0; i < n; i++) {
    const e = mt + MT_ENTRIES + <usize>(i * MTE_SIZE);
    const off = gpa - load<u64>(e, MTE_GPA);
    if (off >= load<u64>(e, MTE_LEN)) continue;
    const w = load<u32>(e, MTE_WASM);
    if (w != 0) return <usize>w + <usize>off;
    const sh = load<u32>(mt, MT_SHIFT);
    const c = <usize>load<u32>(<usize>load<u32>(e, MTE_TAB) + (<usize>(off >> sh) << 3));
    return c == 0 ? 0 : c + <usize>(off & ((<u64>1 << sh) - 1));
  }
  return 0;
}

/** Guest physical [gpa, gpa+len) → its wasm address (mt_piece bytes usable there), MT_MISSED
 *  (a windowed chunk not mapped), or 0 if it is not inside one region. */
export function mt_gpa(mt: usize, gpa: u64, len: u64): usize { return mt_find(mt, gpa, len, MTE_GPA); }

/** QEMU user address [uva, uva+len) → as mt_gpa (vring addresses are these). */
export function mt_uva(mt: usize, uva: u64, len: u64): usize { return mt_find(mt, uva, len, MTE_UVA); }

/** Guest physical [gpa, gpa+len) → its wasm address when inside one region mapped whole,
 *  else 0 (a windowed region too: no miss is recorded). */
export function mt_whole(mt: usize, gpa: u64, len: u64): usize {
  const n = mt_count(mt);
  for (let i: u32 = 0; i < n; i++) {
    const e = mt + MT_ENTRIES + <usize>(i * MTE_SIZE);
    const off = gpa - load<u64>(e, MTE_GPA);
    const size = load<u64>(e, MTE_LEN);
    if (off < size && len <= size - off) { const w = load<u32>(e, MTE_WASM); return w != 0 ? <usize>w + <usize>off : 0; }
  }
  return 0;
}

/** Is guest physical [gpa, gpa+len) inside one region? (No translation, no miss: for bytes
 *  that are checked but never touched.) */
export function mt_has(mt: usize, gpa: u64, len: u64): bool {
  const n = mt_count(mt);
  for (let i: u32 = 0; i < n; i++) {
    const e = mt + MT_ENTRIES + <usize>(i * MTE_SIZE);
    const off = gpa - load<u64>(e, MTE_GPA);
    const size = load<u64>(e, MTE_LEN);
    if (off < size && len <= size - off) return true;
  }
  return false;
}

/** The region (index) holding user address uva, or -1; its chunk is (uva - region uva) >> shift.
 *  For the host, to map the chunks under the rings before a queue is set up. */
export function mt_uva_chunk(mt: usize, uva: u64): i64 {
  const n = mt_count(mt), sh = load<u32>(mt, MT_SHIFT);
  for (let i: u32 = 0; i < n; i++) {
    const e = mt + MT_ENTRIES + <usize>(i * MTE_SIZE);
    const off = uva - load<u64>(e, MTE_UVA);
    if (off < load<u64>(e, MTE_LEN)) return (<i64>i << 32) | <i64>(off >> sh);
  }
  return -1;
}
