// wasmap's native host: the few system calls the datapath cannot make itself. Thin on
// purpose: it maps file descriptors into the WebAssembly memory and opens kernel objects;
// every policy decision stays in TypeScript. What it does check is what would otherwise
// crash the process (a hole or a SIGBUS page inside the wasm memory) or silently map the
// wrong bytes.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

// Throws a JS Error whose `code` is CODE. Returns NULL so callers can `return host_throw(...)`.
napi_value host_throw(napi_env env, const char *code, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  napi_throw_error(env, code, msg);
  return NULL;
}

// The errno's symbolic name, as Node's own fs errors spell it ('EBADF', 'ENODEV', ...).
const char *host_errno_name(int e) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(e);
  if (name) return name;
#endif
  switch (e) {
  case EBADF: return "EBADF";
  case EACCES: return "EACCES";
  case EAGAIN: return "EAGAIN";
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
  case EOVERFLOW: return "EOVERFLOW";
  case ETXTBSY: return "ETXTBSY";
  case EFBIG: return "EFBIG";
  default: return "EIO";
  }
}

static long page_bytes(void) {
  static long page;
  if (!page) page = sysconf(_SC_PAGESIZE);
  return page;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, size_t max, napi_value *argv,
                    size_t *got, const char *usage) {
  size_t argc = max;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    host_throw(env, "EINVAL", "expected at least %zu arguments: %s", want, usage);
    return -1;
  }
  if (got) *got = argc;
  return 0;
}

// A whole number in [lo, hi]. napi_get_value_int64 alone would turn NaN, Infinity and 1.5
// into 0 or 1 and map somewhere nobody asked for.
static int get_int(napi_env env, napi_value v, const char *fn, const char *name, int64_t lo, int64_t hi,
                   int64_t *out) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number || napi_get_value_double(env, v, &d) != napi_ok) {
    host_throw(env, "EINVAL", "%s: %s must be a number", fn, name);
    return -1;
  }
  if (!isfinite(d) || d != trunc(d) || d < (double)lo || d > (double)hi) {
    host_throw(env, "EINVAL", "%s: %s must be a whole number in %lld..%lld, not %.17g", fn, name, (long long)lo,
               (long long)hi, d);
    return -1;
  }
  *out = (int64_t)d;
  return 0;
}

#define MAX_SAFE ((int64_t)9007199254740991LL) /* Number.MAX_SAFE_INTEGER */

// The page-aligned span [off, off+len) of the memory behind a Uint8Array view of a
// WebAssembly.Memory. Node 20's napi_get_arraybuffer_info refuses a SharedArrayBuffer, the
// typed-array path does not (and returns the data pointer including the view's byteOffset).
static int get_span(napi_env env, const char *fn, napi_value view, napi_value voff, napi_value vlen, uint8_t **at,
                    int64_t *off, int64_t *len) {
  napi_typedarray_type type;
  size_t length, byte_offset;
  void *data;
  napi_value ab;
  bool is_ta = false;
  long page = page_bytes();
  if (napi_is_typedarray(env, view, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, view, &type, &length, &data, &ab, &byte_offset) != napi_ok ||
      type != napi_uint8_array || data == NULL) {
    host_throw(env, "EINVAL", "%s: the first argument must be a Uint8Array over the WebAssembly memory "
               "(new Uint8Array(memory.buffer))", fn);
    return -1;
  }
  if (get_int(env, voff, fn, "offset", 0, MAX_SAFE, off) || get_int(env, vlen, fn, "length", 0, MAX_SAFE, len))
    return -1;
  if (*len == 0) {
    host_throw(env, "EINVAL", "%s: length must be > 0", fn);
    return -1;
  }
  if (*off % page || *len % page) {
    host_throw(env, "EINVAL", "%s: offset %lld and length %lld must be multiples of the %ld-byte host page "
               "(any 64 KiB wasm-page boundary is)", fn, (long long)*off, (long long)*len, page);
    return -1;
  }
  if ((uint64_t)*off + (uint64_t)*len > length) {
    host_throw(env, "EINVAL", "%s: span [%lld, %lld) ends beyond the %zu-byte view; grow the memory first and "
               "pass a view over the current memory.buffer", fn, (long long)*off, (long long)(*off + *len), length);
    return -1;
  }
  if ((uintptr_t)data % (uintptr_t)page) {
    host_throw(env, "EINVAL", "%s: the view starts at byte %zu of its buffer, not on a page; pass "
               "new Uint8Array(memory.buffer)", fn, byte_offset);
    return -1;
  }
  *at = (uint8_t *)data + *off;
  return 0;
}

static napi_value memfd_create_js(napi_env env, napi_callback_info info) {
  static const char *fn = "memfdCreate(name, size[, sealed: boolean | 'allow'])";
  napi_value argv[3] = {NULL, NULL, NULL}, out;
  char name[250]; // the kernel's limit is 249 bytes plus the NUL
  size_t n;
  napi_valuetype t;
  int64_t size;
  size_t argc = 0;
  if (get_args(env, info, 2, 3, argv, &argc, fn)) return NULL;
  bool sealed = false, allow = false;
  if (argc > 2) {
    napi_valuetype st;
    CALL(env, napi_typeof(env, argv[2], &st));
    if (st == napi_string) {
      char mode[8]; size_t ml;
      CALL(env, napi_get_value_string_utf8(env, argv[2], mode, sizeof mode, &ml));
      if (strcmp(mode, "allow")) return host_throw(env, "EINVAL", "%s: sealed must be a boolean or 'allow'", fn);
      allow = true;
    } else if (st != napi_undefined) CALL(env, napi_get_value_bool(env, argv[2], &sealed));
  }
  CALL(env, napi_typeof(env, argv[0], &t));
  if (t != napi_string) return host_throw(env, "EINVAL", "%s: name must be a string", fn);
  CALL(env, napi_get_value_string_utf8(env, argv[0], NULL, 0, &n));
  if (n >= sizeof name)
    return host_throw(env, "EINVAL", "%s: name is %zu bytes; memfd names are at most %zu", fn, n, sizeof name - 1);
  CALL(env, napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n));
  if (strlen(name) != n) return host_throw(env, "EINVAL", "%s: name must not contain NUL characters", fn);
  if (get_int(env, argv[1], fn, "size", 0, MAX_SAFE, &size)) return NULL;
  int fd = memfd_create(name, MFD_CLOEXEC | (sealed || allow ? MFD_ALLOW_SEALING : 0));
  if (fd < 0) {
    int e = errno;
    return host_throw(env, host_errno_name(e), "memfd_create(%s): %s%s", name, strerror(e),
                      e == EMFILE || e == ENFILE ? "; close unused descriptors or raise `ulimit -n`" : "");
  }
  if (ftruncate(fd, (off_t)size) < 0) {
    int e = errno;
    close(fd);
    return host_throw(env, host_errno_name(e), "ftruncate(memfd %s, %lld): %s", name, (long long)size, strerror(e));
  }
  // sealed: whoever receives the fd (a passthrough guest) can never shrink it under our
  // mapping (our next access would die of SIGBUS), grow it, or lift the seals
  if (sealed && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
    int e = errno;
    close(fd);
    return host_throw(env, host_errno_name(e), "sealing memfd %s: %s", name, strerror(e));
  }
  CALL(env, napi_create_int32(env, fd, &out));
  return out;
}

static napi_value map_fd(napi_env env, napi_callback_info info) {
  static const char *fn = "mapFd(view, offset, length, fd, fdOffset?)";
  napi_value argv[5];
  size_t argc;
  int64_t off, len, fd, fdoff = 0;
  uint8_t *at;
  struct stat st;
  if (get_args(env, info, 4, 5, argv, &argc, fn)) return NULL;
  if (get_span(env, fn, argv[0], argv[1], argv[2], &at, &off, &len)) return NULL;
  if (get_int(env, argv[3], fn, "fd", 0, INT_MAX, &fd)) return NULL;
  if (argc > 4) {
    napi_valuetype t;
    CALL(env, napi_typeof(env, argv[4], &t));
    if (t != napi_undefined && get_int(env, argv[4], fn, "fdOffset", 0, MAX_SAFE, &fdoff)) return NULL;
  }
  if (fdoff % page_bytes())
    return host_throw(env, "EINVAL", "%s: fdOffset %lld must be a multiple of the %ld-byte page", fn,
                      (long long)fdoff, page_bytes());
  if (fstat((int)fd, &st) < 0) {
    int e = errno;
    return host_throw(env, host_errno_name(e), "%s: fd %lld: %s; pass an open descriptor (a memfd from "
                      "memfdCreate, a file or an mmap-able device)", fn, (long long)fd, strerror(e));
  }
  // Pages past the end of a file map fine but raise SIGBUS when touched, which V8's trap
  // handler does not catch: the whole process would die on the first wasm access.
  if (S_ISREG(st.st_mode) && fdoff + len > (int64_t)st.st_size)
    return host_throw(env, "EINVAL", "%s: fd %lld is %lld bytes, too short for [%lld, %lld); ftruncate it to at "
                      "least %lld bytes first", fn, (long long)fd, (long long)st.st_size, (long long)fdoff,
                      (long long)(fdoff + len), (long long)(fdoff + len));
  void *p = mmap(at, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, (int)fd, (off_t)fdoff);
  if (p == MAP_FAILED) {
    int e = errno;
    const char *hint = e == ENODEV  ? "; this kind of descriptor cannot be memory-mapped (use a memfd, a file or a "
                                      "device with an mmap ring)"
                       : e == EACCES ? "; the descriptor must be open read-write for a shared writable mapping"
                       : e == ENOMEM ? "; the process is out of mappings or memory (see vm.max_map_count)"
                                     : "";
    // Argument errors leave the old pages alone, but a driver's mmap failing after the
    // kernel cleared the range leaves a hole (msync says ENOMEM over unmapped pages). Fill
    // it with zeroed pages: wasm touching a hole would kill the process.
    bool hole = msync(at, (size_t)len, MS_ASYNC) < 0 && errno == ENOMEM;
    if (hole) mmap(at, (size_t)len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    return host_throw(env, host_errno_name(e), "%s: mmap of fd %lld (offset %lld) over wasm memory [%lld, %lld): "
                      "%s%s%s", fn, (long long)fd, (long long)fdoff, (long long)off, (long long)(off + len),
                      strerror(e), hint, hole ? " (the span now holds zeros)" : "");
  }
  return NULL;
}

// Never leaves a hole (wasm would fault on it): fresh zeroed anonymous pages replace the
// span, whatever it held, mapped or not.
static napi_value unmap(napi_env env, napi_callback_info info) {
  static const char *fn = "unmap(view, offset, length)";
  napi_value argv[3];
  int64_t off, len;
  uint8_t *at;
  if (get_args(env, info, 3, 3, argv, NULL, fn)) return NULL;
  if (get_span(env, fn, argv[0], argv[1], argv[2], &at, &off, &len)) return NULL;
  host_unfence((uintptr_t)at, (uintptr_t)at + (uintptr_t)len); // given back: a later SIGBUS there is not ours to mend
  void *p = mmap(at, (size_t)len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    return host_throw(env, host_errno_name(e), "%s: restoring anonymous memory over [%lld, %lld): %s", fn,
                      (long long)off, (long long)(off + len), strerror(e));
  }
  return NULL;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  static const char *fn = "closeFd(fd)";
  napi_value argv[1];
  int64_t fd;
  if (get_args(env, info, 1, 1, argv, NULL, fn) || get_int(env, argv[0], fn, "fd", 0, INT_MAX, &fd)) return NULL;
  // EINTR still closes the fd on Linux; retrying could close someone else's.
  if (close((int)fd) < 0 && errno != EINTR) {
    int e = errno;
    return host_throw(env, host_errno_name(e), "%s: close(%lld): %s", fn, (long long)fd, strerror(e));
  }
  return NULL;
}

static napi_value page_size(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CALL(env, napi_create_int64(env, page_bytes(), &out));
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
  host_register_fdpass(env, exports);
  host_register_fence(env, exports);
  host_register_xdp(env, exports);
  host_register_udp(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
