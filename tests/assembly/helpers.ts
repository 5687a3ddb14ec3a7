// Shared by the specs: a region in fresh memory, slot access, and a buffer audit.
import { SLOT_SIZE, RING_SLOTS, KR_RING, RGN_NBUFS, RGN_FREE, RGN_FREE_COUNT, RGN_NTX, RGN_NRX, RGN_NSLOTS, RGN_KRINGS, KRING_SIZE } from '../../assembly/abi';
import { region_span_size, region_priv_size, region_init } from '../../assembly/region';

export function new_region(ntx: u32, nrx: u32, nslots: u32, bsize: u32, extra: u32): usize {
  const span = region_span_size(ntx, nrx, nslots, bsize, extra);
  const base = (heap.alloc(span + 65536) + 65535) & ~65535;
  const desc = heap.alloc(region_priv_size(ntx, nrx, nslots, extra));
  const rc = region_init(desc, base, span, ntx, nrx, nslots, bsize, extra);
  assert(rc == 0, 'region_init failed');
  return desc;
}
export function kring_ring(k: usize): usize { return <usize>load<u32>(k, KR_RING); }
export function slot(k: usize, i: u32): usize { return kring_ring(k) + RING_SLOTS + <usize>SLOT_SIZE * <usize>i; }

/** 0 when every buffer 2..nbufs-1 is in exactly one slot or on the free stack. */
export function audit(desc: usize): i32 {
  const nbufs = load<u32>(desc, RGN_NBUFS);
  const seen = heap.alloc(nbufs);
  memory.fill(seen, 0, nbufs);
  const nr = load<u32>(desc, RGN_NTX) + load<u32>(desc, RGN_NRX);
  const ns = load<u32>(desc, RGN_NSLOTS);
  let bad: i32 = 0;
  for (let r: u32 = 0; r < nr; r++) {
    const k = <usize>load<u32>(desc, RGN_KRINGS) + <usize>KRING_SIZE * r;
    for (let s: u32 = 0; s < ns; s++) {
      const idx = load<u32>(slot(k, s));
      if (idx < 2 || idx >= nbufs || load<u8>(seen + idx) != 0) bad++;
      else store<u8>(seen + idx, 1);
    }
  }
  const free = <usize>load<u32>(desc, RGN_FREE);
  for (let i: u32 = 0; i < load<u32>(desc, RGN_FREE_COUNT); i++) {
    const idx = load<u32>(free + 4 * i);
    if (idx < 2 || idx >= nbufs || load<u8>(seen + idx) != 0) bad++;
    else store<u8>(seen + idx, 1);
  }
  for (let i: u32 = 2; i < nbufs; i++) if (load<u8>(seen + i) == 0) bad++;
  heap.free(seen);
  return bad;
}
