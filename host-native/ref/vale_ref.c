// vale_ref: the native reference for `wasmap bench` (scenario native-<ports>port-<len>).
//
// It is the wasm datapath's VALE switch, generator and sink ported to C11 line by line, so that
// bench can report ratio = wasm Mpps / native Mpps measured in one run. Fairness means the
// same work, not the best C: the same netmap layouts (netmap_if, 256-byte ring headers,
// 16-byte slots, one region and buffer pool per port), the same 128-byte krings and port
// records, the same switch block (ports, active list, 4096-bucket MAC table, batch scratch),
// and the same steps per round and per packet. Each function names the one it mirrors:
//   region_init          assembly/region.ts
//   sync_prologue, tx_scan, ring_break   assembly/ring.ts
//   mac_hash, lookup_ctx, learn_lookup   assembly/switch/learn.ts
//   copy_frag, deliver, forward_port, sw_round   assembly/switch/forward.ts
//   gen_init, gen_tx, gen_rx             assembly/gen.ts (without address ranges)
//   traffic_run                          assembly/loop.ts
// Where wasm stores a 32-bit linear-memory address, C stores a pointer, except in the 8-byte
// tx_scan records, which keep a 32-bit offset into the source pool: the same record size,
// and the same "base + offset" step wasm makes on every access.
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vale_ref reads MAC addresses as little-endian words, as wasm does"
#endif

// ---- the netmap contract and wasmap's records (assembly/abi.ts) -----------------------------
#define NS_MOREFRAG 0x0020u
#define NS_NO_LEARN 0x0008u
#define NS_PORT_SHIFT 8
#define NETMAP_MAX_FRAGS 64u
#define NI_PRIV_MEM 0x1u
#define DIR_TX 0u
#define DIR_RX 1u
#define KRF_BROKEN 0x1u
#define BUF_RESERVED 2u
#define BUF_SIZE 2048u

#define E_OK 0
#define E_HEAD (-1)
#define E_CUR (-2)
#define E_BUF_IDX (-3)
#define E_BUF_LEN (-4)
#define E_FRAGS (-5)
#define E_BROKEN (-6)
#define E_NOFIT (-7)
#define E_INVAL (-8)

#define SW_MAX_PORTS 254u
#define SW_BATCH_MAX 1024u
#define SW_DST_BCAST 254u
#define SW_DST_DROP 255u
#define SW_HDR_SIZE 128u
#define SW_TABLE_BUCKETS 4096u
#define FRAG_SLACK 64u

#define MAX_RINGS 64u
#define MAX_SLOTS 4096u
#define G_TEMPLATE_MAX 9216u
#define GF_VARY 0x1u
#define GF_NOFILL 0x2u

struct nm_slot { // struct netmap_slot, 16 bytes
  uint32_t buf_idx;
  uint16_t len, flags;
  uint64_t ptr;
};

struct nm_ring { // struct netmap_ring: a 256-byte header, then the slots
  int64_t buf_ofs; // buffer pool offset, relative to this ring
  uint32_t num_slots, nr_buf_size;
  uint16_t ringid, dir;
  uint32_t head, cur, tail, flags;
  uint32_t pad0;
  int64_t ts_sec, ts_usec;
  uint64_t offset_mask, buf_align;
  uint8_t pad1[56];
  uint8_t sem[128];
  struct nm_slot slot[];
};

struct nm_if { // struct netmap_if: a 56-byte header, then ring offsets relative to the if
  char name[16];
  uint32_t version, flags, tx_rings, rx_rings, bufs_head, host_tx_rings, host_rx_rings;
  uint32_t spare[3];
  int64_t ring_ofs[];
};

struct region;
struct kring { // the kernel-side mirror of a ring, 128 bytes, outside the shared span
  struct nm_ring *ring;
  uint8_t *buf_base; // buffer 0 of the region
  struct kring *peer;
  struct region *region;
  uint32_t nslots, hwcur, hwtail, rhead, rcur, flags, dir, buf_size, nbufs;
  int32_t err;
  uint32_t owner, pad0;
  uint64_t pkts, bytes, errors;
  uint8_t pad1[24];
};

struct region { // region descriptor (kernel side); its krings and free stack follow it
  uint8_t *base;
  struct nm_if *nifp;
  uint8_t *buf_base;
  uint32_t *free;
  struct kring *krings;
  uint32_t span, buf_size, nbufs, free_count, ntx, nrx, nslots, pad0;
};

struct port { // a switch port, 128 bytes
  struct kring *tx, *rx;
  uint32_t gen, qhead, qtail, rxok;
  int32_t last_err;
  uint32_t hdr_len;
  uint64_t tx_pkts, tx_bytes, rx_pkts, rx_bytes, drop_full, drop_broken, drop_nodst,
    drop_lookup, drop_size, tx_errors, drop_hdr;
};

struct mac_ent { uint64_t mac; uint32_t port, time; }; // mac | port generation << 48
struct rec { uint32_t off; uint16_t len, flags; };        // a tx_scan record, 8 bytes a slot
struct pk { uint32_t first; uint16_t nfrags, dst; uint32_t next, bytes; }; // 16 bytes a packet

struct sw { // the switch header; ports, active list, table and scratch follow in one block
  uint32_t nports, now, age, batch, table_mask, bcast_head;
  struct mac_ent *table;
  struct port *ports;
  struct rec *frags;
  struct pk *pkts;
  uint8_t *active, *dsts;
  uint64_t flood_extra, rounds, frames, learned;
};

struct gen { // pkt-gen state: a 256-byte header, then the frame template
  uint32_t len, flags;
  uint32_t src_ip[3], dst_ip[3], src_port[3], dst_port[3]; // first, last, current
  uint32_t udp_sum, ip_sum;
  uint64_t budget, tx_pkts, tx_bytes, rx_pkts, rx_bytes;
  uint16_t slot_flags;
  uint8_t pad[150];
  uint8_t template[G_TEMPLATE_MAX];
};

// The layouts must not drift from abi.ts: check them at compile time.
_Static_assert(sizeof(struct nm_slot) == 16, "slot");
_Static_assert(offsetof(struct nm_ring, head) == 20 && offsetof(struct nm_ring, cur) == 24 &&
               offsetof(struct nm_ring, tail) == 28 && offsetof(struct nm_ring, ts_sec) == 40 &&
               offsetof(struct nm_ring, offset_mask) == 56 && offsetof(struct nm_ring, sem) == 128 &&
               offsetof(struct nm_ring, slot) == 256, "netmap_ring");
_Static_assert(offsetof(struct nm_if, tx_rings) == 24 && offsetof(struct nm_if, ring_ofs) == 56, "netmap_if");
_Static_assert(sizeof(struct kring) == 128, "kring");
_Static_assert(sizeof(struct port) == 128, "port");
_Static_assert(sizeof(struct mac_ent) == 16 && sizeof(struct rec) == 8 && sizeof(struct pk) == 16, "records");
_Static_assert(sizeof(struct sw) <= SW_HDR_SIZE, "switch header");
_Static_assert(offsetof(struct gen, budget) == 64 && offsetof(struct gen, slot_flags) == 104 &&
               offsetof(struct gen, template) == 256, "gen");

static void *xalloc(size_t align, size_t bytes) {
  // aligned_alloc wants a size that is a multiple of the alignment
  void *p = aligned_alloc(align, (bytes + align - 1) / align * align);
  if (!p) { fprintf(stderr, "vale_ref: out of memory (%zu bytes)\n", bytes); exit(1); }
  return p;
}

// ---- region (assembly/region.ts) ------------------------------------------------------------
static inline uint32_t align_up(uint32_t x, uint32_t a) { return (x + a - 1) & ~(a - 1); }
static uint32_t region_nbufs(uint32_t ntx, uint32_t nrx, uint32_t nslots) { return BUF_RESERVED + (ntx + nrx) * nslots; }
static uint32_t ring_bytes(uint32_t nslots) { return align_up(256 + 16 * nslots, 64); }
static uint32_t if_bytes(uint32_t ntx, uint32_t nrx) { return align_up(56 + 8 * (ntx + nrx), 64); }
static uint32_t pool_offset(uint32_t ntx, uint32_t nrx, uint32_t nslots) {
  return align_up(if_bytes(ntx, nrx) + (ntx + nrx) * ring_bytes(nslots), 4096);
}

// [netmap_if][rings][buffer pool] in one span aligned like a wasm region (64 KiB); every slot
// gets its own buffer, tx rings start all free (tail n-1), rx rings empty (tail 0).
static struct region *region_new(uint32_t ntx, uint32_t nrx, uint32_t nslots, uint32_t buf_size) {
  uint32_t nbufs = region_nbufs(ntx, nrx, nslots);
  uint32_t pool = pool_offset(ntx, nrx, nslots);
  uint32_t span = align_up(pool + nbufs * buf_size, 65536);
  uint8_t *base = xalloc(65536, span);
  memset(base, 0, span); // wasm memory starts zeroed; this also faults the pages in up front
  size_t desc_size = (sizeof(struct region) + 63) / 64 * 64; // krings start 64-byte aligned
  size_t priv = desc_size + sizeof(struct kring) * (ntx + nrx) + 4 * (size_t)nbufs;
  struct region *d = xalloc(64, priv);
  memset(d, 0, priv);
  d->base = base;
  d->span = span;
  d->nifp = (struct nm_if *)base;
  d->buf_base = base + pool;
  d->buf_size = buf_size;
  d->nbufs = nbufs;
  d->krings = (struct kring *)((uint8_t *)d + desc_size);
  d->free = (uint32_t *)(d->krings + ntx + nrx);
  d->ntx = ntx;
  d->nrx = nrx;
  d->nslots = nslots;
  d->nifp->flags = NI_PRIV_MEM;
  d->nifp->tx_rings = ntx;
  d->nifp->rx_rings = nrx;
  uint8_t *rp = base + if_bytes(ntx, nrx);
  uint32_t next_buf = BUF_RESERVED;
  for (uint32_t i = 0; i < ntx + nrx; i++) {
    uint32_t dir = i < ntx ? DIR_TX : DIR_RX;
    struct nm_ring *ring = (struct nm_ring *)rp;
    d->nifp->ring_ofs[i] = rp - base;
    ring->buf_ofs = (int64_t)(d->buf_base - rp);
    ring->num_slots = nslots;
    ring->nr_buf_size = buf_size;
    ring->ringid = (uint16_t)(dir == DIR_TX ? i : i - ntx);
    ring->dir = (uint16_t)dir;
    ring->tail = dir == DIR_TX ? nslots - 1 : 0;
    for (uint32_t s = 0; s < nslots; s++) ring->slot[s].buf_idx = next_buf++;
    struct kring *k = &d->krings[i];
    k->ring = ring;
    k->nslots = nslots;
    k->hwtail = ring->tail;
    k->dir = dir;
    k->buf_base = d->buf_base;
    k->buf_size = buf_size;
    k->nbufs = nbufs;
    k->region = d;
    rp += ring_bytes(nslots);
  }
  return d;
}

// ---- rings (assembly/ring.ts, assembly/pipe.ts) -----------------------------------------------
static inline uint32_t ring_next(uint32_t i, uint32_t n) { return i + 1 == n ? 0 : i + 1; }
static inline uint32_t ring_prev(uint32_t i, uint32_t n) { return i == 0 ? n - 1 : i - 1; }
static inline uint32_t ring_dist(uint32_t a, uint32_t b, uint32_t n) { return b >= a ? b - a : b + n - a; }
static inline uint32_t ring_add(uint32_t i, uint32_t d, uint32_t n) { uint32_t j = i + d; return j >= n ? j - n : j; }
static inline bool ring_broken(const struct kring *k) { return (k->flags & KRF_BROKEN) != 0; }
static inline uint32_t rx_room(const struct kring *rx) {
  return rx->nslots - 1 - ring_dist(rx->hwcur, rx->hwtail, rx->nslots);
}

static int ring_break(struct kring *k, int err) {
  k->flags |= KRF_BROKEN;
  k->err = err;
  k->errors++;
  return err;
}

// nm_txsync_prologue / nm_rxsync_prologue: believe nothing the ring's user wrote until checked
static int sync_prologue(struct kring *k) {
  if (ring_broken(k)) return E_BROKEN;
  struct nm_ring *ring = k->ring;
  uint32_t n = k->nslots, head = ring->head, cur = ring->cur;
  uint32_t from = k->dir == DIR_TX ? k->rhead : k->hwcur;
  uint32_t tail = k->hwtail;
  if (head >= n || ring_dist(from, head, n) > ring_dist(from, tail, n)) return ring_break(k, E_HEAD);
  if (cur >= n || ring_dist(head, cur, n) > ring_dist(head, tail, n)) return ring_break(k, E_CUR);
  k->rhead = head;
  k->rcur = cur;
  if (ring->tail != tail) ring->tail = tail;
  return E_OK;
}

static inline void sync_finalize(struct kring *k) { k->ring->tail = k->hwtail; }

static uint32_t scan_pkts;

// Check every new tx slot (buffer index, length, fragment chains) and record what was checked,
// so the copy uses exactly those values even if the user rewrites the slot meanwhile.
static int tx_scan(struct kring *k, uint32_t from, uint32_t max_slots, struct rec *rec) {
  uint32_t n = k->nslots;
  uint32_t avail = ring_dist(from, k->rhead, n);
  uint32_t nbufs = k->nbufs, bsize = k->buf_size;
  const struct nm_slot *slots = k->ring->slot;
  uint32_t i = from, done = 0, frags = 0, pkts = 0;
  for (uint32_t c = 0; c < avail; c++) {
    const struct nm_slot *s = &slots[i];
    uint32_t idx = s->buf_idx;
    uint16_t len = s->len, flags = s->flags;
    if (idx < BUF_RESERVED || idx >= nbufs) return ring_break(k, E_BUF_IDX);
    if (len > bsize) return ring_break(k, E_BUF_LEN);
    if (rec) {
      struct rec *r = &rec[c];
      r->off = idx * bsize;
      r->len = len;
      r->flags = flags;
    }
    frags++;
    if (flags & NS_MOREFRAG) {
      if (frags >= NETMAP_MAX_FRAGS || frags >= n - 1) return ring_break(k, E_FRAGS);
    } else {
      if (c + 1 > max_slots) break; // never split a packet across batches
      done = c + 1;
      frags = 0;
      pkts++;
    }
    i = ring_next(i, n);
  }
  scan_pkts = pkts;
  return (int)done;
}

// ---- learning lookup (assembly/switch/learn.ts) ----------------------------------------------
#define MAC48 0xffffffffffffull
#define NONE UINT64_MAX // never a 48-bit MAC

// netmap's nm_vale_rthash: Bob Jenkins' mix over the six address bytes
static inline uint32_t mac_hash(uint64_t mac) {
  uint32_t a = 0x9e3779b9u + (uint32_t)mac;
  uint32_t b = 0x9e3779b9u + (uint32_t)(mac >> 32);
  uint32_t c = 0;
  a -= b; a -= c; a ^= (c >> 13);
  b -= c; b -= a; b ^= (a << 8);
  c -= a; c -= b; c ^= (b >> 13);
  a -= b; a -= c; a ^= (c >> 12);
  b -= c; b -= a; b ^= (a << 16);
  c -= a; c -= b; c ^= (b >> 5);
  a -= b; a -= c; a ^= (c >> 3);
  b -= c; b -= a; b ^= (a << 10);
  c -= a; c -= b; c ^= (b >> 15);
  return c;
}

// What the lookup needs, read once per forward_port call, and the per-batch memo (last source
// found learned, last destination resolved; any table write forgets both), as in learn.ts.
static struct mac_ent *c_table;
static uint32_t c_mask, c_now, c_age;
static struct port *c_ports;
static uint64_t c_src_gen;
static uint64_t c_last_smac = NONE, c_last_dmac = NONE;
static uint32_t c_last_dst;

static void lookup_ctx(struct sw *sw, uint32_t src) {
  c_table = sw->table;
  c_mask = sw->table_mask;
  c_now = sw->now;
  c_age = sw->age;
  c_ports = sw->ports;
  c_src_gen = c_ports[src].gen & 0xffff;
  c_last_smac = NONE;
  c_last_dmac = NONE;
}

static inline uint32_t resolve(uint32_t src, uint64_t dmac, struct mac_ent *table, uint32_t mask, uint32_t now) {
  const struct mac_ent *e = &table[mac_hash(dmac) & mask];
  uint64_t ent = e->mac;
  if ((ent & MAC48) != dmac) return SW_DST_BCAST;
  uint32_t p = e->port;
  if (p >= SW_MAX_PORTS) return SW_DST_BCAST;
  const struct port *pp = &c_ports[p];
  if ((ent >> 48) != (uint64_t)(pp->gen & 0xffff) || pp->tx == NULL) return SW_DST_BCAST;
  if (now - e->time > c_age) return SW_DST_BCAST;
  return p == src ? SW_DST_DROP : p;
}

static inline uint32_t learn_lookup(struct sw *sw, uint32_t src, const uint8_t *buf, uint16_t flags) {
  uint32_t explicit = (uint32_t)flags >> NS_PORT_SHIFT;
  if (explicit != 0) {
    if (explicit == 255) return SW_DST_BCAST;
    return explicit - 1; // the caller checks the port exists and is not the source
  }
  struct mac_ent *table = c_table;
  uint32_t mask = c_mask, now = c_now;
  uint64_t w;
  memcpy(&w, buf, 8); // unaligned little-endian loads, as wasm's load<u64>
  uint64_t dmac = w & MAC48;
  memcpy(&w, buf + 4, 8);
  uint64_t smac = w >> 16;
  // learn: unicast sources only; write the entry only when something changed
  if ((smac & 1) == 0 && (flags & NS_NO_LEARN) == 0 && smac != c_last_smac) {
    struct mac_ent *e = &table[mac_hash(smac) & mask];
    uint64_t want = smac | (c_src_gen << 48);
    if (e->mac != want || e->port != src) {
      e->mac = want;
      e->port = src;
      sw->learned++;
      c_last_dmac = NONE;
    }
    if (e->time != now) e->time = now;
    c_last_smac = smac;
  }
  if (dmac & 1) return SW_DST_BCAST; // broadcast and multicast
  if (dmac == c_last_dmac) return c_last_dst;
  uint32_t dst = resolve(src, dmac, table, mask, now);
  c_last_dmac = dmac;
  c_last_dst = dst;
  return dst;
}

// ---- forwarding (assembly/switch/forward.ts) ---------------------------------------------------
static struct sw *sw_new(void) {
  size_t size = SW_HDR_SIZE + sizeof(struct port) * SW_MAX_PORTS + 256 +
    sizeof(struct mac_ent) * SW_TABLE_BUCKETS + sizeof(struct rec) * (SW_BATCH_MAX + FRAG_SLACK) +
    sizeof(struct pk) * (SW_BATCH_MAX + FRAG_SLACK) + 256;
  uint8_t *p = xalloc(64, size);
  memset(p, 0, size);
  struct sw *sw = (struct sw *)p;
  p += SW_HDR_SIZE;
  sw->ports = (struct port *)p; p += sizeof(struct port) * SW_MAX_PORTS;
  sw->active = p; p += 256;
  sw->table = (struct mac_ent *)p; p += sizeof(struct mac_ent) * SW_TABLE_BUCKETS;
  sw->frags = (struct rec *)p; p += sizeof(struct rec) * (SW_BATCH_MAX + FRAG_SLACK);
  sw->pkts = (struct pk *)p; p += sizeof(struct pk) * (SW_BATCH_MAX + FRAG_SLACK);
  sw->dsts = p;
  sw->table_mask = SW_TABLE_BUCKETS - 1;
  sw->age = 300;
  sw->batch = SW_BATCH_MAX;
  return sw;
}

static int sw_attach(struct sw *sw, struct kring *tx, struct kring *rx) {
  if (!tx || !rx || tx->dir != DIR_TX || rx->dir != DIR_RX || tx->owner || rx->owner) return E_INVAL;
  uint32_t i = 0;
  while (i < SW_MAX_PORTS && sw->ports[i].tx) i++;
  if (i == SW_MAX_PORTS) return E_INVAL;
  struct port *p = &sw->ports[i];
  uint32_t gen = p->gen + 1;
  memset(p, 0, sizeof *p);
  p->tx = tx;
  p->rx = rx;
  p->gen = gen;
  tx->owner = rx->owner = i + 1;
  sw->active[sw->nports++] = (uint8_t)i;
  return (int)i;
}

// Short fragments move in 16-byte strides, rounded up (buffers are whole multiples of 64
// bytes, so the slack stays inside both buffers); long ones with one memcpy, as wasm's
// memory.copy. A 16-byte memcpy is one unaligned vector load and store, like v128.
static inline void copy_frag(uint8_t *dst, const uint8_t *src, uint32_t len) {
  if (len <= 64) {
    memcpy(dst, src, 16);
    memcpy(dst + 16, src + 16, 16);
    memcpy(dst + 32, src + 32, 16);
    memcpy(dst + 48, src + 48, 16);
  } else if (len <= 256) {
    for (uint32_t o = 0; o < len; o += 16) memcpy(dst + o, src + o, 16);
  } else {
    memcpy(dst, src, len);
  }
}

// Deliver the queued packets of the current batch to port d: its own queue merged, in batch
// order, with the broadcast queue when `bcast`.
static void deliver(struct sw *sw, uint32_t d, bool bcast, uint32_t src_bsize, uint32_t src_hdr,
                    const uint8_t *src_base) {
  struct port *p = &sw->ports[d];
  struct kring *rx = p->rx;
  const struct rec *frags = sw->frags;
  const struct pk *pkts = sw->pkts;
  uint32_t qa = p->qhead; // unicast queue, packet index + 1
  uint32_t qb = bcast ? sw->bcast_head : 0;
  bool ok = p->rxok != 0;
  bool hdr_ok = p->hdr_len == src_hdr;
  uint32_t n = rx->nslots, nbufs = rx->nbufs, bsize = rx->buf_size;
  uint8_t *base = rx->buf_base;
  struct nm_slot *slots = rx->ring->slot;
  bool check_size = src_bsize > bsize;
  uint32_t room = ok ? rx_room(rx) : 0;
  uint32_t j = rx->hwtail;
  uint64_t delivered = 0, bytes = 0, full = 0, broken = 0, oversize = 0, hdrdrop = 0;
  while (qa != 0 || qb != 0) {
    uint32_t k;
    if (qb == 0 || (qa != 0 && qa < qb)) { k = qa - 1; qa = pkts[k].next; }
    else { k = qb - 1; qb = pkts[k].next; }
    const struct pk *pk = &pkts[k];
    uint32_t nf = pk->nfrags;
    if (!ok) { broken++; continue; }
    if (!hdr_ok) { hdrdrop++; continue; }
    if (nf > room) { full++; continue; }
    const struct rec *first = &frags[pk->first];
    if (check_size) {
      bool big = false;
      for (uint32_t f = 0; f < nf; f++) if (first[f].len > bsize) big = true;
      if (big) { oversize++; continue; }
    }
    // the receiver owns the indices of its free slots too: check each before writing into it
    uint32_t jj = j, f = 0;
    uint16_t rflags = (uint16_t)(nf << 8);
    for (; f < nf; f++) {
      const struct rec *fr = &first[f];
      struct nm_slot *s = &slots[jj];
      uint32_t didx = s->buf_idx;
      if (didx < BUF_RESERVED || didx >= nbufs) break;
      uint16_t len = fr->len;
      copy_frag(base + (size_t)didx * bsize, src_base + fr->off, len);
      s->len = len;
      s->flags = f + 1 < nf ? (uint16_t)(rflags | NS_MOREFRAG) : rflags;
      jj = ring_next(jj, n);
    }
    if (f < nf) { // corrupted by its user: that ring is broken from here on (nothing published)
      ring_break(rx, E_BUF_IDX);
      p->last_err = E_BUF_IDX;
      p->rxok = 0;
      broken++;
      ok = false;
      continue;
    }
    j = jj;
    room -= nf;
    delivered++;
    bytes += pk->bytes;
  }
  rx->hwtail = j;
  p->rx_pkts += delivered;
  p->rx_bytes += bytes;
  if (full) p->drop_full += full;
  if (broken) p->drop_broken += broken;
  if (oversize) p->drop_size += oversize;
  if (hdrdrop) p->drop_hdr += hdrdrop;
  p->qhead = 0;
  p->qtail = 0;
}

// Forward what port `src` has pending, in batches of whole packets; returns frames taken.
static int forward_port(struct sw *sw, uint32_t src) {
  struct port *sp = &sw->ports[src];
  struct kring *tx = sp->tx;
  int err = sync_prologue(tx);
  if (err < 0) {
    if (err != E_BROKEN) { sp->last_err = err; sp->tx_errors++; }
    return err;
  }
  uint32_t n = tx->nslots;
  struct rec *frags = sw->frags;
  struct pk *pkts = sw->pkts;
  const uint8_t *active = sw->active;
  uint8_t *dsts = sw->dsts;
  uint32_t nports = sw->nports, batch = sw->batch, bsize = tx->buf_size;
  uint32_t hdr = sp->hdr_len; // frames start with a virtio-net header this long
  const uint8_t *sbase = tx->buf_base;
  int total = 0;
  lookup_ctx(sw, src);
  for (;;) {
    uint32_t hwcur = tx->hwcur;
    int take = tx_scan(tx, hwcur, batch, frags);
    if (take < 0) { sp->last_err = take; sp->tx_errors++; break; }
    if (take == 0) break;
    uint32_t npk = scan_pkts;
    // pass 1: split into packets, look each up, queue per destination (in batch order)
    uint32_t f = 0, bq_head = 0, bq_tail = 0, ndst = 0;
    uint64_t bytes = 0, nodst = 0, lookdrop = 0;
    for (uint32_t k = 0; k < npk; k++) {
      struct pk *pk = &pkts[k];
      uint32_t first = f, plen = 0;
      for (;;) {
        uint16_t fl = frags[f].flags;
        plen += frags[f].len;
        f++;
        if ((fl & NS_MOREFRAG) == 0) break;
      }
      pk->first = first;
      pk->nfrags = (uint16_t)(f - first);
      pk->bytes = plen;
      pk->next = 0;
      bytes += plen;
      const struct rec *fr = &frags[first];
      uint32_t dst;
      if (fr->len < 14 + hdr) dst = SW_DST_DROP;
      else dst = learn_lookup(sw, src, sbase + fr->off + hdr, fr->flags);
      if (dst < SW_MAX_PORTS) {
        if (dst == src) { lookdrop++; continue; }
        struct port *dp = &sw->ports[dst];
        if (dp->tx == NULL) { nodst++; continue; }
        uint32_t tail = dp->qtail;
        if (tail == 0) {
          dp->qhead = k + 1;
          dsts[ndst++] = (uint8_t)dst;
        } else pkts[tail - 1].next = k + 1;
        dp->qtail = k + 1;
      } else if (dst == SW_DST_BCAST) {
        if (nports < 2) { nodst++; continue; }
        if (bq_tail == 0) bq_head = k + 1; else pkts[bq_tail - 1].next = k + 1;
        bq_tail = k + 1;
        sw->flood_extra += nports - 2;
      } else lookdrop++;
    }
    sw->bcast_head = bq_head;
    // pass 2: deliver; with floods, to every other port; otherwise to the unicast destinations
    if (bq_head != 0) {
      for (uint32_t a = 0; a < nports; a++) {
        uint32_t d = active[a];
        if (d != src) deliver(sw, d, true, bsize, hdr, sbase);
      }
    } else {
      for (uint32_t a = 0; a < ndst; a++) deliver(sw, dsts[a], false, bsize, hdr, sbase);
    }
    sp->tx_pkts += npk;
    sp->tx_bytes += bytes;
    if (nodst) sp->drop_nodst += nodst;
    if (lookdrop) sp->drop_lookup += lookdrop;
    sw->frames += npk;
    // the switch is synchronous, like VALE: every taken slot is free again at once
    uint32_t next = ring_add(hwcur, (uint32_t)take, n);
    tx->hwcur = next;
    tx->hwtail = ring_prev(next, n);
    total += (int)npk;
    if ((uint32_t)take < batch) break;
  }
  sync_finalize(tx);
  return total;
}

// One forwarding round: rx prologues for everyone, forward each port, publish every rx tail.
static uint32_t sw_round(struct sw *sw, uint32_t now) {
  sw->now = now;
  const uint8_t *active = sw->active;
  uint32_t nports = sw->nports;
  for (uint32_t a = 0; a < nports; a++) {
    struct port *p = &sw->ports[active[a]];
    struct kring *rx = p->rx;
    int err = sync_prologue(rx);
    if (err < 0) { p->rxok = 0; p->last_err = err; }
    else { rx->hwcur = rx->rhead; p->rxok = 1; }
  }
  uint32_t total = 0;
  for (uint32_t a = 0; a < nports; a++) {
    int r = forward_port(sw, active[a]);
    if (r > 0) total += (uint32_t)r;
  }
  for (uint32_t a = 0; a < nports; a++) {
    struct port *p = &sw->ports[active[a]];
    if (p->rxok) sync_finalize(p->rx);
  }
  sw->rounds++;
  return total;
}

// ---- generator and sink (assembly/gen.ts, assembly/offload/csum.ts) ---------------------------
static uint64_t csum_add(const uint8_t *p, uint32_t len, uint64_t sum) {
  uint32_t i = 0;
  for (; i + 2 <= len; i += 2) sum += (uint64_t)p[i] << 8 | p[i + 1];
  if (i < len) sum += (uint64_t)p[i] << 8;
  return sum;
}
static uint32_t csum_fold(uint64_t sum) {
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffffffff) + (sum >> 32);
  uint32_t s = (uint32_t)sum;
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return s;
}
static void be16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void be32(uint8_t *p, uint32_t v) { be16(p, v >> 16); be16(p + 2, v); }

// The Ethernet/IPv4/UDP template of gen_init with one address and port each way (no ranges):
// the caller has put the MACs in the first 12 bytes. Same headers, payload and checksums.
static int gen_init(struct gen *g, uint32_t len, uint32_t sip, uint32_t dip, uint32_t sp, uint32_t dp) {
  if (len < 14 + 20 + 8 || len > G_TEMPLATE_MAX) return E_INVAL;
  uint8_t *t = g->template;
  g->len = len;
  for (int i = 0; i < 3; i++) { g->src_ip[i] = sip; g->dst_ip[i] = dip; g->src_port[i] = sp; g->dst_port[i] = dp; }
  g->flags &= GF_NOFILL; // one value per field: never GF_VARY
  be16(t + 12, 0x0800);
  uint8_t *ip = t + 14, *udp = ip + 20;
  ip[0] = 0x45; ip[1] = 0x10; be16(ip + 2, len - 14);
  be16(ip + 4, 0); be16(ip + 6, 0x4000); ip[8] = 64; ip[9] = 17; be16(ip + 10, 0);
  be32(ip + 12, 0); be32(ip + 16, 0);
  uint32_t ulen = len - 14 - 20;
  be16(udp, 0); be16(udp + 2, 0); be16(udp + 4, ulen); be16(udp + 6, 0);
  static const char msg[] = "wasmap pkt-gen payload. ";
  for (uint32_t i = 0; i < ulen - 8; i++) udp[8 + i] = (uint8_t)msg[i % (sizeof msg - 1)];
  g->ip_sum = csum_fold(csum_add(ip, 20, 0));
  g->udp_sum = csum_fold(csum_add(udp + 8, ulen - 8, 17 + (uint64_t)ulen + ulen));
  // patch: addresses, ports and the checksums that depend on them
  be32(ip + 12, sip); be32(ip + 16, dip);
  be16(udp, sp); be16(udp + 2, dp);
  uint64_t a = (uint64_t)(sip >> 16) + (sip & 0xffff) + (dip >> 16) + (dip & 0xffff);
  be16(ip + 10, ~csum_fold(g->ip_sum + a) & 0xffff);
  uint32_t u = ~csum_fold(g->udp_sum + a + sp + dp) & 0xffff;
  be16(udp + 6, u == 0 ? 0xffff : u);
  g->budget = UINT64_MAX;
  return E_OK;
}

// Fill up to `max` free tx slots (and the budget) with the template; advance head and cur.
static uint32_t gen_tx(struct gen *g, struct kring *k, uint32_t max) {
  struct nm_ring *ring = k->ring;
  uint32_t n = k->nslots, head = ring->head, tail = ring->tail;
  if (head >= n || tail >= n) return 0;
  uint32_t cnt = ring_dist(head, tail, n);
  if (cnt > max) cnt = max;
  uint64_t budget = g->budget;
  if (cnt > budget) cnt = (uint32_t)budget;
  uint32_t len = g->len, bsize = k->buf_size;
  if (len > bsize) return 0;
  uint8_t *base = k->buf_base;
  uint32_t nbufs = k->nbufs;
  struct nm_slot *slots = ring->slot;
  const uint8_t *t = g->template;
  bool fill = (g->flags & GF_NOFILL) == 0; // ranges are not ported, so nothing to patch per frame
  uint16_t sflags = g->slot_flags;
  uint32_t i = head, done = 0;
  for (; done < cnt; done++) {
    struct nm_slot *s = &slots[i];
    uint32_t idx = s->buf_idx;
    if (idx < BUF_RESERVED || idx >= nbufs) break; // never write outside this region
    if (fill) copy_frag(base + (size_t)idx * bsize, t, len);
    s->len = (uint16_t)len;
    s->flags = sflags;
    i = i + 1 == n ? 0 : i + 1;
  }
  ring->head = i;
  ring->cur = i;
  g->budget = budget - done;
  g->tx_pkts += done;
  g->tx_bytes += (uint64_t)done * len;
  return done;
}

// Consume everything in [head, tail) of an rx ring; returns frames (slots without MOREFRAG).
static uint32_t gen_rx(struct gen *g, struct kring *k) {
  struct nm_ring *ring = k->ring;
  uint32_t n = k->nslots, head = ring->head, tail = ring->tail;
  if (head >= n || tail >= n) return 0;
  uint32_t cnt = ring_dist(head, tail, n), i = head, pkts = 0;
  const struct nm_slot *slots = ring->slot;
  uint64_t bytes = 0;
  for (uint32_t c = 0; c < cnt; c++) {
    const struct nm_slot *s = &slots[i];
    bytes += s->len;
    if ((s->flags & NS_MOREFRAG) == 0) pkts++;
    i = i + 1 == n ? 0 : i + 1;
  }
  ring->head = tail;
  ring->cur = tail;
  g->rx_pkts += pkts;
  g->rx_bytes += bytes;
  return pkts;
}

// ---- the traffic loop (assembly/loop.ts) ------------------------------------------------------
struct plan_ent { struct gen *gen; struct kring *k; uint32_t burst, pad; };
struct plan { struct sw *sw; uint32_t ngen, nsink; struct plan_ent gens[SW_MAX_PORTS], sinks[SW_MAX_PORTS]; };

static uint64_t traffic_run(const struct plan *pl, uint32_t rounds, uint32_t now) {
  uint64_t got = 0;
  for (uint32_t r = 0; r < rounds; r++) {
    for (uint32_t i = 0; i < pl->ngen; i++) gen_tx(pl->gens[i].gen, pl->gens[i].k, pl->gens[i].burst);
    sw_round(pl->sw, now);
    for (uint32_t i = 0; i < pl->nsink; i++) got += gen_rx(pl->sinks[i].gen, pl->sinks[i].k);
  }
  return got;
}

// ---- command line -------------------------------------------------------------------------
static const char HELP[] =
  "vale_ref - wasmap's VALE learning switch in C: the native reference of `wasmap bench`\n"
  "\n"
  "usage: vale_ref [--ports N] [--len B] [--slots N] [--burst N] [--batch N] [--seconds S | --rounds N]\n"
  "\n"
  "  --ports N     switch ports, 2..254 (default 2); port i sends to port (i+1) mod N\n"
  "  --len B       frame length in bytes, Ethernet/IPv4/UDP, 42..2048 (default 60)\n"
  "  --slots N     slots per tx and rx ring, 2..4096 (default 1024)\n"
  "  --burst N     frames each generator writes per round, 1..4096 (default 512)\n"
  "  --batch N     switch batch, tx slots per forwarding batch, 1..1024 (default 1024)\n"
  "  --seconds S   measure for S seconds, > 0 and <= 3600 (default 2)\n"
  "  --rounds N    measure exactly N rounds instead, 1..1000000000\n"
  "\n"
  "Every port has its own region (one tx and one rx ring, 2048-byte buffers). Each round every\n"
  "generator fills its tx ring, the switch forwards, every sink drains its rx ring: the loop of\n"
  "the wasm traffic_run. After a warm-up (MACs learned, caches warm) the counters are zeroed\n"
  "and the rest is timed. Prints one JSON line:\n"
  "  {\"name\":\"native-<ports>port-<len>\",\"ports\",\"frame\",\"batch\",\"burst\",\"seconds\",\n"
  "   \"sent\",\"received\",\"drops\",\"mpps\",\"gbps\"}\n"
  "Exits 1 if sent + flood copies != received + drops, or on a bad argument.\n";

__attribute__((format(printf, 1, 2), noreturn))
static void usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("vale_ref: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\n(run vale_ref --help for the options)\n", stderr);
  exit(1);
}

static long parse_int(const char *opt, const char *v, long lo, long hi) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || end == v || *end || x < lo || x > hi) {
    usage_error("%s must be a whole number in %ld..%ld, not '%s'", opt, lo, hi, v);
  }
  return x;
}

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  long nports = 2, len = 60, slots = 1024, burst = 512, batch = 1024, rounds = 0;
  double seconds = 2;
  bool have_seconds = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(HELP, stdout); return 0; }
    if (strncmp(a, "--", 2) != 0) usage_error("unexpected argument '%s'", a);
    const char *eq = strchr(a, '=');
    char name[32];
    if (eq) { // --opt=value
      size_t nl = (size_t)(eq - a);
      if (nl >= sizeof name) usage_error("unknown option '%s'", a);
      memcpy(name, a, nl); name[nl] = 0;
      v = eq + 1;
    } else {
      if (strlen(a) >= sizeof name) usage_error("unknown option '%s'", a);
      strcpy(name, a);
      if (i + 1 >= argc) usage_error("%s needs a value", a);
      v = argv[++i];
    }
    if (!strcmp(name, "--ports")) nports = parse_int(name, v, 2, SW_MAX_PORTS);
    else if (!strcmp(name, "--len")) len = parse_int(name, v, 42, BUF_SIZE);
    else if (!strcmp(name, "--slots")) slots = parse_int(name, v, 2, MAX_SLOTS);
    else if (!strcmp(name, "--burst")) burst = parse_int(name, v, 1, 4096);
    else if (!strcmp(name, "--batch")) batch = parse_int(name, v, 1, SW_BATCH_MAX);
    else if (!strcmp(name, "--rounds")) rounds = parse_int(name, v, 1, 1000000000);
    else if (!strcmp(name, "--seconds")) {
      char *end;
      errno = 0;
      seconds = strtod(v, &end);
      if (errno || end == v || *end || !(seconds > 0 && seconds <= 3600))
        usage_error("--seconds must be a number of seconds, > 0 and <= 3600, not '%s'", v);
      have_seconds = true;
    } else usage_error("unknown option '%s'; options: --ports --len --slots --burst --batch --seconds --rounds --help", name);
  }
  if (have_seconds && rounds) usage_error("give --seconds or --rounds, not both");

  // the switch, its ports (one region each, as VALE ports), generators, sinks, the plan
  struct sw *sw = sw_new();
  sw->batch = (uint32_t)batch;
  struct plan *pl = xalloc(64, sizeof *pl);
  memset(pl, 0, sizeof *pl);
  pl->sw = sw;
  struct gen **gens = calloc((size_t)nports, sizeof *gens), **sinks = calloc((size_t)nports, sizeof *sinks);
  struct region **regions = calloc((size_t)nports, sizeof *regions);
  if (!gens || !sinks || !regions) { fprintf(stderr, "vale_ref: out of memory\n"); return 1; }
  for (long i = 0; i < nports; i++) {
    regions[i] = region_new(1, 1, (uint32_t)slots, BUF_SIZE);
    if (sw_attach(sw, &regions[i]->krings[0], &regions[i]->krings[1]) != (int)i) {
      fprintf(stderr, "vale_ref: attaching port %ld failed\n", i);
      return 1;
    }
  }
  for (long i = 0; i < nports; i++) {
    long peer = (i + 1) % nports;
    gens[i] = xalloc(64, sizeof(struct gen));
    sinks[i] = xalloc(64, sizeof(struct gen));
    memset(gens[i], 0, sizeof(struct gen));
    memset(sinks[i], 0, sizeof(struct gen));
    uint8_t *t = gens[i]->template; // dst 02:00:00:00:00:<peer+1>, src 02:00:00:00:00:<i+1>
    t[0] = 2; t[5] = (uint8_t)(peer + 1);
    t[6] = 2; t[11] = (uint8_t)(i + 1);
    // the wasm Generator's default addresses: 10.0.0.1:1234 -> 10.1.0.1:1234
    if (gen_init(gens[i], (uint32_t)len, 0x0a000001, 0x0a010001, 1234, 1234) != E_OK) {
      fprintf(stderr, "vale_ref: bad frame length %ld\n", len);
      return 1;
    }
    pl->gens[pl->ngen++] = (struct plan_ent){ gens[i], &regions[i]->krings[0], (uint32_t)burst, 0 };
    pl->sinks[pl->nsink++] = (struct plan_ent){ sinks[i], &regions[i]->krings[1], 0, 0 };
  }

  // Rounds between clock reads: ~256 for 2 ports x 512 frames (about 256K frames), fewer with
  // more ports or bigger bursts so a check still comes every few milliseconds.
  uint64_t per_round = (uint64_t)nports * (uint64_t)burst;
  uint32_t chunk = (uint32_t)(262144 / per_round);
  if (chunk < 1) chunk = 1;
  // Warm-up: the first frames flood and teach the table every MAC; the rest warms caches and
  // branch predictors. 1000 rounds, capped near 1M frames so 254 ports do not wait for ages.
  uint64_t warm = (1u << 20) / per_round;
  if (warm > 1000) warm = 1000;
  if (warm < 16) warm = 16;
  struct timespec ts0;
  clock_gettime(CLOCK_MONOTONIC, &ts0);
  uint32_t now = (uint32_t)ts0.tv_sec; // the aging clock, in seconds, as the host passes it
  traffic_run(pl, (uint32_t)warm, now);

  // zero every counter, so what follows counts the measured rounds only
  sw->flood_extra = sw->frames = sw->rounds = 0;
  for (long i = 0; i < nports; i++) {
    struct port *p = &sw->ports[i];
    p->tx_pkts = p->tx_bytes = p->rx_pkts = p->rx_bytes = 0;
    p->drop_full = p->drop_broken = p->drop_nodst = p->drop_lookup = p->drop_size = p->tx_errors = p->drop_hdr = 0;
    gens[i]->tx_pkts = gens[i]->tx_bytes = sinks[i]->rx_pkts = sinks[i]->rx_bytes = 0;
  }

  uint64_t got = 0, done = 0;
  double t0 = mono_now(), t = t0;
  for (;;) {
    uint32_t n = chunk;
    if (rounds && (uint64_t)rounds - done < n) n = (uint32_t)((uint64_t)rounds - done);
    got += traffic_run(pl, n, now);
    done += n;
    t = mono_now();
    now = (uint32_t)(uint64_t)t;
    if (rounds ? done >= (uint64_t)rounds : t - t0 >= seconds) break;
  }
  double el = t - t0;

  uint64_t sent = 0, received = 0, drops = 0, generated = 0;
  for (long i = 0; i < nports; i++) {
    const struct port *p = &sw->ports[i];
    sent += p->tx_pkts;
    received += p->rx_pkts;
    drops += p->drop_full + p->drop_broken + p->drop_nodst + p->drop_lookup + p->drop_size + p->drop_hdr;
    generated += gens[i]->tx_pkts;
  }
  if (sent + sw->flood_extra != received + drops) {
    fprintf(stderr, "vale_ref: conservation violated: sent %llu + flood copies %llu != received %llu + drops %llu\n",
            (unsigned long long)sent, (unsigned long long)sw->flood_extra, (unsigned long long)received,
            (unsigned long long)drops);
    return 1;
  }
  // every round takes all that was written and the sinks drain all that was delivered
  if (generated != sent || got != received) {
    fprintf(stderr, "vale_ref: counts disagree: generators wrote %llu, switch took %llu; switch delivered %llu, sinks read %llu\n",
            (unsigned long long)generated, (unsigned long long)sent, (unsigned long long)received,
            (unsigned long long)got);
    return 1;
  }
  if (received == 0) {
    fprintf(stderr, "vale_ref: no frame was delivered in %llu rounds\n", (unsigned long long)done);
    return 1;
  }
  double mpps = (double)received / el / 1e6;
  double gbps = (double)received * (double)len * 8 / el / 1e9;
  printf("{\"name\":\"native-%ldport-%ld\",\"ports\":%ld,\"frame\":%ld,\"batch\":%ld,\"burst\":%ld,"
         "\"seconds\":%.4f,\"sent\":%llu,\"received\":%llu,\"drops\":%llu,\"mpps\":%.3f,\"gbps\":%.3f}\n",
         nports, len, nports, len, batch, burst, el, (unsigned long long)sent, (unsigned long long)received,
         (unsigned long long)drops, mpps, gbps);
  return 0;
}
