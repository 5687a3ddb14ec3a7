// wasmap's native host: the few system calls the datapath cannot make itself. Thin on
// purpose: it maps file descriptors into the WebAssembly memory and opens kernel objects;
// every policy decision stays in TypeScript.
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <node_api.h>

#include "host.h"

#define CALL(env, call)                                                        \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      napi_throw_error((env), "EINTERNAL", "N-API call failed: " #call);       \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

napi_value host_throw(napi_env env, const char *code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  napi_throw_error(env, code, msg);
  return NULL;
}

const char *host_host_errno_name(int e) {
  switch (e) {
  case EBADF: return "EBADF";
  case EACCES: return "EACCES";
  case EINVAL: return "EINVAL";
  case ENODEV: return "ENODEV";
  case ENOMEM: return "ENOMEM";
  case EPERM: return "EPERM";
  case ENFILE: return "ENFILE";
  case EMFILE: return "EMFILE";
  case ENOSYS: return "ENOSYS";
  case EBUSY: return "EBUSY";
  case ENXIO: return "ENXIO";
  case ENOENT: return "ENOENT";
  case ENETDOWN: return "ENETDOWN";
  default: return "EIO";
  }
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    host_throw(env, "EINVAL", "expected %zu arguments", want);
    return -1;
  }
  return 0;
}

static int get_i64(napi_env env, napi_value v, const char *name, int64_t *out) {
  if (napi_get_value_int64(env, v, out) != napi_ok) {
    host_throw(env, "EINVAL", "%s must be a number", name);
    return -1;
  }
  return 0;
}

// The memory behind a Uint8Array over a WebAssembly.Memory. Node 20's
// napi_get_arraybuffer_info refuses a SharedArrayBuffer, the typed-array path does not.
static int get_span(napi_env env, napi_value view, int64_t off, int64_t len, uint8_t **at) {
  napi_typedarray_type type;
  size_t length, byte_offset;
  void *data;
  napi_value ab;
  bool is_ta = false;
  if (napi_is_typedarray(env, view, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, view, &type, &length, &data, &ab, &byte_offset) != napi_ok ||
      type != napi_uint8_array) {
    host_throw(env, "EINVAL", "the first argument must be a Uint8Array over the WebAssembly memory");
    return -1;
  }
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t base = (uintptr_t)data;
  if (off < 0 || len <= 0 || (uint64_t)off + (uint64_t)len > length) {
    host_throw(env, "EINVAL", "span [%lld, +%lld) is outside the %zu-byte memory view",
               (long long)off, (long long)len, length);
    return -1;
  }
  if ((base + (uintptr_t)off) % (uintptr_t)page || (uint64_t)len % (uint64_t)page) {
    host_throw(env, "EINVAL", "offset %lld and length %lld must be multiples of the %ld-byte page",
               (long long)off, (long long)len, page);
    return -1;
  }
  *at = (uint8_t *)data + off;
  return 0;
}

static napi_value memfd_create_js(napi_env env, napi_callback_info info) {
  napi_value argv[2], out;
  char name[64];
  size_t n;
  int64_t size;
  if (get_args(env, info, 2, argv)) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n) != napi_ok)
    return host_throw(env, "EINVAL", "name must be a string");
  if (get_i64(env, argv[1], "size", &size)) return NULL;
  if (size < 0) return host_throw(env, "EINVAL", "size must be >= 0");
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return host_throw(env, host_errno_name(errno), "memfd_create(%s): %s", name, strerror(errno));
  if (ftruncate(fd, size) < 0) {
    int e = errno;
    close(fd);
    return host_throw(env, host_errno_name(e), "ftruncate(memfd %s, %lld): %s", name, (long long)size, strerror(e));
  }
  CALL(env, napi_create_int32(env, fd, &out));
  return out;
}

static napi_value map_fd(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  size_t argc = 5;
  int64_t off, len, fd, fdoff = 0;
  uint8_t *at;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return host_throw(env, "EINVAL", "mapFd(view, offset, length, fd[, fdOffset])");
  if (get_i64(env, argv[1], "offset", &off) || get_i64(env, argv[2], "length", &len) ||
      get_i64(env, argv[3], "fd", &fd))
    return NULL;
  if (argc > 4) {
    napi_valuetype t;
    CALL(env, napi_typeof(env, argv[4], &t));
    if (t != napi_undefined && get_i64(env, argv[4], "fdOffset", &fdoff)) return NULL;
  }
  if (fdoff < 0 || fdoff % sysconf(_SC_PAGESIZE))
    return host_throw(env, "EINVAL", "fdOffset %lld must be a page multiple", (long long)fdoff);
  if (get_span(env, argv[0], off, len, &at)) return NULL;
  void *p = mmap(at, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, (int)fd, (off_t)fdoff);
  if (p == MAP_FAILED) {
    int e = errno;
    return host_throw(env, host_errno_name(e), "mmap of fd %lld over wasm memory [%lld, +%lld): %s",
                      (long long)fd, (long long)off, (long long)len, strerror(e));
  }
  return NULL;
}

static napi_value unmap(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int64_t off, len;
  uint8_t *at;
  if (get_args(env, info, 3, argv)) return NULL;
  if (get_i64(env, argv[1], "offset", &off) || get_i64(env, argv[2], "length", &len)) return NULL;
  if (get_span(env, argv[0], off, len, &at)) return NULL;
  // never leave a hole: wasm would fault on it; put fresh zeroed anonymous pages back
  void *p = mmap(at, (size_t)len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    return host_throw(env, host_errno_name(e), "restoring anonymous memory over [%lld, +%lld): %s",
                      (long long)off, (long long)len, strerror(e));
  }
  return NULL;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t fd;
  if (get_args(env, info, 1, argv) || get_i64(env, argv[0], "fd", &fd)) return NULL;
  if (close((int)fd) < 0) return host_throw(env, host_errno_name(errno), "close(%lld): %s", (long long)fd, strerror(errno));
  return NULL;
}

static napi_value page_size(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CALL(env, napi_create_int64(env, sysconf(_SC_PAGESIZE), &out));
  return out;
}

static napi_value version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CALL(env, napi_create_string_utf8(env, "wasmap_host 0.1.0", NAPI_AUTO_LENGTH, &out));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"memfdCreate", NULL, memfd_create_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mapFd", NULL, map_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unmap", NULL, unmap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pageSize", NULL, page_size, NULL, NULL, NULL, napi_enumerable, NULL},
      {"version", NULL, version, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  host_register_io(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
