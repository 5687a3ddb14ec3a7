// Kernel packet endpoints and batched I/O between them and netmap rings in the wasm memory.
// The host acts as the ring's *user*, exactly like a netmap application: it fills a tx ring
// from an fd (advancing head/cur) and drains an rx ring to an fd; the switch (wasm) plays the
// kernel's part. One call moves a whole batch, so JS crosses into C once per batch.
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <node_api.h>

#include "host.h"

// netmap_ring (the user-visible ABI, sys/net/netmap.h): the only layout this file knows
#define R_BUF_OFS 0
#define R_NUM_SLOTS 8
#define R_BUF_SIZE 12
#define R_HEAD 20
#define R_CUR 24
#define R_TAIL 28
#define R_SLOTS 256
#define NS_MOREFRAG 0x20
#define MAX_BATCH 256

struct nm_slot { uint32_t buf_idx; uint16_t len, flags; uint64_t ptr; };

struct ring_ref { uint8_t *mem; size_t memlen; uint8_t *ring; uint32_t n, bsize; int64_t buf_ofs; };

// A ring inside the view, checked: header, slots and buffer pool must lie within the memory.
static int ring_ref(napi_env env, napi_value view, int64_t off, struct ring_ref *r) {
  napi_typedarray_type type; size_t length, bo; void *data; napi_value ab;
  bool ta = false;
  if (napi_is_typedarray(env, view, &ta) != napi_ok || !ta ||
      napi_get_typedarray_info(env, view, &type, &length, &data, &ab, &bo) != napi_ok || type != napi_uint8_array) {
    host_throw(env, "EINVAL", "expected a Uint8Array over the WebAssembly memory");
    return -1;
  }
  if (off < 0 || (uint64_t)off + R_SLOTS > length) { host_throw(env, "EINVAL", "ring offset %lld outside memory", (long long)off); return -1; }
  r->mem = data; r->memlen = length; r->ring = (uint8_t *)data + off;
  memcpy(&r->n, r->ring + R_NUM_SLOTS, 4);
  memcpy(&r->bsize, r->ring + R_BUF_SIZE, 4);
  memcpy(&r->buf_ofs, r->ring + R_BUF_OFS, 8);
  if (r->n < 2 || r->n > 65536 || (uint64_t)off + R_SLOTS + 16ull * r->n > length || r->bsize == 0) {
    host_throw(env, "EINVAL", "ring at %lld is malformed (num_slots %u, buf_size %u)", (long long)off, r->n, r->bsize);
    return -1;
  }
  return 0;
}

// The buffer of a slot, or NULL if the slot points outside the memory (never trust it).
static uint8_t *slot_buf(struct ring_ref *r, struct nm_slot *s) {
  uint32_t idx = s->buf_idx; // read once: the check and the address use the same value
  int64_t at = (int64_t)(r->ring - r->mem) + r->buf_ofs + (int64_t)idx * r->bsize;
  if (idx < 2 || at < 0 || (uint64_t)at + r->bsize > r->memlen) return NULL;
  return r->mem + at;
}
static inline uint32_t rd32(uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline struct nm_slot *slot_at(struct ring_ref *r, uint32_t i) { return (struct nm_slot *)(r->ring + R_SLOTS + 16u * i); }

// Errors after which the fd is useless (the device is gone); anything else costs one frame.
static int fatal(int e) { return e == EBADF || e == EBADFD || e == ENODEV || e == ENXIO; }

static napi_value ret_i64(napi_env env, int64_t v) { napi_value out; napi_create_int64(env, v, &out); return out; }

// tapOpen(name, vnetHdrLen) -> { fd, name }: attach to the TAP NAME or create it.
static napi_value tap_open(napi_env env, napi_callback_info info) {
  napi_value argv[2]; size_t argc = 2; char name[IFNAMSIZ + 1] = {0}; size_t n; int32_t hdr = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n) != napi_ok || n == 0 || n >= IFNAMSIZ)
    return host_throw(env, "EINVAL", "tapOpen(name, vnetHdrLen): name is 1 to 15 characters");
  if (argc > 1) napi_get_value_int32(env, argv[1], &hdr);
  if (hdr != 0 && hdr != 10 && hdr != 12) return host_throw(env, "EINVAL", "virtio-net header length must be 0, 10 or 12, not %d", hdr);
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return host_throw(env, host_errno_name(errno), "open /dev/net/tun: %s%s", strerror(errno), errno == EACCES || errno == EPERM ? " (run as root or with CAP_NET_ADMIN)" : "");
  struct ifreq ifr; memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (hdr ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, n);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno; close(fd);
    return host_throw(env, host_errno_name(e), "TUNSETIFF %s: %s%s", name, strerror(e),
                      e == EPERM ? " (run as root or with CAP_NET_ADMIN)" : e == EBUSY ? " (another program holds this TAP)" : e == EINVAL ? " (the name is in use by a device that is not a TAP)" : "");
  }
  if (hdr) {
    int sz = hdr;
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) { int e = errno; close(fd); return host_throw(env, host_errno_name(e), "TUNSETVNETHDRSZ: %s", strerror(e)); }
    // the switch passes the header through: tell the kernel it may hand us checksum-partial and TSO frames
    unsigned off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    if (ioctl(fd, TUNSETOFFLOAD, off) < 0) { int e = errno; close(fd); return host_throw(env, host_errno_name(e), "TUNSETOFFLOAD: %s", strerror(e)); }
  }
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_int32(env, fd, &v); napi_set_named_property(env, out, "fd", v);
  napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &v); napi_set_named_property(env, out, "name", v);
  return out;
}

// packetOpen(ifname) -> fd: an AF_PACKET socket bound to an existing interface.
static napi_value packet_open(napi_env env, napi_callback_info info) {
  napi_value argv[1]; size_t argc = 1; char name[IFNAMSIZ + 1] = {0}; size_t n;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n) != napi_ok || n == 0 || n >= IFNAMSIZ)
    return host_throw(env, "EINVAL", "packetOpen(ifname): name is 1 to 15 characters");
  unsigned idx = if_nametoindex(name);
  if (!idx) return host_throw(env, "ENODEV", "no interface %s (create it first, e.g. a veth end)", name);
  // protocol 0: the socket takes no frame until bind() names the interface and ETH_P_ALL (a
  // socket made with ETH_P_ALL would queue frames of every interface meanwhile)
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return host_throw(env, host_errno_name(errno), "socket(AF_PACKET): %s%s", strerror(errno), errno == EPERM ? " (run as root or with CAP_NET_RAW)" : "");
  struct sockaddr_ll sll; memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET; sll.sll_protocol = htons(ETH_P_ALL); sll.sll_ifindex = (int)idx;
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) { int e = errno; close(fd); return host_throw(env, host_errno_name(e), "bind to %s: %s", name, strerror(e)); }
  int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one); // best effort: skips the qdisc on send
  int big = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  // frames we send must not come back to us as received ones
  struct packet_mreq mr; memset(&mr, 0, sizeof mr);
  mr.mr_ifindex = (int)idx; mr.mr_type = PACKET_MR_PROMISC;
  setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr);
  napi_value out; napi_create_int32(env, fd, &out);
  return out;
}

// A slot's len is a u16: a 65536-byte buffer carries at most 65535 bytes (a full one stored as
// 65536 would read back as 0 and the frame would be cut without a count).
#define SLOT_LEN_MAX 65535u
static inline uint32_t slot_cap(const struct ring_ref *r) { return r->bsize > SLOT_LEN_MAX ? SLOT_LEN_MAX : r->bsize; }

// fdToRing(view, ringOffset, fd, isSocket, max, dropped?) -> frames read into the tx ring (head
// advanced), or -errno for a dead fd. EAGAIN ends the batch. A frame longer than the slots it
// may take is dropped, never cut, and counted in dropped[0] (a Float64Array(1)) when given.
static napi_value fd_to_ring(napi_env env, napi_callback_info info) {
  napi_value argv[6]; size_t argc = 6; int64_t off; int32_t fd, max; bool sock;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5 || napi_get_value_int64(env, argv[1], &off) != napi_ok || napi_get_value_int32(env, argv[2], &fd) != napi_ok ||
      napi_get_value_bool(env, argv[3], &sock) != napi_ok || napi_get_value_int32(env, argv[4], &max) != napi_ok)
    return host_throw(env, "EINVAL", "fdToRing(view, ringOffset, fd, isSocket, max, dropped?: Float64Array(1))");
  double scratch_drop = 0, *dropped = &scratch_drop;
  if (argc > 5) {
    napi_valuetype t; napi_typeof(env, argv[5], &t);
    if (t != napi_undefined) {
      napi_typedarray_type dt; size_t dlen, dbo; void *dd; napi_value dab; bool dta = false;
      if (napi_is_typedarray(env, argv[5], &dta) != napi_ok || !dta ||
          napi_get_typedarray_info(env, argv[5], &dt, &dlen, &dd, &dab, &dbo) != napi_ok || dt != napi_float64_array || dlen < 1)
        return host_throw(env, "EINVAL", "fdToRing: dropped must be a Float64Array(1)");
      dropped = dd;
    }
  }
  struct ring_ref r;
  if (ring_ref(env, argv[0], off, &r)) return NULL;
  const uint32_t cap = slot_cap(&r);
  uint32_t head = rd32(r.ring + R_HEAD), tail = rd32(r.ring + R_TAIL);
  if (head >= r.n || tail >= r.n) return ret_i64(env, 0);
  uint32_t space = tail >= head ? tail - head : tail + r.n - head, want = space < (uint32_t)max ? space : (uint32_t)max, got = 0;
  if (sock) {
    struct mmsghdr msgs[MAX_BATCH]; struct iovec iov[MAX_BATCH];
    while (got < want) {
      uint32_t b = want - got < MAX_BATCH ? want - got : MAX_BATCH, i = head;
      for (uint32_t k = 0; k < b; k++) {
        uint8_t *buf = slot_buf(&r, slot_at(&r, i));
        if (!buf) { b = k; break; }
        iov[k].iov_base = buf; iov[k].iov_len = cap;
        memset(&msgs[k], 0, sizeof msgs[k]);
        msgs[k].msg_hdr.msg_iov = &iov[k]; msgs[k].msg_hdr.msg_iovlen = 1;
        i = i + 1 == r.n ? 0 : i + 1;
      }
      if (b == 0) break;
      int c = recvmmsg(fd, msgs, b, MSG_DONTWAIT, NULL);
      if (c < 0) { if (errno == EAGAIN || errno == EINTR || !fatal(errno)) break; if (!got) return ret_i64(env, -errno); break; }
      // datagrams longer than a slot were cut by the kernel (MSG_TRUNC): dropped and counted;
      // the whole ones move up into the slots the dropped ones took (buffer indices swapped)
      uint32_t w = head, kept = 0;
      for (int k = 0; k < c; k++) {
        uint32_t at = head + (uint32_t)k; if (at >= r.n) at -= r.n;
        if (msgs[k].msg_hdr.msg_flags & MSG_TRUNC) { (*dropped)++; continue; }
        struct nm_slot *s = slot_at(&r, w), *from = slot_at(&r, at);
        if (from != s) { uint32_t t = s->buf_idx; s->buf_idx = from->buf_idx; from->buf_idx = t; }
        s->len = (uint16_t)(msgs[k].msg_len > cap ? cap : msgs[k].msg_len); s->flags = 0;
        w = w + 1 == r.n ? 0 : w + 1;
        kept++;
      }
      head = w;
      got += kept;
      if ((uint32_t)c < b) break;
    }
  } else {
    // A TAP with offloads hands over frames up to 64 KiB (TSO): scatter each read over as
    // many free slots as the largest frame needs and chain them with MOREFRAG. Read only while
    // that many slots are free, so no frame is ever cut.
    // A frame longer than those slots lands in a scratch buffer past them: dropped and counted.
    uint32_t per = (65536 + 12 + cap - 1) / cap;
    if (per > 64) per = 64;
    static __thread uint8_t spill[65536 + 64];
    struct iovec iov[65];
    uint32_t reads = 0; // frames dropped count against the batch too: a flood of them cannot hold us here
    while (space >= per && reads++ < (uint32_t)max) {
      uint32_t i = head;
      for (uint32_t k = 0; k < per; k++) {
        uint8_t *buf = slot_buf(&r, slot_at(&r, i));
        if (!buf) goto out; // a slot of ours points outside the memory: stop
        iov[k].iov_base = buf; iov[k].iov_len = cap;
        i = i + 1 == r.n ? 0 : i + 1;
      }
      iov[per].iov_base = spill; iov[per].iov_len = sizeof spill;
      ssize_t c = readv(fd, iov, (int)per + 1);
      if (c < 0) { if (errno == EAGAIN || errno == EINTR || !fatal(errno)) break; if (!got) return ret_i64(env, -errno); break; }
      if (c == 0) break;
      if ((uint64_t)c > (uint64_t)per * cap) { (*dropped)++; continue; }
      uint32_t used = (uint32_t)((c + cap - 1) / cap);
      for (uint32_t k = 0; k < used; k++) {
        struct nm_slot *s = slot_at(&r, head);
        uint32_t len = k + 1 < used ? cap : (uint32_t)(c - (ssize_t)k * cap);
        s->len = (uint16_t)len; s->flags = k + 1 < used ? NS_MOREFRAG : 0;
        head = head + 1 == r.n ? 0 : head + 1;
      }
      space -= used;
      got++;
    }
  }
out:
  wr32(r.ring + R_HEAD, head); wr32(r.ring + R_CUR, head);
  return ret_i64(env, got);
}

// ringToFd(view, ringOffset, fd, isSocket, dropped: Float64Array(1), minLen?) -> frames taken from
// the rx ring's [head, tail) (head advanced past them), or -errno for a dead fd. A full fd ends
// the batch; a frame the kernel refuses (link down: EIO/ENETDOWN, too big) is dropped and
// counted in dropped[0]. With minLen, the batch also ends at the first frame shorter than that
// (AF_PACKET ports send their big frames this way and the rest through their tx ring).
static napi_value ring_to_fd(napi_env env, napi_callback_info info) {
  napi_value argv[6]; size_t argc = 6; int64_t off; int32_t fd; bool sock; int32_t min_len = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_typedarray_type dt; size_t dlen, dbo; void *dd; napi_value dab; bool dta = false;
  if (argc < 5 || napi_get_value_int64(env, argv[1], &off) != napi_ok || napi_get_value_int32(env, argv[2], &fd) != napi_ok ||
      napi_get_value_bool(env, argv[3], &sock) != napi_ok || napi_is_typedarray(env, argv[4], &dta) != napi_ok || !dta ||
      napi_get_typedarray_info(env, argv[4], &dt, &dlen, &dd, &dab, &dbo) != napi_ok || dt != napi_float64_array || dlen < 1)
    return host_throw(env, "EINVAL", "ringToFd(view, ringOffset, fd, isSocket, dropped: Float64Array(1))");
  double *dropped = dd;
  if (argc > 5) { napi_valuetype t; napi_typeof(env, argv[5], &t); if (t != napi_undefined && napi_get_value_int32(env, argv[5], &min_len) != napi_ok) return host_throw(env, "EINVAL", "ringToFd: minLen must be a number"); }
  struct ring_ref r;
  if (ring_ref(env, argv[0], off, &r)) return NULL;
  uint32_t head = rd32(r.ring + R_HEAD), tail = rd32(r.ring + R_TAIL), sent = 0;
  if (head >= r.n || tail >= r.n) return ret_i64(env, 0);
  struct iovec iov[64];
  while (head != tail) {
    // gather one frame (its MOREFRAG chain)
    uint32_t i = head, nf = 0; int complete = 0;
    while (i != tail && nf < 64) {
      struct nm_slot *s = slot_at(&r, i);
      uint8_t *buf = slot_buf(&r, s);
      uint16_t len = s->len, flags = s->flags; // each read once
      iov[nf].iov_base = buf; iov[nf].iov_len = buf && len <= r.bsize ? len : 0;
      nf++;
      i = i + 1 == r.n ? 0 : i + 1;
      if (!(flags & NS_MOREFRAG)) { complete = 1; break; }
    }
    if (!complete) break;
    if (min_len > 0) { size_t total = 0; for (uint32_t k = 0; k < nf; k++) total += iov[k].iov_len; if (total < (size_t)min_len) break; }
    ssize_t c;
    if (sock) { struct msghdr m; memset(&m, 0, sizeof m); m.msg_iov = iov; m.msg_iovlen = nf; c = sendmsg(fd, &m, MSG_DONTWAIT); }
    else c = writev(fd, iov, (int)nf);
    if (c < 0) {
      if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) break;
      if (fatal(errno)) { if (!sent) return ret_i64(env, -errno); break; }
      head = i; sent++; (*dropped)++;
      continue;
    }
    head = i; sent++;
  }
  wr32(r.ring + R_HEAD, head); wr32(r.ring + R_CUR, head);
  return ret_i64(env, sent);
}

// pollFds(fds[], timeoutMs) -> array of revents (POLLIN 1, POLLERR 8, POLLHUP 16, POLLNVAL 32)
static napi_value poll_fds(napi_env env, napi_callback_info info) {
  napi_value argv[2]; size_t argc = 2; uint32_t n; int32_t timeout;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool arr = false;
  if (argc < 2 || napi_is_array(env, argv[0], &arr) != napi_ok || !arr || napi_get_array_length(env, argv[0], &n) != napi_ok || n > 1024 ||
      napi_get_value_int32(env, argv[1], &timeout) != napi_ok)
    return host_throw(env, "EINVAL", "pollFds(fds[], timeoutMs): at most 1024 fds");
  struct pollfd p[1024];
  for (uint32_t i = 0; i < n; i++) {
    napi_value v; int32_t fd;
    napi_get_element(env, argv[0], i, &v);
    if (napi_get_value_int32(env, v, &fd) != napi_ok) return host_throw(env, "EINVAL", "fd %u is not a number", i);
    p[i].fd = fd; p[i].events = POLLIN; p[i].revents = 0;
  }
  int rc = poll(p, n, timeout);
  if (rc < 0 && errno != EINTR) return host_throw(env, host_errno_name(errno), "poll: %s", strerror(errno));
  napi_value out; napi_create_array_with_length(env, n, &out);
  for (uint32_t i = 0; i < n; i++) { napi_value v; napi_create_int32(env, p[i].revents, &v); napi_set_element(env, out, i, v); }
  return out;
}

// packetRingOpen(ifname, view, offset, rxFrames, txFrames, frameSize) -> { fd, rx, tx, rxFrames,
// txFrames, frameSize, bytes }: an AF_PACKET socket on IFNAME with the virtio-net header
// (PACKET_VNET_HDR: the kernel keeps TSO/GSO frames and partial checksums, so frames up to
// 64 KiB cross) and TPACKET_V2 rx and tx rings of frameSize-byte frames, mmapped MAP_FIXED over
// [offset, offset+bytes) of the wasm memory (rx ring first), so the datapath reads and writes
// the kernel's frames in place. Frames of up to 64 KiB sit in 64 KiB blocks; bigger ones (a
// multiple of the page size) as many as fit in 1 MiB to a block (a frame never spans blocks;
// 17-page frames: 15 to a 255-page block, allocated as 256), so frames is a multiple of the
// frames per block. With copy (7th argument, true), a frame larger than a ring frame is
// truncated there and marked TP_STATUS_COPY, and the whole frame is queued on the socket too
// (PACKET_COPY_THRESH; TPACKET_V1/V2 only), to be read with packetRecv.
static napi_value packet_ring_open(napi_env env, napi_callback_info info) {
  napi_value argv[7]; size_t argc = 7; bool copy = false; char name[IFNAMSIZ + 1] = {0}; size_t n; int64_t off; int32_t rxf, txf, fs;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n) != napi_ok || n == 0 || n >= IFNAMSIZ ||
      napi_get_value_int64(env, argv[2], &off) != napi_ok || napi_get_value_int32(env, argv[3], &rxf) != napi_ok ||
      napi_get_value_int32(env, argv[4], &txf) != napi_ok || napi_get_value_int32(env, argv[5], &fs) != napi_ok)
    return host_throw(env, "EINVAL", "packetRingOpen(ifname, view, offset, rxFrames, txFrames, frameSize)");
  if (argc > 6) { napi_valuetype t; napi_typeof(env, argv[6], &t); if (t != napi_undefined && napi_get_value_bool(env, argv[6], &copy) != napi_ok) return host_throw(env, "EINVAL", "packetRingOpen: copy must be a boolean"); }
  long page = sysconf(_SC_PAGESIZE);
  // frames must lie back to back in the mapping (the datapath finds frame i at i * frameSize):
  // a block holds a whole number of frames with nothing left over
  if (fs < 2048 || fs > (1 << 20) || (fs <= 65536 ? 65536 % fs : fs % page))
    return host_throw(env, "EINVAL", "frameSize must divide 64 KiB, or be a multiple of the page size up to 1 MiB, not %d", fs);
  const unsigned fsize = (unsigned)fs, per = fsize <= 65536 ? 65536 / fsize : (1u << 20) / fsize, bsize = per * fsize;
  if (rxf < (int32_t)per || rxf > 65536 || rxf % per || txf < (int32_t)per || txf > 65536 || txf % per)
    return host_throw(env, "EINVAL", "frames must be a multiple of %u between %u and 65536, not %d and %d", per, per, rxf, txf);
  napi_typedarray_type type; size_t length, bo; void *data; napi_value ab; bool ta = false;
  if (napi_is_typedarray(env, argv[1], &ta) != napi_ok || !ta ||
      napi_get_typedarray_info(env, argv[1], &type, &length, &data, &ab, &bo) != napi_ok || type != napi_uint8_array)
    return host_throw(env, "EINVAL", "packetRingOpen: expected a Uint8Array over the WebAssembly memory");
  const size_t rxbytes = (size_t)(rxf / per) * bsize, bytes = rxbytes + (size_t)(txf / per) * bsize;
  if (off < 0 || (uint64_t)off + bytes > length || ((uintptr_t)data + (uintptr_t)off) % (uintptr_t)page)
    return host_throw(env, "EINVAL", "span [%lld, +%zu) must be page-aligned and inside the %zu-byte memory", (long long)off, bytes, length);
  unsigned idx = if_nametoindex(name);
  if (!idx) return host_throw(env, "ENODEV", "no interface %s (create it first, e.g. a veth end)", name);
  // protocol 0 until bind(): frames of other interfaces must never reach the ring
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) return host_throw(env, host_errno_name(errno), "socket(AF_PACKET): %s%s", strerror(errno), errno == EPERM ? " (run as root or with CAP_NET_RAW)" : "");
  int v = TPACKET_V2, one = 1;
  struct tpacket_req rreq = { bsize, (unsigned)rxf / per, fsize, (unsigned)rxf }, treq = { bsize, (unsigned)txf / per, fsize, (unsigned)txf };
  const char *step = "PACKET_VERSION";
  if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0) goto fail;
  // the 10-byte header: tpacket_rcv writes only struct virtio_net_hdr (before the MAC header),
  // whatever PACKET_VNET_HDR_SZ says, so the datapath builds a 12-byte one itself
  step = "PACKET_VNET_HDR";
  if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) goto fail; // before the rings (EBUSY after)
  step = "PACKET_RX_RING";
  if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &rreq, sizeof rreq) < 0) goto fail;
  step = "PACKET_TX_RING";
  if (setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &treq, sizeof treq) < 0) goto fail;
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  // every tx frame in flight is charged to the send buffer (64 KiB each for TSO frames): past
  // it the kernel stops sending mid-ring. Root may pass net.core.wmem_max (best effort)
  int sndbuf = 32 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) < 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  if (copy) {
    // before bind (nothing is received yet, so the socket's queue holds exactly the COPY frames,
    // in ring order). The kernel copies only while the queue's memory is under the receive
    // buffer (else it truncates without COPY: counted as refused), so give it room for bursts
    step = "PACKET_COPY_THRESH";
    if (setsockopt(fd, SOL_PACKET, PACKET_COPY_THRESH, &one, sizeof one) < 0) goto fail;
    int rcvbuf = 32 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  step = "mmap";
  if (mmap((uint8_t *)data + off, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) goto fail;
  struct sockaddr_ll sll; memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET; sll.sll_protocol = htons(ETH_P_ALL); sll.sll_ifindex = (int)idx;
  step = "bind";
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
    int e = errno;
    mmap((uint8_t *)data + off, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    errno = e;
    goto fail;
  }
  struct packet_mreq mr; memset(&mr, 0, sizeof mr);
  mr.mr_ifindex = (int)idx; mr.mr_type = PACKET_MR_PROMISC;
  setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr);
  napi_value out, x;
  napi_create_object(env, &out);
  napi_create_int32(env, fd, &x); napi_set_named_property(env, out, "fd", x);
  napi_create_int64(env, off, &x); napi_set_named_property(env, out, "rx", x);
  napi_create_int64(env, off + (int64_t)rxbytes, &x); napi_set_named_property(env, out, "tx", x);
  napi_create_int32(env, rxf, &x); napi_set_named_property(env, out, "rxFrames", x);
  napi_create_int32(env, txf, &x); napi_set_named_property(env, out, "txFrames", x);
  napi_create_int32(env, (int32_t)fsize, &x); napi_set_named_property(env, out, "frameSize", x);
  napi_create_int64(env, (int64_t)bytes, &x); napi_set_named_property(env, out, "bytes", x);
  return out;
fail: {
    int e = errno; close(fd);
    return host_throw(env, host_errno_name(e), "AF_PACKET ring on %s: %s: %s", name, step, strerror(e));
  }
}

#ifndef PACKET_VNET_HDR_SZ
#define PACKET_VNET_HDR_SZ 24 // Linux 6.2: the header's length (10 or 12), for what we send
#endif
// packetTxOpen(ifname, vnetHdrLen) -> fd, or -errno when the kernel cannot take that header
// length (before Linux 6.2 only 10): a send-only AF_PACKET socket on IFNAME (protocol 0: it
// receives nothing) whose frames start with a virtio-net header of vnetHdrLen bytes (none for
// 0). An AF_PACKET port sends its big (TSO) frames through it with one sendmsg each, straight
// from the port's buffers: the kernel copies them once, where a tx ring costs our copy into the
// ring and, on a veth, the kernel's copy of the ring's pages (skb_copy_ubufs).
static napi_value packet_tx_open(napi_env env, napi_callback_info info) {
  napi_value argv[2]; size_t argc = 2; char name[IFNAMSIZ + 1] = {0}; size_t n; int32_t hdr = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n) != napi_ok || n == 0 || n >= IFNAMSIZ ||
      napi_get_value_int32(env, argv[1], &hdr) != napi_ok || (hdr != 0 && hdr != 10 && hdr != 12))
    return host_throw(env, "EINVAL", "packetTxOpen(ifname, vnetHdrLen 0|10|12)");
  unsigned idx = if_nametoindex(name);
  if (!idx) return host_throw(env, "ENODEV", "no interface %s", name);
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return host_throw(env, host_errno_name(errno), "socket(AF_PACKET): %s", strerror(errno));
  int one = 1, big = 32 << 20;
  if (hdr && setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR_SZ, &hdr, sizeof hdr) < 0 &&
      (hdr != 10 || setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0)) { int e = errno; close(fd); return ret_i64(env, -e); }
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) < 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  struct sockaddr_ll sll; memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET; sll.sll_protocol = 0; sll.sll_ifindex = (int)idx; // protocol 0: no receive hook
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) { int e = errno; close(fd); return host_throw(env, host_errno_name(e), "bind to %s: %s", name, strerror(e)); }
  return ret_i64(env, fd);
}

// packetKick(fd) -> 0, or -errno when the socket is dead: send what the tx ring holds.
static napi_value packet_kick(napi_env env, napi_callback_info info) {
  napi_value argv[1]; size_t argc = 1; int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return host_throw(env, "EINVAL", "packetKick(fd)");
  if (send(fd, NULL, 0, MSG_DONTWAIT) < 0 && fatal(errno)) return ret_i64(env, -errno);
  return ret_i64(env, 0);
}

// packetRecv(fd, view, lensOffset, bufOffset, size, count) -> frames received (0..count), or
// -errno when the socket is dead: up to count frames from the socket's queue (an AF_PACKET
// ring socket's TP_STATUS_COPY frames), one recv each, into the count size-byte buffers at
// bufOffset of the wasm memory. lens[i] (u32 at lensOffset) = recv's answer with MSG_TRUNC:
// the frame's whole length with its virtio-net header, more than size when it was cut; 0 when
// the kernel consumed the frame but refused it (EINVAL: a header it cannot express). Stops
// when the queue is empty.
static napi_value packet_recv(napi_env env, napi_callback_info info) {
  napi_value argv[6]; size_t argc = 6; int32_t fd, size, count; int64_t lo, bo;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_typedarray_type type; size_t length, byo; void *data; napi_value ab; bool ta = false;
  if (argc < 6 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_is_typedarray(env, argv[1], &ta) != napi_ok || !ta ||
      napi_get_typedarray_info(env, argv[1], &type, &length, &data, &ab, &byo) != napi_ok || type != napi_uint8_array ||
      napi_get_value_int64(env, argv[2], &lo) != napi_ok || napi_get_value_int64(env, argv[3], &bo) != napi_ok ||
      napi_get_value_int32(env, argv[4], &size) != napi_ok || napi_get_value_int32(env, argv[5], &count) != napi_ok)
    return host_throw(env, "EINVAL", "packetRecv(fd, view, lensOffset, bufOffset, size, count)");
  if (size <= 0 || count < 0 || count > 1024 || lo < 0 || bo < 0 || (uint64_t)lo + 4u * (uint64_t)count > length ||
      (uint64_t)bo + (uint64_t)size * (uint64_t)count > length)
    return host_throw(env, "EINVAL", "packetRecv: %d buffers of %d bytes at %lld (lengths at %lld) do not fit the %zu-byte memory", count, size, (long long)bo, (long long)lo, length);
  uint8_t *mem = data;
  int32_t got = 0;
  while (got < count) {
    ssize_t c = recv(fd, mem + bo + (size_t)got * (size_t)size, (size_t)size, MSG_DONTWAIT | MSG_TRUNC);
    if (c < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL) { wr32(mem + lo + 4u * (uint32_t)got, 0); got++; continue; } // consumed, refused
      if (errno == EAGAIN || errno == EWOULDBLOCK || !fatal(errno)) break; // ENETDOWN etc.: the kick finds out
      if (!got) return ret_i64(env, -errno);
      break;
    }
    wr32(mem + lo + 4u * (uint32_t)got, c > 0xffffffffLL ? 0xffffffffu : (uint32_t)c);
    got++;
  }
  return ret_i64(env, got);
}

// packetDrops(fd) -> frames the kernel dropped for this AF_PACKET socket since the last call
// (PACKET_STATISTICS tp_drops: the rx ring was full), or -errno. Reading resets the kernel's
// counters, so the caller accumulates.
static napi_value packet_drops(napi_env env, napi_callback_info info) {
  napi_value argv[1]; size_t argc = 1; int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return host_throw(env, "EINVAL", "packetDrops(fd)");
  struct tpacket_stats st; socklen_t len = sizeof st;
  if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0) return ret_i64(env, -errno);
  return ret_i64(env, (int64_t)st.tp_drops);
}

// eventfdCreate() -> fd; eventfdSignal(fd); eventfdDrain(fd): a wake-up another thread can
// give the forwarding loop while it sleeps in poll(2) (control requests, passthrough kicks).
static napi_value eventfd_create(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return host_throw(env, host_errno_name(errno), "eventfd: %s", strerror(errno));
  napi_value out; napi_create_int32(env, fd, &out);
  return out;
}
static napi_value eventfd_op(napi_env env, napi_callback_info info, int signal) {
  napi_value argv[1]; size_t argc = 1; int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return host_throw(env, "EINVAL", "expected an eventfd");
  uint64_t v = 1;
  ssize_t r = signal ? write(fd, &v, sizeof v) : read(fd, &v, sizeof v);
  if (r < 0 && errno != EAGAIN) return host_throw(env, host_errno_name(errno), "eventfd %s: %s", signal ? "write" : "read", strerror(errno));
  // drain answers how many signals it consumed (kick counters), 0 when there were none
  return ret_i64(env, signal ? 0 : r < 0 ? 0 : (int64_t)v);
}
static napi_value eventfd_signal(napi_env env, napi_callback_info info) { return eventfd_op(env, info, 1); }
static napi_value eventfd_drain(napi_env env, napi_callback_info info) { return eventfd_op(env, info, 0); }

void host_register_io(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"tapOpen", NULL, tap_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"packetOpen", NULL, packet_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fdToRing", NULL, fd_to_ring, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ringToFd", NULL, ring_to_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollFds", NULL, poll_fds, NULL, NULL, NULL, napi_enumerable, NULL},
      {"packetRingOpen", NULL, packet_ring_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"packetKick", NULL, packet_kick, NULL, NULL, NULL, napi_enumerable, NULL},
      {"packetTxOpen", NULL, packet_tx_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"packetDrops", NULL, packet_drops, NULL, NULL, NULL, napi_enumerable, NULL},
      {"packetRecv", NULL, packet_recv, NULL, NULL, NULL, napi_enumerable, NULL},
      {"eventfdCreate", NULL, eventfd_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"eventfdSignal", NULL, eventfd_signal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"eventfdDrain", NULL, eventfd_drain, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
