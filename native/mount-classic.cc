// Classic mount(2) and umount2(2). Used for bind mounts, remounts and
// filesystems without the new API (aufs). Never for overlay lower lists:
// see mount-api.cc.
#include <cerrno>
#include <string>
#include <sys/mount.h>

#include "args.h"
#include "errno-error.h"

namespace tsgraph {

// mount(source, target, fstype, flags, data): source, fstype and data may be
// null (the syscall's NULL); flags are the MS_* bits, all below 2^32.
static Napi::Value Mount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string source, target = BytesArg(info, 1, "target"), fstype, data;
  bool hasSource = OptBytesArg(info, 0, "source", source);
  bool hasFstype = OptBytesArg(info, 2, "fstype", fstype);
  unsigned long flags = U32Arg(info, 3, "flags");
  bool hasData = OptBytesArg(info, 4, "data", data);
  if (data.size() >= 4096) {
    // One page is all the kernel reads; refuse rather than let it truncate.
    ThrowErrno(env, E2BIG, "mount", target, "mount data longer than 4095 bytes");
  }
  if (mount(hasSource ? source.c_str() : nullptr, target.c_str(), hasFstype ? fstype.c_str() : nullptr, flags,
            hasData ? data.c_str() : nullptr) != 0) {
    ThrowErrno(env, errno, "mount", target);
  }
  return env.Undefined();
}

// umount2(target, flags)
static Napi::Value Umount2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string target = BytesArg(info, 0, "target");
  int flags = static_cast<int>(FlagsArg(info, 1, "flags", MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW));
  if (umount2(target.c_str(), flags) != 0) ThrowErrno(env, errno, "umount2", target);
  return env.Undefined();
}

void InitMountClassic(Napi::Env env, Napi::Object exports) {
  exports.Set("mount", Napi::Function::New(env, Mount, "mount"));
  exports.Set("umount2", Napi::Function::New(env, Umount2, "umount2"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("MS_RDONLY", Napi::Number::New(env, MS_RDONLY));
  c.Set("MS_NOSUID", Napi::Number::New(env, MS_NOSUID));
  c.Set("MS_NODEV", Napi::Number::New(env, MS_NODEV));
  c.Set("MS_REMOUNT", Napi::Number::New(env, MS_REMOUNT));
  c.Set("MS_BIND", Napi::Number::New(env, MS_BIND));
  c.Set("MS_REC", Napi::Number::New(env, MS_REC));
  c.Set("MS_PRIVATE", Napi::Number::New(env, MS_PRIVATE));
  c.Set("MNT_DETACH", Napi::Number::New(env, MNT_DETACH));
  c.Set("MNT_FORCE", Napi::Number::New(env, MNT_FORCE));
  exports.Set("mountConstants", c);
}

}  // namespace tsgraph
