// The native reference for `wasmap bench`: the same learning switch as assembly/switch/, the
// same ring layout, generator and sink, written in C and built with cc -O2, so the benchmark
// can report wasm Mpps / native Mpps measured in one run. It mirrors the wasm code step for
// step (prologue, slot scan with recording, lookup, per-destination queues, room check,
// receiver buffer check, 16-byte-stride copy, counters); it is not meant to be smarter.
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PORTS 254
#define BATCH_MAX 1024
#define BCAST 254
#define DROP 255
#define BUCKETS 4096
#define MOREFRAG 0x20
#define BUF_SIZE 2048

struct slot { uint32_t buf_idx; uint16_t len, flags; uint64_t ptr; };
struct ring { uint32_t head, cur, tail, n; struct slot *slots; };          // user view
struct kring { struct ring *r; uint32_t hwcur, hwtail, rhead, broken, nbufs; uint8_t *base; };
struct port {
  struct kring tx, rx; uint32_t gen, qhead, qtail, rxok;
  uint64_t tx_pkts, tx_bytes, rx_pkts, rx_bytes, drop_full, drop_broken, drop_nodst, drop_lookup;
};
struct frag { uint8_t *addr; uint16_t len, flags; };
struct pk { uint32_t first, next, bytes; uint16_t nfrags, dst; };
struct ent { uint64_t mac; uint32_t port, ts; };

static struct port ports[MAX_PORTS];
static uint8_t active[MAX_PORTS];
static uint32_t nports, now = 1, age = 300, batch = BATCH_MAX;
static struct ent table[BUCKETS];
static struct frag frags[BATCH_MAX + 64];
static struct pk pkts[BATCH_MAX + 64];
static uint8_t dsts[256];
static uint64_t flood_extra;

static inline uint32_t dist(uint32_t a, uint32_t b, uint32_t n) { return b >= a ? b - a : b + n - a; }
static inline uint32_t next(uint32_t i, uint32_t n) { return i + 1 == n ? 0 : i + 1; }

static inline uint32_t mac_hash(uint64_t mac) {  // netmap's nm_vale_rthash
  uint32_t a = 0x9e3779b9u + (uint32_t)mac, b = 0x9e3779b9u + (uint32_t)(mac >> 32), c = 0;
  a -= b; a -= c; a ^= (c >> 13); b -= c; b -= a; b ^= (a << 8); c -= a; c -= b; c ^= (b >> 13);
  a -= b; a -= c; a ^= (c >> 12); b -= c; b -= a; b ^= (a << 16); c -= a; c -= b; c ^= (b >> 5);
  a -= b; a -= c; a ^= (c >> 3); b -= c; b -= a; b ^= (a << 10); c -= a; c -= b; c ^= (b >> 15);
  return c;
}

static int prologue(struct kring *k, int tx) {
  if (k->broken) return -6;
  struct ring *r = k->r;
  uint32_t n = r->n, head = r->head, cur = r->cur, from = tx ? k->rhead : k->hwcur, tail = k->hwtail;
  if (head >= n || dist(from, head, n) > dist(from, tail, n)) return k->broken = 1, -1;
  if (cur >= n || dist(head, cur, n) > dist(head, tail, n)) return k->broken = 1, -2;
  k->rhead = head;
  if (r->tail != tail) r->tail = tail;
  return 0;
}

static uint32_t scan_pkts;
static int tx_scan(struct kring *k, uint32_t from, uint32_t max) {
  uint32_t n = k->r->n, avail = dist(from, k->rhead, n), i = from, done = 0, nf = 0, np = 0;
  for (uint32_t c = 0; c < avail; c++) {
    struct slot *s = &k->r->slots[i];
    uint32_t idx = s->buf_idx; uint16_t len = s->len, fl = s->flags;
    if (idx < 2 || idx >= k->nbufs) return k->broken = 1, -3;
    if (len > BUF_SIZE) return k->broken = 1, -4;
    frags[c].addr = k->base + (size_t)idx * BUF_SIZE; frags[c].len = len; frags[c].flags = fl;
    nf++;
    if (fl & MOREFRAG) { if (nf >= 64 || nf >= n - 1) return k->broken = 1, -5; }
    else { if (c + 1 > max) break; done = c + 1; nf = 0; np++; }
    i = next(i, n);
  }
  scan_pkts = np;
  return (int)done;
}

// the same per-batch memo as assembly/switch/learn.ts: last source found learned, last
// destination resolved; any table write forgets both
#define NONE UINT64_MAX
static uint64_t last_smac = NONE, last_dmac = NONE;
static uint32_t last_dst;

static inline uint32_t resolve(uint32_t src, uint64_t dmac) {
  struct ent *e = &table[mac_hash(dmac) & (BUCKETS - 1)];
  if ((e->mac & 0xffffffffffffull) != dmac) return BCAST;
  uint32_t p = e->port;
  if (p >= MAX_PORTS || (e->mac >> 48) != (ports[p].gen & 0xffff) || !ports[p].tx.r) return BCAST;
  if (now - e->ts > age) return BCAST;
  return p == src ? DROP : p;
}

static inline uint32_t lookup(uint32_t src, const uint8_t *buf, uint16_t flags) {
  uint32_t explicit = flags >> 8;
  if (explicit) return explicit == 255 ? BCAST : explicit - 1;
  uint64_t dmac, smac;
  memcpy(&dmac, buf, 8); dmac &= 0xffffffffffffull;
  memcpy(&smac, buf + 4, 8); smac >>= 16;
  if (!(smac & 1) && !(flags & 0x8) && smac != last_smac) {
    struct ent *e = &table[mac_hash(smac) & (BUCKETS - 1)];
    uint64_t want = smac | ((uint64_t)(ports[src].gen & 0xffff) << 48);
    if (e->mac != want || e->port != src) { e->mac = want; e->port = src; last_dmac = NONE; }
    if (e->ts != now) e->ts = now;
    last_smac = smac;
  }
  if (dmac & 1) return BCAST;
  if (dmac == last_dmac) return last_dst;
  last_dst = resolve(src, dmac);
  last_dmac = dmac;
  return last_dst;
}

static inline void copy_frag(uint8_t *d, const uint8_t *s, uint32_t len) {
  if (len <= 64) memcpy(d, s, 64);
  else if (len <= 256) for (uint32_t o = 0; o < len; o += 16) memcpy(d + o, s + o, 16);
  else memcpy(d, s, len);
}

static void deliver(uint32_t d, int bcast, uint32_t bq) {
  struct port *p = &ports[d];
  struct kring *rx = &p->rx;
  uint32_t qa = p->qhead, qb = bcast ? bq : 0, n = rx->r->n, ok = p->rxok;
  uint32_t room = ok ? n - 1 - dist(rx->hwcur, rx->hwtail, n) : 0, j = rx->hwtail;
  uint64_t delivered = 0, bytes = 0, full = 0, broken = 0;
  while (qa || qb) {
    uint32_t k;
    if (!qb || (qa && qa < qb)) { k = qa - 1; qa = pkts[k].next; } else { k = qb - 1; qb = pkts[k].next; }
    uint32_t nf = pkts[k].nfrags;
    if (!ok) { broken++; continue; }
    if (nf > room) { full++; continue; }
    uint32_t jj = j; int bad = 0;
    for (uint32_t f = 0; f < nf; f++) { uint32_t di = rx->r->slots[jj].buf_idx; if (di < 2 || di >= rx->nbufs) { bad = 1; break; } jj = next(jj, n); }
    if (bad) { rx->broken = 1; p->rxok = 0; ok = 0; broken++; continue; }
    uint16_t rflags = (uint16_t)(nf << 8);
    for (uint32_t f = 0; f < nf; f++) {
      struct frag *fr = &frags[pkts[k].first + f];
      struct slot *s = &rx->r->slots[j];
      copy_frag(rx->base + (size_t)s->buf_idx * BUF_SIZE, fr->addr, fr->len);
      s->len = fr->len; s->flags = f + 1 < nf ? rflags | MOREFRAG : rflags;
      j = next(j, n);
    }
    room -= nf; delivered++; bytes += pkts[k].bytes;
  }
  rx->hwtail = j;
  p->rx_pkts += delivered; p->rx_bytes += bytes; p->drop_full += full; p->drop_broken += broken;
  p->qhead = p->qtail = 0;
}

static void forward_port(uint32_t src) {
  struct port *sp = &ports[src];
  struct kring *tx = &sp->tx;
  if (prologue(tx, 1) < 0) return;
  uint32_t n = tx->r->n;
  last_smac = last_dmac = NONE;
  for (;;) {
    uint32_t hwcur = tx->hwcur;
    int take = tx_scan(tx, hwcur, batch);
    if (take <= 0) break;
    uint32_t npk = scan_pkts, f = 0, ndst = 0, bq_head = 0, bq_tail = 0;
    uint64_t bytes = 0, nodst = 0, lookdrop = 0;
    for (uint32_t k = 0; k < npk; k++) {
      uint32_t first = f, plen = 0;
      for (;;) { uint16_t fl = frags[f].flags; plen += frags[f].len; f++; if (!(fl & MOREFRAG)) break; }
      pkts[k].first = first; pkts[k].nfrags = (uint16_t)(f - first); pkts[k].bytes = plen; pkts[k].next = 0;
      bytes += plen;
      uint32_t dst = frags[first].len < 14 ? DROP : lookup(src, frags[first].addr, frags[first].flags);
      if (dst < MAX_PORTS) {
        if (dst == src) { lookdrop++; continue; }
        struct port *dp = &ports[dst];
        if (!dp->tx.r) { nodst++; continue; }
        if (!dp->qtail) { dp->qhead = k + 1; dsts[ndst++] = (uint8_t)dst; } else pkts[dp->qtail - 1].next = k + 1;
        dp->qtail = k + 1;
      } else if (dst == BCAST) {
        if (nports < 2) { nodst++; continue; }
        if (!bq_tail) bq_head = k + 1; else pkts[bq_tail - 1].next = k + 1;
        bq_tail = k + 1;
        flood_extra += nports - 2;
      } else lookdrop++;
    }
    if (bq_head) { for (uint32_t a = 0; a < nports; a++) if (active[a] != src) deliver(active[a], 1, bq_head); }
    else for (uint32_t a = 0; a < ndst; a++) deliver(dsts[a], 0, 0);
    sp->tx_pkts += npk; sp->tx_bytes += bytes; sp->drop_nodst += nodst; sp->drop_lookup += lookdrop;
    uint32_t nx = hwcur + (uint32_t)take; if (nx >= n) nx -= n;
    tx->hwcur = nx; tx->hwtail = nx == 0 ? n - 1 : nx - 1;
    if ((uint32_t)take < batch) break;
  }
  tx->r->tail = tx->hwtail;
}

static void sw_round(void) {
  for (uint32_t a = 0; a < nports; a++) {
    struct port *p = &ports[active[a]];
    if (prologue(&p->rx, 0) < 0) p->rxok = 0; else { p->rx.hwcur = p->rx.rhead; p->rxok = 1; }
  }
  for (uint32_t a = 0; a < nports; a++) forward_port(active[a]);
  for (uint32_t a = 0; a < nports; a++) { struct port *p = &ports[active[a]]; if (p->rxok) p->rx.r->tail = p->rx.hwtail; }
}

// ---- generator and sink, as assembly/gen.ts ----
static uint8_t tmpl[2048] __attribute__((aligned(64)));
static uint32_t tlen;
static uint64_t gen_tx_pkts;

static uint32_t gen_tx(struct kring *k, uint32_t max) {
  struct ring *r = k->r;
  uint32_t n = r->n, head = r->head, tail = r->tail;
  if (head >= n || tail >= n) return 0;
  uint32_t cnt = dist(head, tail, n), i = head, done = 0;
  if (cnt > max) cnt = max;
  for (; done < cnt; done++) {
    struct slot *s = &r->slots[i];
    if (s->buf_idx < 2 || s->buf_idx >= k->nbufs) break;
    copy_frag(k->base + (size_t)s->buf_idx * BUF_SIZE, tmpl, tlen);
    s->len = (uint16_t)tlen; s->flags = 0;
    i = next(i, n);
  }
  r->head = r->cur = i;
  gen_tx_pkts += done;
  return done;
}

static uint64_t gen_rx(struct kring *k) {
  struct ring *r = k->r;
  uint32_t n = r->n, head = r->head, tail = r->tail;
  if (head >= n || tail >= n) return 0;
  uint32_t cnt = dist(head, tail, n), i = head; uint64_t p = 0, bytes = 0;
  for (uint32_t c = 0; c < cnt; c++) { bytes += r->slots[i].len; if (!(r->slots[i].flags & MOREFRAG)) p++; i = next(i, n); }
  r->head = r->cur = tail;
  (void)bytes;
  return p;
}

static uint16_t csum(const uint8_t *p, uint32_t len, uint32_t sum) {
  for (uint32_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)p[i] << 8 | p[i + 1];
  if (len & 1) sum += (uint32_t)p[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

static void build_frame(uint32_t len, int me, int peer) {
  memset(tmpl, 0, sizeof tmpl);
  uint8_t d[6] = {2, 0, 0, 0, 0, (uint8_t)(peer + 1)}, s[6] = {2, 0, 0, 0, 0, (uint8_t)(me + 1)};
  memcpy(tmpl, d, 6); memcpy(tmpl + 6, s, 6); tmpl[12] = 8; tmpl[13] = 0;
  uint8_t *ip = tmpl + 14, *udp = ip + 20;
  ip[0] = 0x45; ip[1] = 0x10; ip[2] = (uint8_t)((len - 14) >> 8); ip[3] = (uint8_t)(len - 14);
  ip[6] = 0x40; ip[8] = 64; ip[9] = 17;
  ip[12] = 10; ip[15] = 1; ip[16] = 10; ip[17] = 1; ip[19] = 1;
  uint16_t ic = (uint16_t)~csum(ip, 20, 0); ip[10] = (uint8_t)(ic >> 8); ip[11] = (uint8_t)ic;
  uint32_t ulen = len - 34;
  udp[0] = 0x04; udp[1] = 0xd2; udp[2] = 0x04; udp[3] = 0xd2; udp[4] = (uint8_t)(ulen >> 8); udp[5] = (uint8_t)ulen;
  const char *msg = "wasmap pkt-gen payload. ";
  for (uint32_t i = 0; i < ulen - 8; i++) udp[8 + i] = (uint8_t)msg[i % strlen(msg)];
  uint32_t ps = csum(ip + 12, 8, 17 + ulen);
  uint16_t uc = (uint16_t)~csum(udp, ulen, ps); if (!uc) uc = 0xffff;
  udp[6] = (uint8_t)(uc >> 8); udp[7] = (uint8_t)uc;
  tlen = len;
}

static void make_port(uint32_t i, uint32_t slots) {
  uint32_t nbufs = 2 + 2 * slots;
  uint8_t *base = aligned_alloc(64, (size_t)nbufs * BUF_SIZE);
  struct ring *t = calloc(1, sizeof *t), *r = calloc(1, sizeof *r);
  if (!base || !t || !r) { fprintf(stderr, "vale_ref: out of memory\n"); exit(1); }
  t->n = r->n = slots;
  t->slots = aligned_alloc(64, slots * sizeof(struct slot));
  r->slots = aligned_alloc(64, slots * sizeof(struct slot));
  for (uint32_t s = 0; s < slots; s++) { t->slots[s] = (struct slot){2 + s, 0, 0, 0}; r->slots[s] = (struct slot){2 + slots + s, 0, 0, 0}; }
  t->tail = slots - 1;
  struct port *p = &ports[i];
  memset(p, 0, sizeof *p);
  p->tx = (struct kring){t, 0, slots - 1, 0, 0, nbufs, base};
  p->rx = (struct kring){r, 0, 0, 0, 0, nbufs, base};
  p->gen = 1;
  active[nports++] = (uint8_t)i;
}

static double secs_now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec / 1e9; }

static const char *HELP =
  "vale_ref — the wasmap learning switch in C, for `wasmap bench`\n"
  "usage: vale_ref [--ports N(2..254)] [--len B(42..2048)] [--slots N(64..4096)] [--burst N(1..1024)]\n"
  "                [--batch N(1..1024)] [--seconds S | --rounds N]\n"
  "Port i sends to port i^1 (pairs); prints one JSON line with Mpps and the conservation counts.\n";

int main(int argc, char **argv) {
  long np = 2, len = 60, slots = 1024, burst = 512, bt = 1024, rounds = 0; double seconds = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(HELP, stdout); return 0; }
    if (i + 1 >= argc) { fprintf(stderr, "vale_ref: %s needs a value\n%s", a, HELP); return 1; }
    const char *v = argv[++i];
    if (!strcmp(a, "--ports")) np = atol(v); else if (!strcmp(a, "--len")) len = atol(v);
    else if (!strcmp(a, "--slots")) slots = atol(v); else if (!strcmp(a, "--burst")) burst = atol(v);
    else if (!strcmp(a, "--batch")) bt = atol(v); else if (!strcmp(a, "--seconds")) seconds = atof(v);
    else if (!strcmp(a, "--rounds")) rounds = atol(v);
    else { fprintf(stderr, "vale_ref: unknown option %s\n%s", a, HELP); return 1; }
  }
  if (np < 2 || np > 254 || np % 2 || len < 42 || len > 2048 || slots < 64 || slots > 4096 || burst < 1 || burst > 1024 || bt < 1 || bt > 1024 || seconds <= 0) {
    fprintf(stderr, "vale_ref: argument out of range (ports even 2..254, len 42..2048, slots 64..4096, burst and batch 1..1024, seconds > 0)\n");
    return 1;
  }
  batch = (uint32_t)bt;
  for (uint32_t i = 0; i < (uint32_t)np; i++) make_port(i, (uint32_t)slots);
  static uint8_t frames[MAX_PORTS][2048];
  for (uint32_t i = 0; i < (uint32_t)np; i++) { build_frame((uint32_t)len, (int)i, (int)(i ^ 1)); memcpy(frames[i], tmpl, 2048); }
  uint64_t received = 0;
  // every port has its own template; swap it in before its generator runs, as each wasm
  // generator reads its own template
  #define ROUND() do { \
    for (uint32_t g = 0; g < nports; g++) { memcpy(tmpl, frames[g], 64); gen_tx(&ports[g].tx, (uint32_t)burst); } \
    sw_round(); \
    for (uint32_t g = 0; g < nports; g++) received += gen_rx(&ports[g].rx); } while (0)
  for (int w = 0; w < 200; w++) ROUND();
  uint64_t rx0 = received;
  double t0 = secs_now(), t = t0;
  uint64_t done = 0;
  for (;;) {
    for (int r = 0; r < 64; r++) ROUND();
    done += 64;
    t = secs_now();
    if (rounds ? done >= (uint64_t)rounds : t - t0 >= seconds) break;
  }
  double el = t - t0;
  uint64_t got = received - rx0;
  for (int r = 0; r < 4; r++) { sw_round(); for (uint32_t g = 0; g < nports; g++) received += gen_rx(&ports[g].rx); }
  uint64_t sent = 0, rcv = 0, drops = 0;
  for (uint32_t g = 0; g < nports; g++) {
    struct port *p = &ports[g];
    sent += p->tx_pkts; rcv += p->rx_pkts; drops += p->drop_full + p->drop_broken + p->drop_nodst + p->drop_lookup;
  }
  if (sent + flood_extra != rcv + drops) {
    fprintf(stderr, "vale_ref: conservation violated: sent %llu + flood %llu != received %llu + drops %llu\n",
            (unsigned long long)sent, (unsigned long long)flood_extra, (unsigned long long)rcv, (unsigned long long)drops);
    return 1;
  }
  double mpps = got / el / 1e6;
  printf("{\"name\":\"native-%ldport-%ld\",\"ports\":%ld,\"frame\":%ld,\"batch\":%ld,\"burst\":%ld,\"seconds\":%.3f,"
         "\"sent\":%llu,\"received\":%llu,\"drops\":%llu,\"mpps\":%.3f,\"gbps\":%.3f}\n",
         np, len, np, len, bt, burst, el, (unsigned long long)sent, (unsigned long long)rcv, (unsigned long long)drops,
         mpps, mpps * (double)len * 8 / 1000);
  return 0;
}
