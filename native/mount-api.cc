// The new mount API: fsopen → fsconfig… → FSCONFIG_CMD_CREATE → fsmount →
// move_mount. tsgraph never passes overlay lower lists through mount(2)'s
// single options page: past 4095 bytes the kernel truncates it and can
// silently mount the wrong layers. One fsconfig("lowerdir+", dir) per layer
// has no such limit (the kernel's own cap, 500 lowers, fails loudly).
//
// This file includes <linux/mount.h> only; <sys/mount.h> (classic mount)
// lives in mount-classic.cc because the two headers clash on glibc 2.36.
#include <cerrno>
#include <fcntl.h>
#include <linux/mount.h>
#include <string>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

#include "errno-error.h"

namespace tsgraph {

static int sys_fsopen(const char* fs, unsigned flags) { return syscall(SYS_fsopen, fs, flags); }
static int sys_fsconfig(int fd, unsigned cmd, const char* key, const void* value, int aux) {
  return syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}
static int sys_fsmount(int fd, unsigned flags, unsigned attrs) { return syscall(SYS_fsmount, fd, flags, attrs); }
static int sys_move_mount(int from_dfd, const char* from, int to_dfd, const char* to, unsigned flags) {
  return syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags);
}

// The kernel queues human-readable messages ("e overlay: …") on the fs
// context fd; they explain EINVALs that errno alone cannot.
static std::string DrainMessages(int fsfd) {
  std::string out;
  char buf[1024];
  for (int i = 0; i < 16; i++) {  // bounded: the kernel keeps at most a few
    ssize_t n = read(fsfd, buf, sizeof(buf) - 1);
    if (n <= 0) break;
    buf[n] = 0;
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

struct FdGuard {
  int fd = -1;
  ~FdGuard() {
    if (fd >= 0) close(fd);
  }
};

// fsMount(fstype, params: [key, value|null][], target, attrFlags)
//   value null → FSCONFIG_SET_FLAG; string → FSCONFIG_SET_STRING.
static Napi::Value FsMount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsString() || !info[3].IsNumber()) {
    throw Napi::TypeError::New(env, "fsMount(fstype: string, params: [string, string|null][], target: string, attrFlags: number)");
  }
  std::string fstype = info[0].As<Napi::String>();
  Napi::Array params = info[1].As<Napi::Array>();
  std::string target = info[2].As<Napi::String>();
  unsigned attrs = info[3].As<Napi::Number>().Uint32Value();

  FdGuard fs;
  fs.fd = sys_fsopen(fstype.c_str(), FSOPEN_CLOEXEC);
  if (fs.fd < 0) ThrowErrno(env, errno, "fsopen", fstype);

  for (uint32_t i = 0; i < params.Length(); i++) {
    Napi::Array kv = params.Get(i).As<Napi::Array>();
    std::string key = kv.Get(uint32_t(0)).As<Napi::String>();
    Napi::Value v = kv.Get(uint32_t(1));
    int rc;
    std::string value;
    if (v.IsNull() || v.IsUndefined()) {
      rc = sys_fsconfig(fs.fd, FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0);
    } else {
      value = v.As<Napi::String>();
      rc = sys_fsconfig(fs.fd, FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0);
    }
    if (rc < 0) {
      int err = errno;
      std::string msg = DrainMessages(fs.fd);
      ThrowErrno(env, err, "fsconfig", key + (value.empty() ? "" : "=" + value), msg);
    }
  }
  if (sys_fsconfig(fs.fd, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) {
    int err = errno;
    ThrowErrno(env, err, "fsconfig", "create " + fstype, DrainMessages(fs.fd));
  }
  FdGuard mnt;
  mnt.fd = sys_fsmount(fs.fd, FSMOUNT_CLOEXEC, attrs);
  if (mnt.fd < 0) {
    int err = errno;
    ThrowErrno(env, err, "fsmount", fstype, DrainMessages(fs.fd));
  }
  if (sys_move_mount(mnt.fd, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0) {
    ThrowErrno(env, errno, "move_mount", target);
  }
  return env.Undefined();
}

// True when this kernel has fsopen (new mount API).
static Napi::Value HasNewMountApi(const Napi::CallbackInfo& info) {
  int fd = sys_fsopen("tmpfs", FSOPEN_CLOEXEC);
  if (fd >= 0) {
    close(fd);
    return Napi::Boolean::New(info.Env(), true);
  }
  // EPERM still proves the syscall exists; ENOSYS does not.
  return Napi::Boolean::New(info.Env(), errno != ENOSYS);
}

void InitMountApi(Napi::Env env, Napi::Object exports) {
  exports.Set("fsMount", Napi::Function::New(env, FsMount, "fsMount"));
  exports.Set("hasNewMountApi", Napi::Function::New(env, HasNewMountApi, "hasNewMountApi"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("MOUNT_ATTR_RDONLY", Napi::Number::New(env, MOUNT_ATTR_RDONLY));
  c.Set("MOUNT_ATTR_NOSUID", Napi::Number::New(env, MOUNT_ATTR_NOSUID));
  c.Set("MOUNT_ATTR_NODEV", Napi::Number::New(env, MOUNT_ATTR_NODEV));
  c.Set("MOUNT_ATTR_NOEXEC", Napi::Number::New(env, MOUNT_ATTR_NOEXEC));
  exports.Set("mountApiConstants", c);
}

}  // namespace tsgraph
