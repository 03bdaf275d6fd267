// flock(2) on an open file descriptor. The kernel drops the lock when the
// process dies (even on SIGKILL), which is why the content store and the layer
// store use it instead of lock files with PIDs in them.
//
// Only the non-blocking forms are useful from JavaScript: a blocking flock
// would freeze the event loop, so src/ polls LOCK_NB with a bounded wait.
#include <cerrno>
#include <sys/file.h>

#include "args.h"
#include "errno-error.h"

namespace tsgraph {

// flock(fd, op) -> true if taken, false if LOCK_NB and someone else holds it.
static Napi::Value Flock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0, "fd");
  int op = static_cast<int>(FlagsArg(info, 1, "operation", LOCK_SH | LOCK_EX | LOCK_NB | LOCK_UN));
  int rc;
  do {
    rc = flock(fd, op);
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) return Napi::Boolean::New(env, true);
  if (errno == EWOULDBLOCK && (op & LOCK_NB)) return Napi::Boolean::New(env, false);
  ThrowErrno(env, errno, "flock");
}

void InitLock(Napi::Env env, Napi::Object exports) {
  exports.Set("flock", Napi::Function::New(env, Flock, "flock"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("LOCK_SH", Napi::Number::New(env, LOCK_SH));
  c.Set("LOCK_EX", Napi::Number::New(env, LOCK_EX));
  c.Set("LOCK_NB", Napi::Number::New(env, LOCK_NB));
  c.Set("LOCK_UN", Napi::Number::New(env, LOCK_UN));
  exports.Set("lockConstants", c);
}

}  // namespace tsgraph
