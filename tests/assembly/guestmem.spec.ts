// Guest memory seen through a window (assembly/virtio/guestmem.ts): translation of windowed
// regions, misses, pieces cut at a slot's end, and the hostile cases (addresses straddling
// chunks and regions, lengths that overflow). Chunks are 4 KiB here (MT_SHIFT set to 12) so a
// region of a few chunks is small; "mapping" a chunk is what the host does: its chunk table
// entry gets the address of a slot holding the chunk and the region's next one. Slots are
// copies of the guest's bytes between 0xEE guards, so a translation that ran past its slot
// would read guard bytes.
import { E_OK, E_INVAL } from '../../assembly/abi';
import {
  MT_SIZE, MT_SHIFT, MT_CLOCK, MT_MISS, MT_MISS_REGION, MT_MISS_CHUNK, MT_MISSES, MT_MISSED, MT_CE_SIZE,
  mt_init, mt_add, mt_add_window, mt_chunks, mt_gpa, mt_uva, mt_has, mt_peek, mt_piece, mt_uva_chunk,
} from '../../assembly/virtio/guestmem';

const C: u32 = 4096; // chunk
const GPA: u64 = 0x200000000;
const UVA: u64 = 0x7f0000000000;
const NCH: u32 = 5; // region of 5 chunks minus 100 bytes: the last chunk is partial
const SIZE: u64 = <u64>(NCH * C - 100);
const GUARD: u32 = 4096;

class G { mt: usize = 0; tab: usize = 0; mem: usize = 0; }

function gbyte(j: u32): u8 { return <u8>((j * 11 + (j >> 7)) & 0x7f); }

function world(): G {
  const g = new G();
  g.mt = heap.alloc(MT_SIZE);
  mt_init(g.mt);
  store<u32>(g.mt, 12, MT_SHIFT);
  g.mem = heap.alloc(NCH * C);
  for (let j: u32 = 0; j < NCH * C; j++) store<u8>(g.mem + j, gbyte(j));
  g.tab = heap.alloc(NCH * MT_CE_SIZE + 8) + 7 & ~7;
  memory.fill(g.tab, 0, NCH * MT_CE_SIZE);
  assert(mt_add_window(g.mt, GPA, SIZE, UVA, <u32>g.tab) == E_OK, 'windowed region');
  return g;
}

/** Map chunk c: a slot (between guards) with the chunk and the next one, as far as the region goes. */
function map(g: G, c: u32): usize {
  const slot = heap.alloc(2 * C + 2 * GUARD) + GUARD;
  memory.fill(slot - GUARD, 0xee, 2 * C + 2 * GUARD);
  const len = <u32>min<u64>(<u64>(2 * C), SIZE - <u64>(c * C));
  memory.copy(slot, g.mem + c * C, len);
  store<u32>(g.tab + c * MT_CE_SIZE, <u32>slot);
  return slot;
}

describe('windowed guest memory: the table', () => {
  it('refuses a windowed region with no table, a misaligned one, one past the memory, wrap-around and overlaps', () => {
    const g = world();
    const t = <u32>g.tab;
    const mt = heap.alloc(MT_SIZE);
    mt_init(mt);
    store<u32>(mt, 12, MT_SHIFT);
    expect(mt_add_window(mt, GPA, SIZE, UVA, 0)).toBe(E_INVAL, 'no table');
    expect(mt_add_window(mt, GPA, SIZE, UVA, t + 4)).toBe(E_INVAL, 'misaligned table');
    expect(mt_add_window(mt, GPA, 0, UVA, t)).toBe(E_INVAL, 'zero size');
    expect(mt_add_window(mt, 0xfffffffffffff000, 0x2000, UVA, t)).toBe(E_INVAL, 'gpa wraps');
    expect(mt_add_window(mt, GPA, 0x1000, 0xffffffffffffff00, t)).toBe(E_INVAL, 'uva wraps');
    const top = <u32>(memory.size() << 16);
    expect(mt_add_window(mt, GPA, 0x10000000, UVA, (top - 0x1000) & ~7)).toBe(E_INVAL, 'chunk table past the memory');
    expect(mt_add_window(mt, GPA, <u64>1 << 46, UVA, t)).toBe(E_INVAL, 'more than 2^24 chunks');
    expect(mt_add_window(mt, GPA, SIZE, UVA, t)).toBe(E_OK);
    expect(mt_add_window(mt, GPA + SIZE - 1, 0x1000, UVA + 0x100000, t)).toBe(E_INVAL, 'gpa overlaps');
    expect(mt_add(mt, 0x1000, 0x1000, UVA + 0x1000, <u32>g.mem)).toBe(E_INVAL, 'uva overlaps (a whole mapping)');
    expect(mt_add(mt, 0x1000, 0x1000, 0x1000, <u32>g.mem)).toBe(E_OK, 'a whole mapping beside it');
    expect(mt_chunks(mt, SIZE)).toBe(NCH);
  });
});

describe('windowed guest memory: translation', () => {
  it('misses on a chunk not mapped, noting region and chunk, and answers once it is', () => {
    const g = world();
    expect(mt_gpa(g.mt, GPA + <u64>(2 * C + 5), 10)).toBe(MT_MISSED);
    expect(load<u32>(g.mt, MT_MISS)).toBe(1);
    expect(load<u32>(g.mt, MT_MISS_REGION)).toBe(0);
    expect(load<u32>(g.mt, MT_MISS_CHUNK)).toBe(2);
    expect(load<u64>(g.mt, MT_MISSES)).toBe(1);
    const s = map(g, 2);
    store<u32>(g.mt, 77, MT_CLOCK);
    expect(mt_gpa(g.mt, GPA + <u64>(2 * C + 5), 10)).toBe(s + 5);
    expect(mt_piece).toBe(10);
    expect(load<u32>(g.tab + 2 * MT_CE_SIZE, 4)).toBe(77, 'stamped with the clock (LRU)');
    expect(mt_uva(g.mt, UVA + <u64>(2 * C + 5), 10)).toBe(s + 5, 'user addresses translate the same way');
  });

  it('a buffer straddling two chunks is contiguous in the first chunk\'s slot', () => {
    const g = world();
    const s = map(g, 1);
    const a = mt_gpa(g.mt, GPA + <u64>(2 * C - 30), 60);
    expect(a).toBe(s + C - 30);
    expect(mt_piece).toBe(60);
    for (let j: u32 = 0; j < 60; j++) expect(load<u8>(a + j)).toBe(gbyte(2 * C - 30 + j));
  });

  it('a buffer running past its slot comes in pieces, never past the slot\'s end', () => {
    const g = world();
    const s = map(g, 0);
    const a = mt_gpa(g.mt, GPA + 100, <u64>(3 * C));
    expect(a).toBe(s + 100);
    expect(mt_piece).toBe(<u64>(2 * C - 100), 'cut at the end of chunk 1 (the slot holds chunks 0 and 1)');
    expect(mt_gpa(g.mt, GPA + <u64>(2 * C), <u64>(C + 100))).toBe(MT_MISSED, 'the rest is in chunk 2');
  });

  it('a region\'s partial last chunk: its slot holds only the region\'s bytes, and nothing past the region translates', () => {
    const g = world();
    const s = map(g, NCH - 1);
    const last = <u32>(SIZE - <u64>((NCH - 1) * C));
    expect(mt_gpa(g.mt, GPA + SIZE - 10, 10)).toBe(s + last - 10);
    expect(mt_piece).toBe(10);
    expect(mt_gpa(g.mt, GPA + SIZE - 10, 11)).toBe(0, 'one byte past the region');
    expect(mt_gpa(g.mt, GPA + SIZE, 1)).toBe(0, 'at the region\'s end');
    expect(load<u8>(s + last)).toBe(0xee, 'the slot past the region\'s bytes was never filled');
  });

  it('hostile: lengths that overflow, addresses below or straddling regions, never a miss for them', () => {
    const g = world();
    // a second windowed region right after the first: guest addresses contiguous, but a buffer
    // across the border is in neither region
    const tab2 = heap.alloc(NCH * MT_CE_SIZE + 8) + 7 & ~7;
    memory.fill(tab2, 0, NCH * MT_CE_SIZE);
    expect(mt_add_window(g.mt, GPA + SIZE, SIZE, UVA + 0x1000000, <u32>tab2)).toBe(E_OK);
    map(g, NCH - 1);
    const before = load<u64>(g.mt, MT_MISSES);
    expect(mt_gpa(g.mt, GPA + SIZE - 10, 20)).toBe(0, 'straddles two regions');
    expect(mt_gpa(g.mt, GPA, 0xffffffffffffffff)).toBe(0, 'length 2^64-1');
    expect(mt_gpa(g.mt, GPA + 1, 0xffffffffffffffff)).toBe(0, 'gpa + len wraps');
    expect(mt_gpa(g.mt, 0xffffffffffffffff, 2)).toBe(0, 'address at the top');
    expect(mt_gpa(g.mt, GPA - 1, 2)).toBe(0, 'starts below the region');
    expect(mt_gpa(g.mt, GPA + SIZE * 2, 1)).toBe(0, 'past both');
    expect(mt_has(g.mt, GPA + SIZE - 10, 20)).toBe(false, 'mt_has agrees');
    expect(mt_has(g.mt, GPA + SIZE - 10, 10)).toBe(true);
    expect(load<u64>(g.mt, MT_MISSES)).toBe(before, 'nothing outside a region ever asks the host to map');
    // a miss in the second region names it
    expect(mt_gpa(g.mt, GPA + SIZE + 5, 1)).toBe(MT_MISSED);
    expect(load<u32>(g.mt, MT_MISS_REGION)).toBe(1);
    expect(load<u32>(g.mt, MT_MISS_CHUNK)).toBe(0);
    expect(mt_has(g.mt, GPA + SIZE + 5, 1)).toBe(true, 'mt_has checks without mapping');
  });

  it('mt_uva_chunk names the region and chunk of a user address (the host pins ring chunks with it)', () => {
    const g = world();
    expect(mt_uva_chunk(g.mt, UVA + <u64>(3 * C + 1))).toBe(3);
    expect(mt_uva_chunk(g.mt, UVA - 1)).toBe(-1);
    expect(mt_uva_chunk(g.mt, UVA + SIZE)).toBe(-1);
  });

  it('mt_peek (touching ahead) gives the address of a mapped byte and changes nothing: no miss, no stamp, no piece', () => {
    const g = world();
    const slot = map(g, 2);
    store<u32>(g.mt, 77, MT_CLOCK);
    const misses = load<u64>(g.mt, MT_MISSES);
    const piece = mt_piece;
    expect(mt_peek(g.mt, GPA + <u64>(2 * C + 5))).toBe(slot + 5, 'a mapped chunk');
    expect(load<u8>(mt_peek(g.mt, GPA + <u64>(2 * C + 5)))).toBe(gbyte(2 * C + 5));
    expect(mt_peek(g.mt, GPA + <u64>(3 * C + 1))).toBe(0, 'a chunk not mapped (though slot 2 holds its bytes too)');
    expect(mt_peek(g.mt, GPA - 1)).toBe(0, 'below the region');
    expect(mt_peek(g.mt, GPA + SIZE)).toBe(0, 'past it');
    expect(mt_peek(g.mt, 0xffffffffffffffff)).toBe(0, 'the top');
    expect(load<u64>(g.mt, MT_MISSES)).toBe(misses, 'no miss recorded');
    expect(load<u32>(g.mt, MT_MISS)).toBe(0);
    expect(load<u32>(g.tab + 2 * MT_CE_SIZE, 4)).toBe(0, 'no LRU stamp');
    expect(mt_piece).toBe(piece);
    // a whole mapping: its address plus the offset
    const mt = heap.alloc(MT_SIZE);
    mt_init(mt);
    const mem = heap.alloc(8192);
    expect(mt_add(mt, GPA, 8192, UVA, <u32>mem)).toBe(E_OK);
    expect(mt_peek(mt, GPA + 8191)).toBe(mem + 8191);
    expect(mt_peek(mt, GPA + 8192)).toBe(0);
  });
});
