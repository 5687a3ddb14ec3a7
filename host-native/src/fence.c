// Guest memory a peer can shrink, made safe (issue #15, finding 2). A vhost-user front-end
// hands us its guest RAM as fds; mapFd checks their size once, but the front-end still holds
// the fd and may ftruncate it afterwards. The pages past the new end then raise SIGBUS on the
// next touch from the datapath, and SIGBUS (unlike the SIGSEGV V8's wasm trap handler owns)
// kills the whole process. Two defences, both here:
//
//  1. sealFd: before mapping, add F_SEAL_SHRINK to the fd ourselves. Seals live on the inode,
//     so they bind the front-end too; then the size is checked again (fstat) and can no longer
//     go down. QEMU's memory-backend-memfd (seal=on, its default) is sealed already.
//  2. the fence: for what cannot be sealed (memory-backend-memfd,seal=off, memory-backend-file
//     on /dev/shm or hugetlbfs), the span is registered and a SIGBUS handler (installed once,
//     chaining to whatever handler was there for addresses that are not ours) maps zeroed
//     anonymous pages over the whole span and returns: the access retries and reads zeros.
//     The span is counted as faulted; the control plane polls the count (fenceFaults) after
//     each pass and takes the port down with a reason.
//
// The registry is a fixed table (no allocation in the handler); entries are published with
// atomics, and a reader that sees an entry change under it skips it.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <node_api.h>

#include "host.h"

#define FENCE_MAX 256 // spans: 8 guest RAM regions per vhost-user port, 32 ports

struct fence {
  _Atomic uintptr_t start; // 0: free
  _Atomic uintptr_t end;
  _Atomic uint32_t faults;
};

static struct fence fences[FENCE_MAX];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction prev;
static bool installed;
static _Atomic uint64_t total_faults;
// bumped with every mended fault; JS reads it through a view (fenceGeneration) with no call, so
// the forwarding loop looks at the fences only when something happened
static _Atomic uint32_t fault_gen;

static void on_sigbus(int sig, siginfo_t *si, void *ctx) {
  uintptr_t a = (uintptr_t)si->si_addr;
  if (si->si_code > 0) { // a fault, not kill(2)
    for (int i = 0; i < FENCE_MAX; i++) {
      uintptr_t s = atomic_load(&fences[i].start);
      if (!s) continue;
      uintptr_t e = atomic_load(&fences[i].end);
      if (atomic_load(&fences[i].start) != s || a < s || a >= e) continue;
      int saved = errno;
      void *p = mmap((void *)s, e - s, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      errno = saved;
      if (p == MAP_FAILED) break; // cannot mend it: let the previous handler (or the default) decide
      atomic_fetch_add(&fences[i].faults, 1);
      atomic_fetch_add(&total_faults, 1);
      atomic_fetch_add(&fault_gen, 1);
      return; // the access retries on zeroed pages
    }
  }
  // not ours: whoever had SIGBUS before us decides
  if (prev.sa_flags & SA_SIGINFO) { if (prev.sa_sigaction) { prev.sa_sigaction(sig, si, ctx); return; } }
  else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) { prev.sa_handler(sig); return; }
  if (prev.sa_handler == SIG_IGN && si->si_code <= 0) return;
  // the default: die of SIGBUS as if we had never been here (a fault re-raises on return)
  signal(SIGBUS, SIG_DFL);
  if (si->si_code <= 0) raise(SIGBUS);
}

static int install(void) {
  if (installed) return 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &prev) < 0) return -1;
  installed = true;
  return 0;
}

// The span [off, off+len) of the memory behind a Uint8Array view, as absolute addresses.
static int span_of(napi_env env, const char *fn, napi_value *argv, uintptr_t *s, uintptr_t *e) {
  napi_typedarray_type type; size_t length, bo; void *data; napi_value ab; bool ta = false;
  double off, len;
  if (napi_is_typedarray(env, argv[0], &ta) != napi_ok || !ta ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &data, &ab, &bo) != napi_ok || type != napi_uint8_array ||
      napi_get_value_double(env, argv[1], &off) != napi_ok || napi_get_value_double(env, argv[2], &len) != napi_ok ||
      !(off >= 0) || !(len > 0) || off != (double)(uint64_t)off || len != (double)(uint64_t)len || off + len > (double)length) {
    host_throw(env, "EINVAL", "%s: expected (view: Uint8Array over the memory, offset, length > 0) inside the view", fn);
    return -1;
  }
  *s = (uintptr_t)data + (uintptr_t)off;
  *e = *s + (uintptr_t)len;
  return 0;
}

static int get3(napi_env env, napi_callback_info info, napi_value *argv, const char *fn) {
  size_t argc = 3;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
    host_throw(env, "EINVAL", "%s: expected 3 arguments", fn);
    return -1;
  }
  return 0;
}

// Remove every fence inside [s, e). Called by unmap too: a span given back is not ours to mend.
void host_unfence(uintptr_t s, uintptr_t e) {
  pthread_mutex_lock(&lock);
  for (int i = 0; i < FENCE_MAX; i++) {
    uintptr_t fs = atomic_load(&fences[i].start);
    if (fs && fs >= s && atomic_load(&fences[i].end) <= e) {
      atomic_store(&fences[i].start, 0);
      atomic_store(&fences[i].end, 0);
      atomic_store(&fences[i].faults, 0);
    }
  }
  pthread_mutex_unlock(&lock);
}

// fence(view, offset, length): a SIGBUS inside the span is mended with zero pages and counted.
static napi_value fence_js(napi_env env, napi_callback_info info) {
  static const char *fn = "fence(view, offset, length)";
  napi_value argv[3]; uintptr_t s, e;
  if (get3(env, info, argv, fn) || span_of(env, fn, argv, &s, &e)) return NULL;
  long page = sysconf(_SC_PAGESIZE);
  if (s % (uintptr_t)page || e % (uintptr_t)page) return host_throw(env, "EINVAL", "%s: the span must be page-aligned", fn);
  pthread_mutex_lock(&lock);
  if (install() < 0) { int x = errno; pthread_mutex_unlock(&lock); return host_throw(env, host_errno_name(x), "%s: sigaction(SIGBUS): %s", fn, strerror(x)); }
  int free_at = -1;
  for (int i = 0; i < FENCE_MAX; i++) {
    uintptr_t fs = atomic_load(&fences[i].start);
    if (!fs) { if (free_at < 0) free_at = i; continue; }
    if (fs < e && s < atomic_load(&fences[i].end)) { pthread_mutex_unlock(&lock); return host_throw(env, "EEXIST", "%s: the span overlaps a fenced one", fn); }
  }
  if (free_at < 0) { pthread_mutex_unlock(&lock); return host_throw(env, "ENOSPC", "%s: all %d fences are in use", fn, FENCE_MAX); }
  atomic_store(&fences[free_at].faults, 0);
  atomic_store(&fences[free_at].end, e);
  atomic_store(&fences[free_at].start, s); // published last
  pthread_mutex_unlock(&lock);
  return NULL;
}

static napi_value unfence_js(napi_env env, napi_callback_info info) {
  static const char *fn = "unfence(view, offset, length)";
  napi_value argv[3]; uintptr_t s, e;
  if (get3(env, info, argv, fn) || span_of(env, fn, argv, &s, &e)) return NULL;
  host_unfence(s, e);
  return NULL;
}

// fenceFaults(view, offset, length) -> SIGBUS faults mended in the fences inside the span.
static napi_value fence_faults_js(napi_env env, napi_callback_info info) {
  static const char *fn = "fenceFaults(view, offset, length)";
  napi_value argv[3], out; uintptr_t s, e; uint32_t n = 0;
  if (get3(env, info, argv, fn) || span_of(env, fn, argv, &s, &e)) return NULL;
  for (int i = 0; i < FENCE_MAX; i++) {
    uintptr_t fs = atomic_load(&fences[i].start);
    if (fs && fs >= s && atomic_load(&fences[i].end) <= e) n += atomic_load(&fences[i].faults);
  }
  napi_create_uint32(env, n, &out);
  return out;
}

// fenceStats() -> { fences: spans registered, faults: every fault mended since the start }
static napi_value fence_stats_js(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out, v; uint32_t n = 0;
  for (int i = 0; i < FENCE_MAX; i++) if (atomic_load(&fences[i].start)) n++;
  napi_create_object(env, &out);
  napi_create_uint32(env, n, &v); napi_set_named_property(env, out, "fences", v);
  napi_create_double(env, (double)atomic_load(&total_faults), &v); napi_set_named_property(env, out, "faults", v);
  return out;
}

// fenceGeneration() -> a Uint32Array(1) over the count of faults mended: it changes when (and
// only when) a fence caught a fault, and reading it costs no call into the host.
static napi_value fence_generation_js(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value ab, out;
  if (napi_create_external_arraybuffer(env, (void *)&fault_gen, sizeof fault_gen, NULL, NULL, &ab) != napi_ok ||
      napi_create_typedarray(env, napi_uint32_array, 1, ab, 0, &out) != napi_ok)
    return host_throw(env, "EIO", "fenceGeneration(): cannot make a view of the fault count");
  return out;
}

// sealFd(fd, end) -> { sealed, why }: F_SEAL_SHRINK added (or already there) so the file can
// never be shorter than it is now; then it must be a regular file of at least `end` bytes
// (else EINVAL). sealed false (with why) when the file cannot be sealed: fence its mapping.
static napi_value seal_fd_js(napi_env env, napi_callback_info info) {
  static const char *fn = "sealFd(fd, end)";
  napi_value argv[2], out, v; size_t argc = 2; int32_t fd; double end;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_double(env, argv[1], &end) != napi_ok ||
      fd < 0 || !(end >= 0) || end > 9007199254740991.0)
    return host_throw(env, "EINVAL", "%s: expected an fd and a size", fn);
  const char *why = NULL;
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) why = errno == EINVAL ? "not a memfd (a file or a hugetlbfs file cannot be sealed)" : strerror(errno);
  else if (!(seals & F_SEAL_SHRINK)) {
    if (seals & F_SEAL_SEAL) why = "the memfd was made without MFD_ALLOW_SEALING or its seals are sealed";
    else if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) why = strerror(errno);
  }
  struct stat st;
  if (fstat(fd, &st) < 0) { int x = errno; return host_throw(env, host_errno_name(x), "%s: fstat(%d): %s", fn, fd, strerror(x)); }
  if (!S_ISREG(st.st_mode)) return host_throw(env, "EINVAL", "%s: fd %d is not a regular file or memfd (guest RAM must be one)", fn, fd);
  if ((double)st.st_size < end)
    return host_throw(env, "EINVAL", "%s: fd %d is %lld bytes, shorter than the %.0f the memory table needs", fn, fd, (long long)st.st_size, end);
  // hugetlbfs files (QEMU's hugepage RAM, DPDK's --in-memory segments) must be mapped at their
  // page size's alignment, offsets and lengths multiples of it: tell the caller that size
  double page = (double)sysconf(_SC_PAGESIZE);
  struct statfs sf;
  if (fstatfs(fd, &sf) == 0 && sf.f_type == 0x958458f6 /* HUGETLBFS_MAGIC */) page = (double)sf.f_bsize;
  napi_create_object(env, &out);
  napi_create_double(env, page, &v); napi_set_named_property(env, out, "pageSize", v);
  napi_get_boolean(env, why == NULL, &v); napi_set_named_property(env, out, "sealed", v);
  if (why) napi_create_string_utf8(env, why, NAPI_AUTO_LENGTH, &v); else napi_get_null(env, &v);
  napi_set_named_property(env, out, "why", v);
  return out;
}

// alignGap(view, offset, align) -> bytes to add to offset so that the absolute address of
// view[offset + gap] is a multiple of align (a power of 2): for mappings that need more
// alignment than the memory's own base has (hugetlbfs: 2 MiB).
static napi_value align_gap_js(napi_env env, napi_callback_info info) {
  napi_value argv[3], out; uintptr_t s, e; double align;
  if (get3(env, info, argv, "alignGap(view, offset, align)") < 0) return NULL;
  napi_value one_arg[3] = {argv[0], argv[1], NULL};
  napi_create_double(env, 1, &one_arg[2]);
  if (span_of(env, "alignGap(view, offset, align)", one_arg, &s, &e) < 0) return NULL;
  if (napi_get_value_double(env, argv[2], &align) != napi_ok || !(align >= 1) || align > 1073741824.0 || ((uint64_t)align & ((uint64_t)align - 1)))
    return host_throw(env, "EINVAL", "alignGap: align must be a power of 2 up to 1 GiB");
  uintptr_t a = (uintptr_t)align;
  napi_create_double(env, (double)((a - (s & (a - 1))) & (a - 1)), &out);
  return out;
}

void host_register_fence(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sealFd", NULL, seal_fd_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"alignGap", NULL, align_gap_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fence", NULL, fence_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unfence", NULL, unfence_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fenceFaults", NULL, fence_faults_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fenceStats", NULL, fence_stats_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fenceGeneration", NULL, fence_generation_js, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
