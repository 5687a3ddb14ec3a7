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
// wasmap's CSB page for one port (one tx and one rx ring): the four entries in this order.
// Beyond netmap: ktoa carries the ring's error (so a guest learns why its port broke) and a
// kick sequence word (worker-thread guests sleep on it with Atomics.wait).
export const CSB_KTOA_ERROR: u32 = 12; // i32: KR_ERR of the ring, 0 while healthy
export const CSB_KTOA_KICK_SEQ: u32 = 16; // i32: bumped by every kick of the switch
export const CSB_ATOK_TX: u32 = 0;
export const CSB_ATOK_RX: u32 = 64;
export const CSB_KTOA_TX: u32 = 128;
export const CSB_KTOA_RX: u32 = 192;
export const CSB_PAGE: u32 = 4096; // one host page: what is mapped into both sides

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
// u32: where the user's head/cur/tail live (at RING_HEAD/RING_CUR/RING_TAIL from it): the ring
// itself, or for a passthrough port a private shadow the CSB is copied into, so the sync
// checks see one consistent snapshot that the guest cannot change under them
export const KR_USER: u32 = 60;
export const KR_PKTS: u32 = 64; // u64: packets through this ring
export const KR_BYTES: u32 = 72; // u64
export const KR_ERRORS: u32 = 80; // u64: sync calls rejected
// u32: a private array (u32 per slot) of wasm addresses, 0 if none. A tx slot with NS_INDIRECT
// whose entry is not 0 holds its bytes there instead of in its buffer. Only a vhost-user port
// has one (vq_pull fills it with bounds-checked guest addresses and clears it when the chain
// completes, within the pass): a ring's user can set the flag, never the address.
export const KR_PTRS: u32 = 88;
export const KR_PTR_SIZE: u32 = 8; // a KR_PTRS entry: u32 wasm address (0: none), u32 for its user (vring.ts: the chain id)
// Direct receive (vhost-user, issue #17): on an rx kring, KR_PTRS entries describe guest RX
// buffers the switch wrote a frame into (slot flagged NS_INDIRECT: its bytes are there, not in
// its buffer; entry = address, chain id), filled and completed within one pass. While the
// guest's RX queue runs, KR_RXVQ is its virtqueue record and KR_RXMT its memory table (set and
// cleared by the host between passes; 0: every frame goes through the ring's buffers).
export const KR_RXVQ: u32 = 92;
export const KR_RXMT: u32 = 96;
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

// ---- wasmap: VALE switch state (switch-private memory) ------------------------------------
export const SW_MAX_PORTS: u32 = 254; // port indices 0..253, as in VALE
export const SW_BATCH_MAX: u32 = 1024; // slots per forwarding batch (netmap's bridge_batch)
export const SW_DST_BCAST: u32 = 254; // lookup result: flood to every other port
export const SW_DST_DROP: u32 = 255; // lookup result: drop
export const SW_HDR_SIZE: u32 = 192;
export const SW_NPORTS: u32 = 0; // u32: ports attached
export const SW_NOW: u32 = 4; // u32: seconds, set by the host each round (aging clock)
export const SW_AGE: u32 = 8; // u32: seconds a learned MAC stays valid (default 300)
export const SW_BATCH: u32 = 12; // u32: slots per batch (1..SW_BATCH_MAX)
export const SW_TABLE_MASK: u32 = 16; // u32: buckets - 1
export const SW_TABLE: u32 = 20; // u32: address of the MAC table
export const SW_PORTS: u32 = 24; // u32: address of the port array
export const SW_FRAGS: u32 = 28; // u32: batch scratch, 8 bytes a slot (tx_scan records)
export const SW_PKTS: u32 = 32; // u32: batch scratch, PK_SIZE a packet
export const SW_ACTIVE: u32 = 36; // u32: address of the active list (u8 port indices)
export const SW_BCAST_HEAD: u32 = 40; // u32: scratch, broadcast queue of the current batch
export const SW_DSTS: u32 = 44; // u32: scratch, distinct unicast destinations of a batch (u8 each)
export const SW_FLOOD_EXTRA: u32 = 48; // u64: copies made by flooding beyond the first
export const SW_ROUNDS: u32 = 56; // u64: forwarding rounds run
export const SW_FRAMES: u32 = 64; // u64: frames taken from tx rings, all ports
export const SW_LEARNED: u32 = 72; // u64: table writes (new or moved MACs)
export const SW_SEG_EXTRA: u32 = 80; // u64: frames made by segmentation beyond the first
export const SW_VN_IN: u32 = 88; // u32: scratch, a frame gathered for header conversion
export const SW_VN_OUT: u32 = 92; // u32: scratch, the converted frame(s)
export const SW_VN_LENS: u32 = 96; // u32: scratch, their lengths
export const SW_PT_PORTS: u32 = 100; // u32: passthrough ports attached (0: skip the CSB work)
export const SW_KICKS_DUE: u32 = 104; // u32: guests to kick after the last round (P_PT_KICK set)
// forwarding functions (switch/fn.ts): a user module decides instead of the learning lookup
export const SW_LOOKUP: u32 = 108; // u32: LK_* — who decides this switch's frames
export const SW_FN_REC: u32 = 112; // u32: the record area handed to the function (FN_REC_SIZE × FN_MAX_BATCH), 0 if none
export const SW_FN_FALLBACK: u32 = 116; // u32: LK_LEARN or LK_DROP: what takes over when the function faults
export const SW_FN_FAULT: u32 = 120; // i32: FNE_* of the fault that disabled the function (the host reads and clears it)
export const SW_FN_FAULT_AT: u32 = 124; // u32: the record whose decision was bad
export const SW_FN_FAULT_DROPS: u32 = 128; // u64: frames dropped because the function failed on their batch
export const SW_FN_FRAMES: u32 = 136; // u64: frames the function decided
export const SW_FN_CALLS: u32 = 144; // u64: batches handed to the function
export const SW_VN_IN_MAX: u32 = 69632; // the largest frame the conversion takes (64 KiB + headers)
export const SW_TABLE_BUCKETS: u32 = 4096;
export const LK_LEARN: u32 = 0; // the built-in learning lookup
export const LK_FN: u32 = 1; // the switch's forwarding function
export const LK_DROP: u32 = 2; // drop everything (a failed function's default fallback)
export const FN_REC_SIZE: u32 = 128; // one record per frame (docs/forwarding-functions.md)
export const FN_MAX_BATCH: u32 = 1024;
export const FN_HDR: u32 = 32; // header bytes start here in a record
export const FN_HDR_MAX: u32 = 96;
export const FN_REWRITE: u16 = 0x1;
export const FNE_TRAP: i32 = 1; // the function trapped (unreachable, out of bounds, fuel, stack...)
export const FNE_RC: i32 = 2; // it returned < 0
export const FNE_DECISION: i32 = 3; // a decision names no port it was told of (>= nports, < 254)
export const FNE_REWRITE: i32 = 4; // a REWRITE with a bad header length or a frame too short or long
export const FNE_FLAGS: i32 = 5; // flags other than REWRITE
export const MAC_ENTRY_SIZE: u32 = 16; // u64 (mac | port generation << 48), u32 port, u32 time
// The switch's private snapshot of each packet's first bytes (switch/snap.ts), taken once per
// batch from the sender's buffer (which a passthrough guest can rewrite at any time): the
// lookup or the function decides on it and every delivery writes those bytes from it.
export const SW_SNAP: u32 = 152; // u32: address of the snapshot area (SN_SIZE per packet of a batch)
export const SN_SIZE: u32 = 128; // a function's batch: per packet
export const SN_LEARN: u32 = 64; // the learning lookup's batch: per packet (its first 64 bytes: vnet header, MACs)
export const SN_BYTES: u32 = 112; // room for the frame's first bytes (vnet header + FN_HDR_MAX = 108 at most); 64-byte aligned
export const SN_DST: u32 = 112; // u32: the function's checked decision (SW_DST_DROP until checked)
export const SN_NH: u32 = 116; // u16: a checked REWRITE: the new header's length
export const SN_REP: u32 = 118; // u16: ... and how many of the frame's first bytes it replaces
// (how many bytes a snapshot holds follows from the frame: snap_len in switch/snap.ts)

export const PORT_SIZE: u32 = 192;
export const P_TX: u32 = 0; // u32: tx kring (0 = free port index)
export const P_RX: u32 = 4; // u32: rx kring
export const P_GEN: u32 = 8; // u32: bumped on attach and detach; learned entries carry it
export const P_QHEAD: u32 = 12; // u32: scratch, first packet queued to this port (PK index + 1)
export const P_QTAIL: u32 = 16;
export const P_RXOK: u32 = 20; // u32: scratch, rx ring validated this round
export const P_LAST_ERR: u32 = 24; // i32: last error from this port's rings
export const P_HDR_LEN: u32 = 28; // u32: virtio-net header in front of every frame (0, 10, 12)
export const P_ACCEPT: u32 = 120; // u32: offloads a port with a header accepts (ACCEPT_* in offload/vnet.ts)
export const P_TX_PKTS: u32 = 32; // u64: frames taken from this port's tx ring
export const P_TX_BYTES: u32 = 40;
export const P_RX_PKTS: u32 = 48; // u64: frames delivered into this port's rx ring
export const P_RX_BYTES: u32 = 56;
export const P_DROP_FULL: u32 = 64; // u64: to this port, its rx ring was full
export const P_DROP_BROKEN: u32 = 72; // u64: to this port, its rx ring is broken
export const P_DROP_NODST: u32 = 80; // u64: from this port, no destination (port absent / alone)
export const P_DROP_LOOKUP: u32 = 88; // u64: from this port, lookup said drop (runt, to itself)
export const P_DROP_SIZE: u32 = 96; // u64: to this port, a fragment larger than its buffers
export const P_TX_ERRORS: u32 = 104; // u64: tx syncs rejected (ring broken by its user)
export const P_DROP_HDR: u32 = 112; // u64: to this port, a virtio-net header that could not be converted for it (malformed, UFO, too big)
// passthrough (the port's rings are driven by a guest through a CSB)
export const P_CSB: u32 = 128; // u32: the port's CSB page, 0 for an ordinary port
export const P_PT_SHADOW: u32 = 132; // u32: 128 bytes: tx then rx user-field shadows (KR_USER)
export const P_KICKS_OUT: u32 = 136; // u64: kicks the switch sent the guest
export const P_PT_KICK: u32 = 144; // u32: 1 = the guest must be kicked after this round
export const P_PT_TXTAIL: u32 = 148; // u32: tx hwtail last published (a change may need a kick)
export const P_PT_RXTAIL: u32 = 152; // u32: rx hwtail last published

export const PK_SIZE: u32 = 16; // per packet of a batch
export const PK_FIRST: u32 = 0; // u32: index of its first fragment in the frag scratch
export const PK_NFRAGS: u32 = 4; // u16
export const PK_REWRITE: u32 = 6; // u16: 1 = the function rewrote its header (record k of the batch)
export const PK_NEXT: u32 = 8; // u32: next packet in the same destination queue (index + 1)
export const PK_BYTES: u32 = 12; // u32: bytes over all fragments

// ---- wasmap: packet generator (pkt-gen) state --------------------------------------------
export const GEN_SIZE: u32 = 256; // header; the frame template follows at GEN_TEMPLATE
export const G_LEN: u32 = 0; // u32: frame length
export const G_FLAGS: u32 = 4; // u32: GF_*
export const G_SRC_IP: u32 = 8; // u32 x3: first, last, current (host order)
export const G_DST_IP: u32 = 20;
export const G_SRC_PORT: u32 = 32; // u32 x3
export const G_DST_PORT: u32 = 44;
export const G_UDP_SUM: u32 = 56; // u32: partial ones' sum of the UDP parts that never change
export const G_IP_SUM: u32 = 60; // u32: partial sum of the IPv4 header without addresses
export const G_BUDGET: u32 = 64; // u64: frames it may still send (count and rate limits)
export const G_TX_PKTS: u32 = 72; // u64
export const G_TX_BYTES: u32 = 80; // u64
export const G_RX_PKTS: u32 = 88; // u64
export const G_RX_BYTES: u32 = 96; // u64
export const G_SLOT_FLAGS: u32 = 104; // u16: flags for every tx slot (e.g. NS_NO_LEARN, a port)
export const G_TEMPLATE: u32 = 256;
export const G_TEMPLATE_MAX: u32 = 9216;
export const GF_VARY: u32 = 0x1; // some address or port range has more than one value
export const GF_NOFILL: u32 = 0x2; // pkt-gen -r (rubbish): set lengths only, never write buffers

