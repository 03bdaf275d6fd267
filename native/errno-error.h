// Turns a failed syscall into a JavaScript Error shaped like Node's own
// system errors: message "<syscall> <path>: <strerror>", plus code (ENOENT…),
// errno (negative, as libuv reports it), syscall and path. src/ maps these to
// TsgraphError categories; keeping the shape identical to fs errors lets one
// mapping serve both.
#pragma once
#include <napi.h>
#include <string>

namespace tsgraph {

// Throws (as a C++ exception caught by node-addon-api) an errno-shaped Error.
[[noreturn]] void ThrowErrno(const Napi::Env& env, int err, const char* syscall,
                             const std::string& path = "",
                             const std::string& detail = "");

// Each file registers its functions on exports.
void InitLock(Napi::Env env, Napi::Object exports);
void InitMountApi(Napi::Env env, Napi::Object exports);
void InitMountClassic(Napi::Env env, Napi::Object exports);
void InitFsOps(Napi::Env env, Napi::Object exports);
void InitBtrfs(Napi::Env env, Napi::Object exports);
void InitAtOps(Napi::Env env, Napi::Object exports);
void InitSignalWatchdog(Napi::Env env, Napi::Object exports);
void InitApplyBatch(Napi::Env env, Napi::Object exports);
void InitIdmap(Napi::Env env, Napi::Object exports);

}  // namespace tsgraph
