// Shared by the addon's files: error throwing with a code, errno names, registration.
#pragma once
#include <node_api.h>
#include <stdint.h>
napi_value host_throw(napi_env env, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *host_errno_name(int e);
void host_register_io(napi_env env, napi_value exports);
void host_register_fdpass(napi_env env, napi_value exports);
void host_register_fence(napi_env env, napi_value exports);
void host_register_xdp(napi_env env, napi_value exports);
void host_register_udp(napi_env env, napi_value exports);
/** Forget the SIGBUS fences inside [s, e) (absolute addresses): the span was given back. */
void host_unfence(uintptr_t s, uintptr_t e);
