// UDP sockets for tunnel ports (VXLAN, Geneve) and batched I/O on message arrays that the
// datapath builds in the wasm memory (assembly/tunnel/tunnel.ts). The arrays are struct mmsghdr
// with every pointer written as an offset into the memory: this file checks each one lies
// inside the memory, adds the memory's base, and makes one recvmmsg/sendmmsg call per batch.
// No policy here: what to send where, and what a received datagram means, is the datapath's.
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <node_api.h>

#include "host.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#define MAX_MSGS 1024
#define MAX_IOV 128

static napi_value ret_i64(napi_env env, int64_t v) { napi_value out; napi_create_int64(env, v, &out); return out; }

static int view_of(napi_env env, napi_value v, uint8_t **mem, size_t *len) {
  napi_typedarray_type type; size_t bo; void *d; napi_value ab; bool ta = false;
  if (napi_is_typedarray(env, v, &ta) != napi_ok || !ta || napi_get_typedarray_info(env, v, &type, len, &d, &ab, &bo) != napi_ok || type != napi_uint8_array) {
    host_throw(env, "EINVAL", "expected a Uint8Array over the WebAssembly memory");
    return -1;
  }
  *mem = d;
  return 0;
}

// Parse IP (v4 or v6) into a sockaddr; returns its length or 0.
static socklen_t sockaddr_of(const char *ip, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss; struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) { a4->sin_family = AF_INET; a4->sin_port = htons((uint16_t)port); return sizeof *a4; }
  if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) { a6->sin6_family = AF_INET6; a6->sin6_port = htons((uint16_t)port); return sizeof *a6; }
  return 0;
}

// udpOpen(ip, port, receive) -> { fd, port, gro, gso }: a non-blocking UDP socket bound to
// IP:PORT (PORT 0: an ephemeral port, for send sockets). receive: ask for UDP_GRO (the kernel
// then hands over coalesced datagrams with their segment size) and a large receive buffer;
// otherwise the socket only sends (its receive buffer kept minimal). gso: UDP_SEGMENT works.
static napi_value udp_open(napi_env env, napi_callback_info info) {
  napi_value argv[3]; size_t argc = 3; char ip[64] = {0}; size_t n; int32_t port; bool recv = false;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || napi_get_value_string_utf8(env, argv[0], ip, sizeof ip, &n) != napi_ok || napi_get_value_int32(env, argv[1], &port) != napi_ok ||
      napi_get_value_bool(env, argv[2], &recv) != napi_ok || port < 0 || port > 65535)
    return host_throw(env, "EINVAL", "udpOpen(ip, port 0..65535, receive)");
  struct sockaddr_storage sa; socklen_t sl = sockaddr_of(ip, port, &sa);
  if (!sl) return host_throw(env, "EINVAL", "'%s' is not an IPv4 or IPv6 address", ip);
  int fd = socket(sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return host_throw(env, host_errno_name(errno), "socket(UDP): %s", strerror(errno));
  if (sa.ss_family == AF_INET6) { int one = 1; setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one); }
  if (bind(fd, (struct sockaddr *)&sa, sl) < 0) {
    int e = errno; close(fd);
    return host_throw(env, host_errno_name(e), "bind UDP %s:%d: %s%s", ip, port, strerror(e),
                      e == EADDRINUSE ? " (another socket holds this address and port: a Linux vxlan/geneve device or another switch?)" : e == EADDRNOTAVAIL ? " (no interface has this address)" : "");
  }
  int big = 8 << 20;
  if (recv) {
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  } else { int small = 4096; setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small); }
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) < 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  int one = 1, gro = 0, gso = 0;
  if (recv && setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof one) == 0) gro = 1;
  int zero = 0; // UDP_SEGMENT 0 on the socket is a no-op that tells whether the kernel knows it
  if (setsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &zero, sizeof zero) == 0) gso = 1;
  struct sockaddr_storage got; socklen_t gl = sizeof got; int bound = port;
  if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0) bound = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port : ((struct sockaddr_in *)&got)->sin_port);
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_int32(env, fd, &v); napi_set_named_property(env, out, "fd", v);
  napi_create_int32(env, bound, &v); napi_set_named_property(env, out, "port", v);
  napi_get_boolean(env, gro, &v); napi_set_named_property(env, out, "gro", v);
  napi_get_boolean(env, gso, &v); napi_set_named_property(env, out, "gso", v);
  return out;
}

// An offset of `len` bytes inside the memory, as a pointer; NULL if it is not inside.
static void *rel(uint8_t *mem, size_t memlen, uint64_t off, uint64_t len) {
  if (off > memlen || len > memlen - off) return NULL;
  return mem + off;
}

// Turn n messages at offset `at` from offsets into pointers (checked). 0, or -1 after throwing.
static int relocate(napi_env env, uint8_t *mem, size_t memlen, int64_t at, uint32_t n, struct mmsghdr **out) {
  if (at < 0 || (at & 7) || n > MAX_MSGS) { host_throw(env, "EINVAL", "message array at %lld (%u messages) is misaligned or too long", (long long)at, n); return -1; }
  struct mmsghdr *m = rel(mem, memlen, (uint64_t)at, (uint64_t)n * sizeof *m);
  if (!m) { host_throw(env, "EINVAL", "message array at %lld outside the memory", (long long)at); return -1; }
  for (uint32_t i = 0; i < n; i++) {
    struct msghdr *h = &m[i].msg_hdr;
    uint64_t name = (uint64_t)(uintptr_t)h->msg_name, iov = (uint64_t)(uintptr_t)h->msg_iov, ctl = (uint64_t)(uintptr_t)h->msg_control;
    size_t niov = h->msg_iovlen, nctl = h->msg_controllen; socklen_t nl = h->msg_namelen;
    if (nl > sizeof(struct sockaddr_storage) || niov > MAX_IOV || (iov & 7) || (ctl & 7)) goto bad;
    void *pn = name || nl ? rel(mem, memlen, name, nl) : NULL;
    struct iovec *pv = rel(mem, memlen, iov, niov * sizeof(struct iovec));
    void *pc = nctl ? rel(mem, memlen, ctl, nctl) : NULL;
    if ((nl && !pn) || !pv || (nctl && !pc)) goto bad;
    for (size_t k = 0; k < niov; k++) {
      uint64_t b = (uint64_t)(uintptr_t)pv[k].iov_base, l = pv[k].iov_len;
      void *pb = rel(mem, memlen, b, l);
      if (!pb) goto bad;
      pv[k].iov_base = pb;
    }
    h->msg_name = pn; h->msg_iov = pv; h->msg_control = pc;
    continue;
  bad:
    host_throw(env, "EINVAL", "message %u of the array at %lld points outside the memory", i, (long long)at);
    return -1;
  }
  *out = m;
  return 0;
}

static int fatal(int e) { return e == EBADF || e == ENOTSOCK || e == EFAULT; }

// udpRecv(view, fd, msgsOffset, n) -> datagrams received (0: none waiting), or -errno for a
// dead socket. The kernel writes each message's length, flags, source and control (GRO size).
static napi_value udp_recv(napi_env env, napi_callback_info info) {
  napi_value argv[4]; size_t argc = 4; int64_t at; int32_t fd; uint32_t n;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *mem; size_t memlen;
  if (argc < 4 || view_of(env, argv[0], &mem, &memlen) || napi_get_value_int32(env, argv[1], &fd) != napi_ok ||
      napi_get_value_int64(env, argv[2], &at) != napi_ok || napi_get_value_uint32(env, argv[3], &n) != napi_ok)
    return host_throw(env, "EINVAL", "udpRecv(view, fd, msgsOffset, n)");
  struct mmsghdr *m;
  if (relocate(env, mem, memlen, at, n, &m)) return NULL;
  int c = recvmmsg(fd, m, n, MSG_DONTWAIT, NULL);
  if (c < 0) return ret_i64(env, fatal(errno) ? -errno : 0);
  return ret_i64(env, c);
}

// udpSend(view, fd, msgsOffset, n, counts: Float64Array(2)) -> messages the kernel took, or
// -errno for a dead socket. A full socket buffer (EAGAIN/ENOBUFS) drops the rest (counts[0]);
// a message the kernel refuses (no route, too big) is dropped alone (counts[1]) and the rest go.
static napi_value udp_send(napi_env env, napi_callback_info info) {
  napi_value argv[5]; size_t argc = 5; int64_t at; int32_t fd; uint32_t n;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *mem; size_t memlen;
  napi_typedarray_type dt; size_t dlen, dbo; void *dd; napi_value dab; bool dta = false;
  if (argc < 5 || view_of(env, argv[0], &mem, &memlen) || napi_get_value_int32(env, argv[1], &fd) != napi_ok ||
      napi_get_value_int64(env, argv[2], &at) != napi_ok || napi_get_value_uint32(env, argv[3], &n) != napi_ok ||
      napi_is_typedarray(env, argv[4], &dta) != napi_ok || !dta || napi_get_typedarray_info(env, argv[4], &dt, &dlen, &dd, &dab, &dbo) != napi_ok || dt != napi_float64_array || dlen < 2)
    return host_throw(env, "EINVAL", "udpSend(view, fd, msgsOffset, n, counts: Float64Array(2))");
  double *counts = dd;
  struct mmsghdr *m;
  if (relocate(env, mem, memlen, at, n, &m)) return NULL;
  uint32_t done = 0, sent = 0;
  while (done < n) {
    int c = sendmmsg(fd, m + done, n - done, MSG_DONTWAIT);
    if (c > 0) { done += (uint32_t)c; sent += (uint32_t)c; continue; }
    if (c < 0 && errno == EINTR) continue;
    if (c < 0 && fatal(errno)) return ret_i64(env, sent ? (int64_t)sent : -errno);
    if (c == 0 || errno == EAGAIN || errno == ENOBUFS) { counts[0] += n - done; break; }
    counts[1] += 1; done++; // this one refused: skip it
  }
  return ret_i64(env, sent);
}

void host_register_udp(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"udpOpen", NULL, udp_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpRecv", NULL, udp_recv, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpSend", NULL, udp_send, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
