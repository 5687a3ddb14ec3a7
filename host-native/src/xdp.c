// AF_XDP: an XSK socket whose UMEM is a page-aligned span of the wasm memory and whose four
// rings (fill, completion, rx, tx) are mmapped MAP_FIXED into spans of that memory, so the
// datapath (assembly/xsk.ts) moves descriptors itself; and the XDP program that redirects an
// interface's rx queues into the sockets.
//
// Why no libxdp/libbpf here: their XSK helpers mmap the rings wherever mmap puts them (we
// need them at our offsets), and libxdp's dispatcher pins state in bpffs that outlives a
// crashed process. What remains is three bpf(2) commands: an XSKMAP, a 6-instruction program
// (redirect to the map by rx queue, else XDP_PASS) and a *bpf_link* attaching it. The link is
// held by our fd: closing it (detach, or the process dying) removes the program, a vanished
// interface takes it along, and the kernel refuses the link (EBUSY/EEXIST) when another
// program is attached. So the addon links against nothing new and nothing is left behind.
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <node_api.h>

#include "host.h"

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif
// Linux 6.17+: frames one sendto() may send in copy mode (32 before; older kernels refuse the
// option and we keep 32 per call).
#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9
#endif

static int sys_bpf(int cmd, union bpf_attr *a) { return (int)syscall(__NR_bpf, cmd, a, sizeof *a); }

static napi_value ret_i64(napi_env env, int64_t v) { napi_value out; napi_create_int64(env, v, &out); return out; }
static void set_i64(napi_env env, napi_value o, const char *k, int64_t v) { napi_value x; napi_create_int64(env, v, &x); napi_set_named_property(env, o, k, x); }

static int get_view(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  napi_typedarray_type type; size_t bo; void *d; napi_value ab; bool ta = false;
  if (napi_is_typedarray(env, v, &ta) != napi_ok || !ta || napi_get_typedarray_info(env, v, &type, len, &d, &ab, &bo) != napi_ok || type != napi_uint8_array) {
    host_throw(env, "EINVAL", "expected a Uint8Array over the WebAssembly memory");
    return -1;
  }
  *data = d;
  return 0;
}

static int get_name(napi_env env, napi_value v, char name[IFNAMSIZ + 1]) {
  size_t n = 0;
  memset(name, 0, IFNAMSIZ + 1);
  if (napi_get_value_string_utf8(env, v, name, IFNAMSIZ + 1, &n) != napi_ok || n == 0 || n >= IFNAMSIZ) return -1;
  return 0;
}

// xdpAttach(ifname, mode, mapEntries) -> { link, prog, map, mode }: an XSKMAP and the redirect
// program, attached to IFNAME by a bpf_link. mode 0: native, else skb; 1: native only; 2: skb only.
static napi_value xdp_attach(napi_env env, napi_callback_info info) {
  napi_value argv[3]; size_t argc = 3; char name[IFNAMSIZ + 1]; int32_t mode, entries;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || get_name(env, argv[0], name) || napi_get_value_int32(env, argv[1], &mode) != napi_ok ||
      napi_get_value_int32(env, argv[2], &entries) != napi_ok || mode < 0 || mode > 2 || entries < 1 || entries > 1024)
    return host_throw(env, "EINVAL", "xdpAttach(ifname, mode 0|1|2, mapEntries 1..1024)");
  unsigned idx = if_nametoindex(name);
  if (!idx) return host_throw(env, "ENODEV", "no interface %s (create it first, e.g. a veth end)", name);
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_type = BPF_MAP_TYPE_XSKMAP; a.key_size = 4; a.value_size = 4; a.max_entries = (uint32_t)entries;
  snprintf(a.map_name, sizeof a.map_name, "wasmap_xsks");
  int map = sys_bpf(BPF_MAP_CREATE, &a);
  if (map < 0) {
    int e = errno;
    return host_throw(env, host_errno_name(e), "creating an XSKMAP: %s%s", strerror(e),
                      e == EPERM ? " (run as root or with CAP_BPF and CAP_NET_ADMIN)" : e == EINVAL ? " (kernel without XDP sockets: CONFIG_XDP_SOCKETS)" : "");
  }
  // r2 = ctx->rx_queue_index; r1 = &map; r3 = XDP_PASS; return bpf_redirect_map(r1, r2, r3)
  struct bpf_insn prog[] = {
      {.code = BPF_LDX | BPF_MEM | BPF_W, .dst_reg = 2, .src_reg = 1, .off = 16},
      {.code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = 1, .src_reg = BPF_PSEUDO_MAP_FD, .imm = map},
      {.code = 0},
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 3, .imm = XDP_PASS},
      {.code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect_map},
      {.code = BPF_JMP | BPF_EXIT},
  };
  static const char license[] = "Dual BSD/GPL";
  char log[1024] = {0};
  memset(&a, 0, sizeof a);
  a.prog_type = BPF_PROG_TYPE_XDP; a.expected_attach_type = BPF_XDP;
  a.insns = (uint64_t)(uintptr_t)prog; a.insn_cnt = sizeof prog / sizeof prog[0];
  a.license = (uint64_t)(uintptr_t)license;
  a.log_buf = (uint64_t)(uintptr_t)log; a.log_size = sizeof log; a.log_level = 1;
  snprintf(a.prog_name, sizeof a.prog_name, "wasmap_xsk");
  int pfd = sys_bpf(BPF_PROG_LOAD, &a);
  if (pfd < 0) {
    int e = errno; close(map);
    return host_throw(env, host_errno_name(e), "loading the XSK redirect program: %s%s %s", strerror(e), e == EPERM ? " (run as root or with CAP_BPF and CAP_NET_ADMIN)" : "", log);
  }
  int got = -1, link = -1, e = 0;
  for (int m = 1; m <= 2; m++) {
    if ((mode == 1 && m != 1) || (mode == 2 && m != 2)) continue;
    memset(&a, 0, sizeof a);
    a.link_create.prog_fd = (uint32_t)pfd; a.link_create.target_ifindex = idx; a.link_create.attach_type = BPF_XDP;
    a.link_create.flags = m == 1 ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
    link = sys_bpf(BPF_LINK_CREATE, &a);
    if (link >= 0) { got = m; break; }
    e = errno;
    if (e == EBUSY || e == EEXIST || e == EPERM) break; // the other mode would fail the same way
  }
  if (link < 0) {
    close(pfd); close(map);
    if (e == EBUSY || e == EEXIST)
      return host_throw(env, "EBUSY", "another XDP program is attached to %s (see 'ip link show dev %s'; remove it with 'ip link set dev %s xdp off' if it is not in use)", name, name, name);
    if (e == EPERM) return host_throw(env, "EPERM", "attaching XDP to %s: %s (run as root or with CAP_NET_ADMIN)", name, strerror(e));
    if (mode == 1 && (e == EOPNOTSUPP || e == EINVAL))
      return host_throw(env, host_errno_name(e), "native XDP on %s: %s (the driver has no native XDP, or the MTU is too large for it; try --xdp-mode skb)", name, strerror(e));
    if (e == ENODEV) return host_throw(env, "ENODEV", "no interface %s", name);
    return host_throw(env, host_errno_name(e), "attaching XDP to %s: %s", name, strerror(e));
  }
  napi_value out, x;
  napi_create_object(env, &out);
  set_i64(env, out, "link", link); set_i64(env, out, "prog", pfd); set_i64(env, out, "map", map);
  napi_create_string_utf8(env, got == 1 ? "native" : "skb", NAPI_AUTO_LENGTH, &x); napi_set_named_property(env, out, "mode", x);
  return out;
}

// One ring's span: the kernel's producer/consumer/flags/descriptors, at page offset `pgoff` of
// the socket, mmapped over [at, at+bytes) of the memory.
// The kernel maps exactly page_up(desc + n × dsize) bytes; the slot we give it may be larger.
static int map_ring(int fd, uint8_t *at, size_t bytes, struct xdp_ring_offset *o, uint32_t n, size_t dsize, off_t pgoff) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t want = ((size_t)o->desc + (size_t)n * dsize + page - 1) / page * page;
  if (want > bytes || o->producer + 4 > bytes || o->consumer + 4 > bytes || o->flags + 4 > bytes) { errno = EOVERFLOW; return -1; }
  return mmap(at, want, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd, pgoff) == MAP_FAILED ? -1 : 0;
}

static void ring_obj(napi_env env, napi_value out, const char *k, int64_t base, struct xdp_ring_offset *o) {
  napi_value r; napi_create_object(env, &r);
  set_i64(env, r, "producer", base + (int64_t)o->producer); set_i64(env, r, "consumer", base + (int64_t)o->consumer);
  set_i64(env, r, "flags", base + (int64_t)o->flags); set_i64(env, r, "desc", base + (int64_t)o->desc);
  napi_set_named_property(env, out, k, r);
}

static size_t page_up(size_t v, size_t page) { return (v + page - 1) / page * page; }

// xskOpen(ifname, queue, view, umemOff, umemBytes, frameSize, ringsOff, n, zeroCopy 0 auto|1 on|2 off)
// -> { fd, zeroCopy, fill, comp, rx, tx: { producer, consumer, flags, desc } (memory offsets), ringBytes }.
// The rings take [ringsOff, ringsOff + ringBytes) in the order fill, comp, rx, tx, each
// page_up(page + n × descriptor) bytes (xskRingBytes(n) in TypeScript computes the same).
static napi_value xsk_open(napi_env env, napi_callback_info info) {
  napi_value argv[9]; size_t argc = 9; char name[IFNAMSIZ + 1]; int32_t queue, fsize, n, zc; int64_t uoff, ubytes, roff;
  uint8_t *mem; size_t memlen;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 9 || get_name(env, argv[0], name) || napi_get_value_int32(env, argv[1], &queue) != napi_ok ||
      napi_get_value_int64(env, argv[3], &uoff) != napi_ok || napi_get_value_int64(env, argv[4], &ubytes) != napi_ok ||
      napi_get_value_int32(env, argv[5], &fsize) != napi_ok || napi_get_value_int64(env, argv[6], &roff) != napi_ok ||
      napi_get_value_int32(env, argv[7], &n) != napi_ok || napi_get_value_int32(env, argv[8], &zc) != napi_ok || zc < 0 || zc > 2)
    return host_throw(env, "EINVAL", "xskOpen(ifname, queue, view, umemOff, umemBytes, frameSize, ringsOff, n, zeroCopy)");
  if (get_view(env, argv[2], &mem, &memlen)) return NULL;
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  if (n < 64 || n > 32768 || (n & (n - 1)) || fsize < 2048 || (size_t)fsize > page || (fsize & (fsize - 1)) || queue < 0)
    return host_throw(env, "EINVAL", "ring size must be a power of 2 in [64, 32768] and the frame size a power of 2 in [2048, page size]");
  const size_t rbytes[4] = {page_up(page + (size_t)n * 8, page), page_up(page + (size_t)n * 8, page), page_up(page + (size_t)n * 16, page), page_up(page + (size_t)n * 16, page)};
  const size_t total = rbytes[0] + rbytes[1] + rbytes[2] + rbytes[3];
  if (uoff < 0 || ubytes <= 0 || (uint64_t)uoff + (uint64_t)ubytes > memlen || ((uintptr_t)mem + (uintptr_t)uoff) % page || (size_t)ubytes % page ||
      roff < 0 || (uint64_t)roff + total > memlen || ((uintptr_t)mem + (uintptr_t)roff) % page)
    return host_throw(env, "EINVAL", "UMEM and ring spans must be page-aligned and inside the %zu-byte memory", memlen);
  unsigned idx = if_nametoindex(name);
  if (!idx) return host_throw(env, "ENODEV", "no interface %s (create it first, e.g. a veth end)", name);
  int fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    return host_throw(env, host_errno_name(e), "socket(AF_XDP): %s%s", strerror(e),
                      e == EPERM || e == EACCES ? " (run as root or with CAP_NET_RAW)" : e == EAFNOSUPPORT ? " (kernel without XDP sockets: CONFIG_XDP_SOCKETS)" : "");
  }
  const char *step = "XDP_UMEM_REG";
  int mapped = 0, zerocopy = 0;
  struct xdp_umem_reg ur; memset(&ur, 0, sizeof ur);
  ur.addr = (uint64_t)(uintptr_t)(mem + uoff); ur.len = (uint64_t)ubytes; ur.chunk_size = (uint32_t)fsize; ur.headroom = 0;
  if (setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &ur, sizeof ur) < 0) goto fail;
  step = "ring sizes";
  if (setsockopt(fd, SOL_XDP, XDP_UMEM_FILL_RING, &n, sizeof n) < 0 || setsockopt(fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &n, sizeof n) < 0 ||
      setsockopt(fd, SOL_XDP, XDP_RX_RING, &n, sizeof n) < 0 || setsockopt(fd, SOL_XDP, XDP_TX_RING, &n, sizeof n) < 0) goto fail;
  step = "XDP_MMAP_OFFSETS";
  struct xdp_mmap_offsets mo; socklen_t ol = sizeof mo;
  if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &mo, &ol) < 0) goto fail;
  if (ol != sizeof mo) { errno = EPROTO; goto fail; } // a kernel without the flags word (before 5.4)
  step = "mmap of the rings";
  uint8_t *at = mem + roff;
  if (map_ring(fd, at, rbytes[0], &mo.fr, (uint32_t)n, 8, XDP_UMEM_PGOFF_FILL_RING)) goto fail;
  mapped = 1;
  if (map_ring(fd, at + rbytes[0], rbytes[1], &mo.cr, (uint32_t)n, 8, XDP_UMEM_PGOFF_COMPLETION_RING)) goto fail;
  mapped = 2;
  if (map_ring(fd, at + rbytes[0] + rbytes[1], rbytes[2], &mo.rx, (uint32_t)n, 16, XDP_PGOFF_RX_RING)) goto fail;
  mapped = 3;
  if (map_ring(fd, at + rbytes[0] + rbytes[1] + rbytes[2], rbytes[3], &mo.tx, (uint32_t)n, 16, XDP_PGOFF_TX_RING)) goto fail;
  mapped = 4;
  { int budget = n; setsockopt(fd, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget, sizeof budget); } // best effort
  step = "bind";
  struct sockaddr_xdp sx; memset(&sx, 0, sizeof sx);
  sx.sxdp_family = AF_XDP; sx.sxdp_ifindex = idx; sx.sxdp_queue_id = (uint32_t)queue;
  sx.sxdp_flags = XDP_USE_NEED_WAKEUP | (zc == 2 ? XDP_COPY : XDP_ZEROCOPY);
  if (bind(fd, (struct sockaddr *)&sx, sizeof sx) < 0) {
    if (zc != 0 || !(errno == EOPNOTSUPP || errno == EINVAL || errno == EPROTONOSUPPORT)) goto fail;
    sx.sxdp_flags = XDP_USE_NEED_WAKEUP | XDP_COPY; // auto: the driver has no zero-copy
    if (bind(fd, (struct sockaddr *)&sx, sizeof sx) < 0) goto fail;
  } else zerocopy = zc != 2;
  napi_value out;
  napi_create_object(env, &out);
  set_i64(env, out, "fd", fd);
  napi_value b; napi_get_boolean(env, zerocopy, &b); napi_set_named_property(env, out, "zeroCopy", b);
  ring_obj(env, out, "fill", roff, &mo.fr);
  ring_obj(env, out, "comp", roff + (int64_t)rbytes[0], &mo.cr);
  ring_obj(env, out, "rx", roff + (int64_t)(rbytes[0] + rbytes[1]), &mo.rx);
  ring_obj(env, out, "tx", roff + (int64_t)(rbytes[0] + rbytes[1] + rbytes[2]), &mo.tx);
  set_i64(env, out, "ringBytes", (int64_t)total);
  return out;
fail: {
    int e = errno;
    // never leave a hole or the socket's pages in the memory
    if (mapped) mmap(mem + roff, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    close(fd);
    const char *hint = "";
    if (!strcmp(step, "bind")) {
      if (zc == 1 && (e == EOPNOTSUPP || e == EINVAL || e == EPROTONOSUPPORT)) hint = " (zero-copy asked but the driver of this interface has none: use --zero-copy auto or off)";
      else if (e == EINVAL) hint = " (no such rx queue on this interface?)";
      else if (e == EBUSY) hint = " (another XDP socket is bound to this queue)";
      else if (e == ENETDOWN) hint = " (the interface is down: ip link set dev IF up)";
    } else if (e == ENOMEM || e == ENOBUFS) hint = " (locked-memory limit too low? ulimit -l)";
    return host_throw(env, host_errno_name(e), "AF_XDP socket on %s queue %d: %s: %s%s", name, queue, step, strerror(e), hint);
  }
}

// xskMapSet(mapFd, queue, xskFd): rx queue QUEUE is redirected to socket XSKFD.
static napi_value xsk_map_set(napi_env env, napi_callback_info info) {
  napi_value argv[3]; size_t argc = 3; int32_t map, key, val;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || napi_get_value_int32(env, argv[0], &map) != napi_ok || napi_get_value_int32(env, argv[1], &key) != napi_ok || napi_get_value_int32(env, argv[2], &val) != napi_ok)
    return host_throw(env, "EINVAL", "xskMapSet(mapFd, queue, xskFd)");
  union bpf_attr a; memset(&a, 0, sizeof a);
  a.map_fd = (uint32_t)map; a.key = (uint64_t)(uintptr_t)&key; a.value = (uint64_t)(uintptr_t)&val; a.flags = BPF_ANY;
  if (sys_bpf(BPF_MAP_UPDATE_ELEM, &a) < 0) { int e = errno; return host_throw(env, host_errno_name(e), "XSKMAP[%d] = socket: %s", key, strerror(e)); }
  return NULL;
}

static int fatal(int e) { return e == ENXIO || e == ENETDOWN || e == ENODEV || e == EBADF || e == EBADFD; }

// xskKick(fd, view, txProducer, txConsumer) -> 0, or -errno when the socket is dead: ask the
// kernel to send what the tx ring holds. In copy mode one sendto() sends at most a budget of
// frames (32 before 6.17) and answers EAGAIN when more wait: call again while the kernel keeps
// consuming (a few calls per batch at most; one when the budget covers the ring).
static napi_value xsk_kick(napi_env env, napi_callback_info info) {
  napi_value argv[4]; size_t argc = 4; int32_t fd; int64_t po, co; uint8_t *mem; size_t memlen;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || get_view(env, argv[1], &mem, &memlen) ||
      napi_get_value_int64(env, argv[2], &po) != napi_ok || napi_get_value_int64(env, argv[3], &co) != napi_ok ||
      po < 0 || co < 0 || (uint64_t)po + 4 > memlen || (uint64_t)co + 4 > memlen)
    return host_throw(env, "EINVAL", "xskKick(fd, view, txProducer, txConsumer)");
  volatile uint32_t *prod = (volatile uint32_t *)(mem + po), *cons = (volatile uint32_t *)(mem + co);
  for (int i = 0; i < 64; i++) {
    uint32_t before = __atomic_load_n(cons, __ATOMIC_ACQUIRE);
    if (sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0) return ret_i64(env, 0);
    int e = errno;
    if (fatal(e)) return ret_i64(env, -e);
    if (e != EAGAIN && e != EBUSY && e != EINTR) return ret_i64(env, 0); // ENOBUFS...: retried at the next batch
    uint32_t now = __atomic_load_n(cons, __ATOMIC_ACQUIRE);
    if (now == __atomic_load_n(prod, __ATOMIC_ACQUIRE) || now == before) break; // all taken, or no progress
  }
  return ret_i64(env, 0);
}

// xskWakeRx(fd) -> 0 or -errno: the fill ring asked for a wake-up (need_wakeup set).
static napi_value xsk_wake_rx(napi_env env, napi_callback_info info) {
  napi_value argv[1]; size_t argc = 1; int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return host_throw(env, "EINVAL", "xskWakeRx(fd)");
  if (recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL) < 0 && fatal(errno)) return ret_i64(env, -errno);
  return ret_i64(env, 0);
}

// xskStats(fd) -> the kernel's counters of this socket (XDP_STATISTICS), or null when the
// socket is gone; and its pending error (SO_ERROR: ENETDOWN once the interface vanished).
static napi_value xsk_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1]; size_t argc = 1; int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return host_throw(env, "EINVAL", "xskStats(fd)");
  struct xdp_statistics st; socklen_t len = sizeof st; memset(&st, 0, sizeof st);
  napi_value out;
  if (getsockopt(fd, SOL_XDP, XDP_STATISTICS, &st, &len) < 0) { napi_get_null(env, &out); return out; }
  int err = 0; socklen_t el = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0) err = errno;
  napi_create_object(env, &out);
  set_i64(env, out, "rxDropped", (int64_t)st.rx_dropped);
  set_i64(env, out, "rxInvalid", (int64_t)st.rx_invalid_descs);
  set_i64(env, out, "txInvalid", (int64_t)st.tx_invalid_descs);
  set_i64(env, out, "rxRingFull", (int64_t)st.rx_ring_full);
  set_i64(env, out, "fillRingEmpty", (int64_t)st.rx_fill_ring_empty_descs);
  set_i64(env, out, "txRingEmpty", (int64_t)st.tx_ring_empty_descs);
  set_i64(env, out, "error", err);
  return out;
}

void host_register_xdp(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"xdpAttach", NULL, xdp_attach, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xskOpen", NULL, xsk_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xskMapSet", NULL, xsk_map_set, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xskKick", NULL, xsk_kick, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xskWakeRx", NULL, xsk_wake_rx, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xskStats", NULL, xsk_stats, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
