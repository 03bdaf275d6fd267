// Entry point of the tsgraph native addon. Each concern lives in its own file
// and registers its functions here; keep the surface small and the semantics
// identical to the syscalls (no policy in C++: policy is TypeScript's job).
#include <cerrno>
#include <cstring>
#include <napi.h>
#include <uv.h>

#include "errno-error.h"

namespace tsgraph {

[[noreturn]] void ThrowErrno(const Napi::Env& env, int err, const char* syscall,
                             const std::string& path, const std::string& detail) {
  // uv_err_name gives the symbolic name (ENOENT) the same way Node's fs does.
  const char* name = uv_err_name(-err);
  std::string message = std::string(syscall);
  if (!path.empty()) message += " " + path;
  message += ": " + std::string(std::strerror(err));
  if (!detail.empty()) message += " (" + detail + ")";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, name));
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
  return exports;
}

NODE_API_MODULE(tsgraph_native, Init)
