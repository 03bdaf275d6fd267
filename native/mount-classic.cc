// Classic mount(2) and umount2(2). Used for bind mounts, remounts and
// filesystems without the new API (aufs). Never for overlay lower lists:
// see mount-api.cc.
#include <cerrno>
#include <string>
#include <sys/mount.h>

#include "errno-error.h"

namespace tsgraph {

// mount(source, target, fstype, flags, data)
static Napi::Value Mount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[1].IsString() || !info[3].IsNumber()) {
    throw Napi::TypeError::New(env, "mount(source: string|null, target: string, fstype: string|null, flags: number, data: string|null)");
  }
  auto opt = [](const Napi::Value& v) -> std::string { return v.IsString() ? std::string(v.As<Napi::String>()) : std::string(); };
  std::string source = opt(info[0]), target = opt(info[1]), fstype = opt(info[2]), data = opt(info[4]);
  unsigned long flags = static_cast<unsigned long>(info[3].As<Napi::Number>().Int64Value());
  if (data.size() >= 4096) {
    // One page is all the kernel reads; refuse rather than let it truncate.
    ThrowErrno(env, E2BIG, "mount", target, "mount data longer than 4095 bytes");
  }
  if (mount(info[0].IsString() ? source.c_str() : nullptr, target.c_str(), info[2].IsString() ? fstype.c_str() : nullptr, flags,
            info[4].IsString() ? data.c_str() : nullptr) != 0) {
    ThrowErrno(env, errno, "mount", target);
  }
  return env.Undefined();
}

// umount2(target, flags)
static Napi::Value Umount2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "umount2(target: string, flags: number)");
  }
  std::string target = info[0].As<Napi::String>();
  if (umount2(target.c_str(), info[1].As<Napi::Number>().Int32Value()) != 0) ThrowErrno(env, errno, "umount2", target);
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
