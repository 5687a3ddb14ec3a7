// The forwarding-function ABI, version 1 (docs/forwarding-functions.md): the record area and
// accessors for one 128-byte record. Everything here is @inline, so a lookup loop compiles to
// plain loads and stores at constant offsets.

export const RECORD: usize = 128;
export const MAX_BATCH: i32 = 1024;
/** Where a record's copy of the frame's first header-length bytes starts. */
export const HDR: usize = 32;
export const MAX_HDR: i32 = 96;

export const FLOOD: i32 = 254;
export const DROP: i32 = 255;
export const REWRITE: u16 = 0x1;
/** netmap's NS_NO_LEARN slot flag: the sender asks the switch not to learn its source MAC. */
export const NS_NO_LEARN: i32 = 0x8;
export const ETH_IPV4: i32 = 0x0800;
export const ETH_ARP: i32 = 0x0806;
export const ETH_VLAN: i32 = 0x8100;

/** The record area: static, so its address is a constant and nothing is allocated. Aligned
 *  to 64 KiB so the switch can map its own records under it (no copying per batch). */
export const BATCH: usize = memory.data(1024 * 128, 65536);

@inline export function record(i: i32): usize { return BATCH + (<usize>i << 7); }
@inline export function srcPort(r: usize): i32 { return load<u8>(r, 0); }
@inline export function decide(r: usize, port: i32): void { store<u8>(r, port, 1); }
@inline export function frameLen(r: usize): i32 { return load<u16>(r, 2); }
@inline export function hdrLen(r: usize): i32 { return load<u16>(r, 4); }
@inline export function slotFlags(r: usize): i32 { return load<u16>(r, 8); }
/** The frame's header bytes (Ethernet header first). */
@inline export function hdr(r: usize): usize { return r + HDR; }
/** Say the header at hdr(r) was changed and is now `len` bytes long; it replaces the frame's
 *  first `replaced` bytes (0: all of the input header length, hdrLen before the change). */
@inline export function rewrite(r: usize, len: i32, replaced: i32 = 0): void {
  store<u16>(r, len, 4);
  store<u16>(r, replaced, 10);
  store<u16>(r, load<u16>(r, 6) | REWRITE, 6);
}

/** A batch of n records is acceptable: 0..1024. */
@inline export function badBatch(n: i32): bool { return <u32>n > <u32>MAX_BATCH; }

export function wasmap_fn_version(): i32 { return 1; }
export function wasmap_fn_batch(): i32 { return <i32>BATCH; }
