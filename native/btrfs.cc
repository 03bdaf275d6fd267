// btrfs subvolume ioctls for the btrfs driver: create, snapshot (optionally
// read-only), read-only flag get/set, destroy. Paths are split into a parent
// directory (opened O_DIRECTORY|O_NOFOLLOW) and a plain name, as the ioctls
// want; the name may not contain '/'.
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <string>
#include <sys/ioctl.h>
#include <unistd.h>

#include "args.h"
#include "errno-error.h"

namespace tsgraph {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

static int OpenDir(const Napi::Env& env, const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "open", path);
  return fd;
}

static void CheckName(const Napi::Env& env, const std::string& name, size_t max) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." || name.size() >= max) {
    throw ArgError(Napi::TypeError::New(env, "subvolume name must be a single path component"), "ERR_INVALID_ARG_VALUE");
  }
}

// The ioctls that take a parent dir fd and struct btrfs_ioctl_vol_args{name}.
static Napi::Value VolArgsIoctl(const Napi::CallbackInfo& info, unsigned long request, const char* what) {
  Napi::Env env = info.Env();
  std::string dir = BytesArg(info, 0, "parentDir"), name = BytesArg(info, 1, "name");
  struct btrfs_ioctl_vol_args args;
  CheckName(env, name, sizeof(args.name));
  Fd d;
  d.fd = OpenDir(env, dir);
  std::memset(&args, 0, sizeof(args));
  std::strncpy(args.name, name.c_str(), sizeof(args.name) - 1);
  if (ioctl(d.fd, request, &args) != 0) ThrowErrno(env, errno, what, dir + "/" + name);
  return env.Undefined();
}

// btrfsSubvolCreate(parentDir, name)
static Napi::Value SubvolCreate(const Napi::CallbackInfo& info) {
  return VolArgsIoctl(info, BTRFS_IOC_SUBVOL_CREATE, "BTRFS_IOC_SUBVOL_CREATE");
}

// btrfsSnapshot(source, destParentDir, name, readOnly)
static Napi::Value Snapshot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string src = BytesArg(info, 0, "source"), dir = BytesArg(info, 1, "destParentDir"), name = BytesArg(info, 2, "name");
  bool ro = BoolArg(info, 3, "readOnly");
  struct btrfs_ioctl_vol_args_v2 args;
  CheckName(env, name, sizeof(args.name));
  Fd s, d;
  s.fd = OpenDir(env, src);
  d.fd = OpenDir(env, dir);
  std::memset(&args, 0, sizeof(args));
  args.fd = s.fd;
  args.flags = ro ? BTRFS_SUBVOL_RDONLY : 0;
  std::strncpy(args.name, name.c_str(), sizeof(args.name) - 1);
  if (ioctl(d.fd, BTRFS_IOC_SNAP_CREATE_V2, &args) != 0) ThrowErrno(env, errno, "BTRFS_IOC_SNAP_CREATE_V2", dir + "/" + name);
  return env.Undefined();
}

// btrfsSetReadOnly(subvol, readOnly)
static Napi::Value SetReadOnly(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = BytesArg(info, 0, "subvol");
  bool ro = BoolArg(info, 1, "readOnly");
  Fd f;
  f.fd = OpenDir(env, path);
  __u64 flags = 0;
  if (ioctl(f.fd, BTRFS_IOC_SUBVOL_GETFLAGS, &flags) != 0) ThrowErrno(env, errno, "BTRFS_IOC_SUBVOL_GETFLAGS", path);
  flags = ro ? (flags | BTRFS_SUBVOL_RDONLY) : (flags & ~BTRFS_SUBVOL_RDONLY);
  if (ioctl(f.fd, BTRFS_IOC_SUBVOL_SETFLAGS, &flags) != 0) ThrowErrno(env, errno, "BTRFS_IOC_SUBVOL_SETFLAGS", path);
  return env.Undefined();
}

// btrfsIsReadOnly(subvol) -> boolean
static Napi::Value IsReadOnly(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = BytesArg(info, 0, "subvol");
  Fd f;
  f.fd = OpenDir(env, path);
  __u64 flags = 0;
  if (ioctl(f.fd, BTRFS_IOC_SUBVOL_GETFLAGS, &flags) != 0) ThrowErrno(env, errno, "BTRFS_IOC_SUBVOL_GETFLAGS", path);
  return Napi::Boolean::New(env, (flags & BTRFS_SUBVOL_RDONLY) != 0);
}

// btrfsSubvolDestroy(parentDir, name)
static Napi::Value SubvolDestroy(const Napi::CallbackInfo& info) {
  return VolArgsIoctl(info, BTRFS_IOC_SNAP_DESTROY, "BTRFS_IOC_SNAP_DESTROY");
}

void InitBtrfs(Napi::Env env, Napi::Object exports) {
  exports.Set("btrfsSubvolCreate", Napi::Function::New(env, SubvolCreate, "btrfsSubvolCreate"));
  exports.Set("btrfsSnapshot", Napi::Function::New(env, Snapshot, "btrfsSnapshot"));
  exports.Set("btrfsSetReadOnly", Napi::Function::New(env, SetReadOnly, "btrfsSetReadOnly"));
  exports.Set("btrfsIsReadOnly", Napi::Function::New(env, IsReadOnly, "btrfsIsReadOnly"));
  exports.Set("btrfsSubvolDestroy", Napi::Function::New(env, SubvolDestroy, "btrfsSubvolDestroy"));
}

}  // namespace tsgraph
