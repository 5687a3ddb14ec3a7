// File descriptors over unix sockets (SCM_RIGHTS): how a switch hands a passthrough port —
// its region's memfd, its CSB page and two eventfds — to a guest process. Node's net module
// cannot carry fds on a plain unix socket, so both ends come here for that one message.
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <node_api.h>

#include "host.h"

#define MAX_FDS 8

// unixConnect(path) -> fd: a blocking, close-on-exec stream socket connected to path.
static napi_value unix_connect(napi_env env, napi_callback_info info) {
  napi_value argv[1]; size_t argc = 1; struct sockaddr_un a = {.sun_family = AF_UNIX}; size_t n;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], a.sun_path, sizeof a.sun_path, &n) != napi_ok)
    return host_throw(env, "EINVAL", "unixConnect(path): expected a socket path");
  if (n >= sizeof a.sun_path - 1) return host_throw(env, "ENAMETOOLONG", "socket path longer than %zu bytes", sizeof a.sun_path - 2);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return host_throw(env, host_errno_name(errno), "socket(AF_UNIX): %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    int e = errno; close(fd);
    return host_throw(env, host_errno_name(e), "connect %s: %s", a.sun_path, strerror(e));
  }
  napi_value out; napi_create_int32(env, fd, &out);
  return out;
}

// sendFds(fd, bytes: Uint8Array, fds: number[], noWait?) -> bytes sent. The fds ride on the first
// byte; the whole message is sent (a short write is retried, without the fds again). noWait:
// never wait for the peer to read (MSG_DONTWAIT): a full socket throws EAGAIN at once — a peer
// that does not read what it asked for must not be able to block the caller's thread.
static napi_value send_fds(napi_env env, napi_callback_info info) {
  napi_value argv[4]; size_t argc = 4; int32_t fd; uint32_t nfds = 0; bool nowait = false;
  napi_typedarray_type t; size_t len, bo; void *data; napi_value ab; bool isarr = false, ista = false;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_is_typedarray(env, argv[1], &ista) != napi_ok || !ista ||
      napi_get_typedarray_info(env, argv[1], &t, &len, &data, &ab, &bo) != napi_ok || t != napi_uint8_array ||
      napi_is_array(env, argv[2], &isarr) != napi_ok || !isarr || napi_get_array_length(env, argv[2], &nfds) != napi_ok)
    return host_throw(env, "EINVAL", "sendFds(fd, bytes: Uint8Array, fds: number[], noWait?)");
  if (argc > 3) { napi_valuetype vt; napi_typeof(env, argv[3], &vt); if (vt == napi_boolean) napi_get_value_bool(env, argv[3], &nowait); }
  if (nfds > MAX_FDS) return host_throw(env, "EINVAL", "sendFds: at most %d fds", MAX_FDS);
  if (len == 0) return host_throw(env, "EINVAL", "sendFds: the message must not be empty (fds ride on its bytes)");
  int fds[MAX_FDS];
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value v;
    if (napi_get_element(env, argv[2], i, &v) != napi_ok || napi_get_value_int32(env, v, &fds[i]) != napi_ok || fds[i] < 0)
      return host_throw(env, "EINVAL", "sendFds: fds[%u] is not a file descriptor", i);
  }
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)]; } c;
  memset(&c, 0, sizeof c);
  size_t done = 0;
  while (done < len) {
    struct iovec iov = {(char *)data + done, len - done};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (done == 0 && nfds) {
      m.msg_control = c.buf; m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
      struct cmsghdr *h = CMSG_FIRSTHDR(&m);
      h->cmsg_level = SOL_SOCKET; h->cmsg_type = SCM_RIGHTS; h->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
      memcpy(CMSG_DATA(h), fds, sizeof(int) * nfds);
    }
    ssize_t r = sendmsg(fd, &m, MSG_NOSIGNAL | (nowait ? MSG_DONTWAIT : 0));
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN && nowait)
        return host_throw(env, "EAGAIN", "sendmsg: the peer's socket is full (%zu of %zu bytes sent); it does not read", done, len);
      if (errno == EAGAIN) { struct pollfd p = {fd, POLLOUT, 0}; poll(&p, 1, 1000); continue; }
      return host_throw(env, host_errno_name(errno), "sendmsg: %s", strerror(errno));
    }
    done += (size_t)r;
  }
  napi_value out; napi_create_int64(env, (int64_t)done, &out);
  return out;
}

// recvFds(fd, maxBytes, timeoutMs) -> { data: Buffer, fds: number[] } | null (timeout).
// Empty data means the peer closed. Received fds are close-on-exec; extra ones are closed.
static napi_value recv_fds(napi_env env, napi_callback_info info) {
  napi_value argv[3]; size_t argc = 3; int32_t fd, max, timeout;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &max) != napi_ok ||
      napi_get_value_int32(env, argv[2], &timeout) != napi_ok || max <= 0 || max > (1 << 20))
    return host_throw(env, "EINVAL", "recvFds(fd, maxBytes 1..1048576, timeoutMs)");
  struct pollfd p = {fd, POLLIN, 0};
  int pr;
  do pr = poll(&p, 1, timeout); while (pr < 0 && errno == EINTR);
  if (pr < 0) return host_throw(env, host_errno_name(errno), "poll: %s", strerror(errno));
  napi_value out;
  if (pr == 0) { napi_get_null(env, &out); return out; }
  void *data; napi_value buf;
  if (napi_create_buffer(env, (size_t)max, &data, &buf) != napi_ok) return host_throw(env, "ENOMEM", "recvFds: no memory");
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)]; } c;
  struct iovec iov = {data, (size_t)max};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof c.buf};
  ssize_t r;
  do r = recvmsg(fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT); while (r < 0 && errno == EINTR);
  if (r < 0) return host_throw(env, host_errno_name(errno), "recvmsg: %s", strerror(errno));
  // collect the fds first: when the kernel truncated them (more than MAX_FDS arrived) it
  // installed those that fit and dropped the rest, and those we got must be closed, not leaked
  int got[MAX_FDS]; uint32_t nf = 0;
  for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *in = (int *)CMSG_DATA(h);
    for (size_t i = 0; i < k; i++) { if (nf < MAX_FDS) got[nf++] = in[i]; else close(in[i]); }
  }
  if (m.msg_flags & MSG_CTRUNC) {
    for (uint32_t i = 0; i < nf; i++) close(got[i]);
    return host_throw(env, "EMSGSIZE", "recvmsg: more than %d fds arrived; all were closed", MAX_FDS);
  }
  napi_value fds; napi_create_array(env, &fds);
  for (uint32_t i = 0; i < nf; i++) { napi_value v; napi_create_int32(env, got[i], &v); napi_set_element(env, fds, i, v); }
  napi_value slice, fn, args[2];
  napi_get_named_property(env, buf, "subarray", &fn);
  napi_create_int32(env, 0, &args[0]); napi_create_int64(env, r, &args[1]);
  napi_call_function(env, buf, fn, 2, args, &slice);
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "data", slice);
  napi_set_named_property(env, out, "fds", fds);
  return out;
}

// unixListen(path, backlog) -> fd: a non-blocking, close-on-exec listening stream socket bound
// to path (the caller removes a stale socket file first: bind refuses an existing path).
static napi_value unix_listen(napi_env env, napi_callback_info info) {
  napi_value argv[2]; size_t argc = 2; struct sockaddr_un a = {.sun_family = AF_UNIX}; size_t n; int32_t backlog = 4;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], a.sun_path, sizeof a.sun_path, &n) != napi_ok || n == 0)
    return host_throw(env, "EINVAL", "unixListen(path, backlog): expected a socket path");
  if (n >= sizeof a.sun_path - 1) return host_throw(env, "ENAMETOOLONG", "socket path longer than %zu bytes", sizeof a.sun_path - 2);
  if (argc > 1) napi_get_value_int32(env, argv[1], &backlog);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return host_throw(env, host_errno_name(errno), "socket(AF_UNIX): %s", strerror(errno));
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, backlog > 0 ? backlog : 4) < 0) {
    int e = errno; close(fd);
    return host_throw(env, host_errno_name(e), "listen on %s: %s", a.sun_path, strerror(e));
  }
  napi_value out; napi_create_int32(env, fd, &out);
  return out;
}

// unixAccept(fd) -> fd of the new connection (blocking, close-on-exec), or -1 when none waits.
static napi_value unix_accept(napi_env env, napi_callback_info info) {
  napi_value argv[1]; size_t argc = 1; int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return host_throw(env, "EINVAL", "unixAccept(fd)");
  int c;
  do c = accept4(fd, NULL, NULL, SOCK_CLOEXEC); while (c < 0 && errno == EINTR);
  if (c < 0 && errno != EAGAIN && errno != ECONNABORTED) return host_throw(env, host_errno_name(errno), "accept: %s", strerror(errno));
  napi_value out; napi_create_int32(env, c < 0 ? -1 : c, &out);
  return out;
}

void host_register_fdpass(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"unixListen", NULL, unix_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unixAccept", NULL, unix_accept, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unixConnect", NULL, unix_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendFds", NULL, send_fds, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recvFds", NULL, recv_fds, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
