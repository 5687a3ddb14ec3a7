// Shared by the addon's files: error throwing with a code, errno names, registration.
#pragma once
#include <node_api.h>
napi_value host_throw(napi_env env, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *host_errno_name(int e);
void host_register_io(napi_env env, napi_value exports);
void host_register_fdpass(napi_env env, napi_value exports);
