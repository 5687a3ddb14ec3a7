// The netmap contract, byte for byte (sys/net/netmap.h, LP64), plus the layouts of wasmap's
// own kernel-side records. This is the one place these numbers live: every other module,
// AssemblyScript or TypeScript (through the exported `abi_*` table), reads them from here.

// ---- struct netmap_slot: 16 bytes --------------------------------------------------------
export const SLOT_SIZE: u32 = 16;
export const SLOT_BUF_IDX: u32 = 0; // u32
export const SLOT_LEN: u32 = 4; // u16
export const SLOT_FLAGS: u32 = 6; // u16
export const SLOT_PTR: u32 = 8; // u64

export const NS_BUF_CHANGED: u16 = 0x0001;
export const NS_REPORT: u16 = 0x0002;
export const NS_FORWARD: u16 = 0x0004;
export const NS_NO_LEARN: u16 = 0x0008;
export const NS_INDIRECT: u16 = 0x0010;
export const NS_MOREFRAG: u16 = 0x0020;
export const NS_TXMON: u16 = 0x0040;
// High byte of a VALE tx slot's flags: 0 = use the lookup; 1..254 = port (value - 1); 255 = flood.
// On VALE rx slots the high byte carries the packet's fragment count (NS_RFRAGS).
export const NS_PORT_SHIFT: u32 = 8;
export const NS_PORT_MASK: u16 = 0xff00;
export const NETMAP_MAX_FRAGS: u32 = 64;

// ---- struct netmap_ring: 256-byte header, then slots ---------------------------------------
export const RING_BUF_OFS: u32 = 0; // i64: buffer pool offset, relative to this ring
export const RING_NUM_SLOTS: u32 = 8; // u32
export const RING_BUF_SIZE: u32 = 12; // u32
export const RING_RINGID: u32 = 16; // u16
export const RING_DIR: u32 = 18; // u16: 0 tx, 1 rx
export const RING_HEAD: u32 = 20; // u32
export const RING_CUR: u32 = 24; // u32
export const RING_TAIL: u32 = 28; // u32
export const RING_FLAGS: u32 = 32; // u32
export const RING_TS: u32 = 40; // struct timeval, 16 bytes
export const RING_OFFSET_MASK: u32 = 56; // u64
export const RING_BUF_ALIGN: u32 = 64; // u64
export const RING_SEM: u32 = 128; // 128 opaque bytes
export const RING_SLOTS: u32 = 256;
export const NR_TIMESTAMP: u32 = 0x2;
export const NR_FORWARD: u32 = 0x4;
export const DIR_TX: u32 = 0;
export const DIR_RX: u32 = 1;

// ---- struct netmap_if: 56-byte header, then ring_ofs[] (i64, relative to the if) ----------
export const IF_NAME: u32 = 0; // char[16]
export const IF_NAME_LEN: u32 = 16;
export const IF_VERSION: u32 = 16;
export const IF_FLAGS: u32 = 20;
export const IF_TX_RINGS: u32 = 24;
export const IF_RX_RINGS: u32 = 28;
export const IF_BUFS_HEAD: u32 = 32;
export const IF_HOST_TX_RINGS: u32 = 36;
export const IF_HOST_RX_RINGS: u32 = 40;
export const IF_RING_OFS: u32 = 56;
export const NI_PRIV_MEM: u32 = 0x1;

// ---- CSB (passthrough), one 64-byte entry per ring and direction --------------------------
export const CSB_ENTRY_SIZE: u32 = 64;
export const CSB_ATOK_HEAD: u32 = 0;
export const CSB_ATOK_CUR: u32 = 4;
export const CSB_ATOK_APPL_NEED_KICK: u32 = 8;
export const CSB_ATOK_SYNC_FLAGS: u32 = 12;
export const CSB_KTOA_HWCUR: u32 = 0;
export const CSB_KTOA_HWTAIL: u32 = 4;
export const CSB_KTOA_KERN_NEED_KICK: u32 = 8;

// ---- wasmap: the kernel-side mirror of a ring (netmap's kring), 128 bytes ----------------
// It lives in switch-private memory, never inside a port's region, so a port's user (who may
// own the region's pages from another process) can never rewrite it.
export const KRING_SIZE: u32 = 128;
export const KR_RING: u32 = 0; // u32: address of the netmap_ring
export const KR_NSLOTS: u32 = 4; // u32
export const KR_HWCUR: u32 = 8; // u32: head at the last sync
export const KR_HWTAIL: u32 = 12; // u32: first slot owned by the kernel side
export const KR_RHEAD: u32 = 16; // u32: validated copy of head
export const KR_RCUR: u32 = 20; // u32: validated copy of cur
export const KR_FLAGS: u32 = 24; // u32: KRF_*
export const KR_DIR: u32 = 28; // u32: DIR_TX / DIR_RX
export const KR_BUF_BASE: u32 = 32; // u32: address of buffer 0 of the region
export const KR_BUF_SIZE: u32 = 36; // u32
export const KR_NBUFS: u32 = 40; // u32: buffers in the region (valid indices are 2..nbufs-1)
export const KR_PEER: u32 = 44; // u32: pipe peer kring (tx -> rx), 0 if none
export const KR_ERR: u32 = 48; // i32: the error that broke the ring, 0 if healthy
export const KR_REGION: u32 = 52; // u32: the region descriptor this ring belongs to
export const KR_OWNER: u32 = 56; // u32: switch port index + 1, 0 if not on a switch
export const KR_PKTS: u32 = 64; // u64: packets through this ring
export const KR_BYTES: u32 = 72; // u64
export const KR_ERRORS: u32 = 80; // u64: sync calls rejected
export const KRF_BROKEN: u32 = 0x1;

// ---- wasmap: region descriptor (kernel side), 64 bytes ------------------------------------
export const RGN_DESC_SIZE: u32 = 64;
export const RGN_BASE: u32 = 0; // u32: address of the region span (page aligned)
export const RGN_SPAN: u32 = 4; // u32: bytes
export const RGN_IF: u32 = 8; // u32: address of the netmap_if
export const RGN_BUF_BASE: u32 = 12; // u32: address of buffer 0
export const RGN_BUF_SIZE: u32 = 16;
export const RGN_NBUFS: u32 = 20;
export const RGN_FREE: u32 = 24; // u32: address of the free-index stack (u32 per buffer)
export const RGN_FREE_COUNT: u32 = 28;
export const RGN_NTX: u32 = 32;
export const RGN_NRX: u32 = 36;
export const RGN_NSLOTS: u32 = 40;
export const RGN_KRINGS: u32 = 44; // u32: address of the kring array (tx rings, then rx rings)
export const RGN_BITMAP: u32 = 48; // u32: scratch bitmap, one bit per buffer (used by repair)

export const PAGE_SIZE: u32 = 65536; // wasm page; a multiple of every host page size we map
export const BUF_RESERVED: u32 = 2; // buffers 0 and 1 are never handed out
export const BUF_SIZE_DEFAULT: u32 = 2048;

// ---- errors returned by sync and setup calls (negative i32) -------------------------------
export const E_OK: i32 = 0;
export const E_HEAD: i32 = -1; // head outside [old head, tail]
export const E_CUR: i32 = -2; // cur outside [head, tail]
export const E_BUF_IDX: i32 = -3; // slot names a buffer out of range or reserved
export const E_BUF_LEN: i32 = -4; // slot len larger than the buffer
export const E_FRAGS: i32 = -5; // MOREFRAG chain longer than allowed
export const E_BROKEN: i32 = -6; // ring was broken by an earlier error; reset it
export const E_NOFIT: i32 = -7; // region does not fit the span given
export const E_INVAL: i32 = -8; // bad argument
export const E_XREGION: i32 = -9; // pipe ends must share one region
