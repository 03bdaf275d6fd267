// Entry point of the tsgraph native addon. Each concern lives in its own file
// and registers its functions here; keep the surface small and the semantics
// identical to the syscalls (no policy in C++: policy is TypeScript's job).
#include <cerrno>
#include <cstring>
#include <napi.h>
#include <uv.h>

#include "errno-error.h"

namespace tsgraph {

// The symbolic name of `err` (ENOENT…) written into `buf`, never allocating:
// uv_err_name() mallocs (and leaks) a "Unknown system error N" string for
// every errno outside libuv's table, and that string is no code at all. So:
// libuv's name first (what Node's fs reports), then glibc's name for the
// errnos libuv lacks (ENOTBLK, EDQUOT, ESTALE…), then "UNKNOWN" (libuv's own
// name for an unknown error; the number stays in `errno`).
static const char* ErrnoName(int err, char* buf, size_t size) {
  uv_err_name_r(-err, buf, size);
  if (std::strncmp(buf, "Unknown", 7) != 0) return buf;
  const char* glibc = strerrorname_np(err);
  return glibc ? glibc : "UNKNOWN";
}

[[noreturn]] void ThrowErrno(const Napi::Env& env, int err, const char* syscall,
                             const std::string& path, const std::string& detail) {
  char name[64];
  const char* code = ErrnoName(err, name, sizeof(name));
  char text[256];
  // strerror_r (GNU form) may return a static string instead of filling text.
  const char* desc = strerror_r(err, text, sizeof(text));
  std::string message = std::string(syscall);
  if (!path.empty()) message += " " + path;
  message += ": " + std::string(desc);
  if (!detail.empty()) message += " (" + detail + ")";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, -err));
  error.Set("syscall", Napi::String::New(env, syscall));
  if (!path.empty()) error.Set("path", Napi::String::New(env, path));
  if (!detail.empty()) error.Set("detail", Napi::String::New(env, detail));
  throw error;
}

}  // namespace tsgraph

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  tsgraph::InitLock(env, exports);
  tsgraph::InitMountApi(env, exports);
  tsgraph::InitMountClassic(env, exports);
  tsgraph::InitFsOps(env, exports);
  tsgraph::InitBtrfs(env, exports);
  tsgraph::InitAtOps(env, exports);
  tsgraph::InitSignalWatchdog(env, exports);
  tsgraph::InitApplyBatch(env, exports);
  tsgraph::InitIdmap(env, exports);
  return exports;
}

NODE_API_MODULE(tsgraph_native, Init)
