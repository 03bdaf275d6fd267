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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

#include "args.h"
#include "errno-error.h"
#include "idmap.h"

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

// fsconfig copies a string value with strndup_user(value, 256): 255 bytes
// and the NUL. Measured on 6.18: a 256-byte lowerdir+ is EINVAL with no
// message, which is why layer directories go by fd (below).
static const size_t kMaxFsconfigString = 255;

// One directory parameter (lowerdir+, upperdir, workdir…) given by fd, so
// the path's length never matters. Kernels whose overlay takes files
// (FSCONFIG_SET_FD; 6.18 measured, O_PATH fds included) get the fd itself;
// older ones refuse it (EINVAL "Bad value", or EBADF for an O_PATH fd) and
// get "/proc/self/fd/N" as a string instead: short, and resolved by the
// kernel at fsconfig time while the fd is still open. `via` forces one way
// (tests exercise the fallback on kernels that would take the fd).
enum class Via { Auto, Fd, ProcFd };

// With an idmapped `base` (a detached mount fd, >= 0), `dir` is relative to
// it and opened beneath it (OpenDirBeneath): the layer is then seen through
// the idmapped mount.
static void SetDirParam(const Napi::Env& env, int fsfd, const std::string& key, const std::string& dir, Via via, int base) {
  FdGuard d;
  if (base >= 0) {
    d.fd = OpenDirBeneath(env, base, dir, "param " + key + " dir");
  } else {
    d.fd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (d.fd < 0) ThrowErrno(env, errno, "open", dir, key);
  }
  if (via != Via::ProcFd) {
    if (sys_fsconfig(fsfd, FSCONFIG_SET_FD, key.c_str(), nullptr, d.fd) == 0) return;
    int err = errno;
    std::string msg = DrainMessages(fsfd);
    if (via == Via::Fd || (err != EINVAL && err != EBADF)) ThrowErrno(env, err, "fsconfig", key + "=" + dir, msg);
  }
  std::string proc = "/proc/self/fd/" + std::to_string(d.fd);
  if (sys_fsconfig(fsfd, FSCONFIG_SET_STRING, key.c_str(), proc.c_str(), 0) < 0) {
    int err = errno;
    ThrowErrno(env, err, "fsconfig", key + "=" + dir, DrainMessages(fsfd));
  }
}

// Parameters that name layer directories: with an idmap they must go by
// {dir} beneath the idmapped base, never as a string path that would bypass it.
static bool IsLayerKey(const std::string& key) {
  return key == "lowerdir" || key == "lowerdir+" || key == "upperdir" || key == "workdir" || key == "datadir+";
}

// Idmapped bases one mount may use (overlay: the lowers' and the upper's).
static const uint32_t kMaxIdmapBases = 4;

// fsMount(fstype, params: [key, value][], target, attrFlags, idmap?)
//   value null/undefined → FSCONFIG_SET_FLAG;
//   string|Buffer        → FSCONFIG_SET_STRING (at most 255 bytes);
//   {dir, via?}          → the directory by fd (see SetDirParam).
//   idmap [{usernsFd, base}…]: every {dir, at} is relative to base number
//   `at`, opened beneath one detached clone of it idmapped to that user
//   namespace (overlay's idmapped layers), never by a path that bypasses it.
static Napi::Value FsMount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string fstype = BytesArg(info, 0, "fstype");
  if (info.Length() < 2 || !info[1].IsArray()) throw ArgTypeError(env, "params must be an array of [key, value]");
  Napi::Array params = info[1].As<Napi::Array>();
  std::string target = BytesArg(info, 2, "target");
  unsigned attrs = FlagsArg(info, 3, "attrFlags",
                            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NOATIME |
                                MOUNT_ATTR_STRICTATIME | MOUNT_ATTR_NODIRATIME);
  // The idmapped detached clones, when asked for: [{usernsFd, base}, …].
  FdGuard idmapBases[kMaxIdmapBases];
  uint32_t nBases = 0;
  if (info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNull()) {
    if (!info[4].IsArray()) throw ArgTypeError(env, "idmap must be an array of {usernsFd, base}");
    Napi::Array list = info[4].As<Napi::Array>();
    if (list.Length() == 0 || list.Length() > kMaxIdmapBases) {
      throw ArgError(Napi::RangeError::New(env, "idmap must hold 1 to 4 bases"), "ERR_OUT_OF_RANGE");
    }
    for (nBases = 0; nBases < list.Length(); nBases++) {
      Napi::Value e = list.Get(nBases);
      if (!e.IsObject() || e.IsArray() || e.IsBuffer()) throw ArgTypeError(env, "idmap entries must be {usernsFd, base}");
      Napi::Object o = e.As<Napi::Object>();
      Napi::Value u = o.Get("usernsFd");
      if (!u.IsNumber()) throw ArgTypeError(env, "idmap usernsFd must be a number");
      double v = u.As<Napi::Number>().DoubleValue();
      if (!std::isfinite(v) || std::floor(v) != v || v < 0 || v > 2147483647.0) {
        throw ArgError(Napi::RangeError::New(env, "idmap usernsFd is out of range"), "ERR_OUT_OF_RANGE");
      }
      int userns = static_cast<int>(v);
      RequireUsernsFd(env, userns, "idmap usernsFd");
      std::string base = BytesValue(env, o.Get("base"), "idmap base");
      if (base.empty() || base[0] != '/') throw ArgError(Napi::TypeError::New(env, "idmap base must be an absolute path"), "ERR_INVALID_ARG_VALUE");
      idmapBases[nBases].fd = OpenIdmappedTree(env, base, userns, 0, false);
    }
  }
  FdGuard fs;
  fs.fd = sys_fsopen(fstype.c_str(), FSOPEN_CLOEXEC);
  if (fs.fd < 0) ThrowErrno(env, errno, "fsopen", fstype);

  for (uint32_t i = 0; i < params.Length(); i++) {
    Napi::Value entry = params.Get(i);
    if (!entry.IsArray()) throw ArgTypeError(env, "params[" + std::to_string(i) + "] must be [key, value]");
    Napi::Array kv = entry.As<Napi::Array>();
    std::string key = BytesValue(env, kv.Get(uint32_t(0)), "param key");
    Napi::Value v = kv.Get(uint32_t(1));
    if (v.IsNull() || v.IsUndefined()) {
      if (sys_fsconfig(fs.fd, FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0) < 0) {
        int err = errno;
        ThrowErrno(env, err, "fsconfig", key, DrainMessages(fs.fd));
      }
      continue;
    }
    if (v.IsObject() && !v.IsBuffer() && !v.IsArray()) {
      Napi::Object o = v.As<Napi::Object>();
      std::string dir = BytesValue(env, o.Get("dir"), "param " + key + " dir");
      Napi::Value viaValue = o.Get("via");
      Via via = Via::Auto;
      if (viaValue.IsString()) {
        std::string s = viaValue.As<Napi::String>();
        if (s == "fd") via = Via::Fd;
        else if (s == "procfd") via = Via::ProcFd;
        else throw ArgError(Napi::TypeError::New(env, "via must be \"fd\" or \"procfd\""), "ERR_INVALID_ARG_VALUE");
      } else if (!viaValue.IsUndefined()) {
        throw ArgTypeError(env, "via must be a string");
      }
      int base = -1;
      Napi::Value at = o.Get("at");
      if (nBases > 0) {
        // Idmapped: every directory is relative to one of the idmapped bases.
        if (!at.IsNumber()) throw ArgTypeError(env, "param " + key + " dir needs `at` (an idmap base index) when idmapped");
        double a = at.As<Napi::Number>().DoubleValue();
        if (!std::isfinite(a) || std::floor(a) != a || a < 0 || a >= nBases) {
          throw ArgError(Napi::RangeError::New(env, "param " + key + " at is out of range"), "ERR_OUT_OF_RANGE");
        }
        base = idmapBases[static_cast<uint32_t>(a)].fd;
      } else if (!at.IsUndefined()) {
        throw ArgTypeError(env, "param " + key + " has `at` but no idmap was given");
      }
      SetDirParam(env, fs.fd, key, dir, via, base);
      continue;
    }
    if (nBases > 0 && IsLayerKey(key)) {
      throw ArgError(Napi::TypeError::New(env, "param " + key + " must be a {dir, at} beneath an idmap base when idmapped"), "ERR_INVALID_ARG_VALUE");
    }
    std::string value = BytesValue(env, v, "param " + key + " value");
    if (value.size() > kMaxFsconfigString) {
      // Say so instead of the kernel's bare EINVAL.
      ThrowErrno(env, ENAMETOOLONG, "fsconfig", key,
                 "value is " + std::to_string(value.size()) + " bytes; fsconfig takes at most " + std::to_string(kMaxFsconfigString));
    }
    if (sys_fsconfig(fs.fd, FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0) < 0) {
      int err = errno;
      ThrowErrno(env, err, "fsconfig", key + "=" + value, DrainMessages(fs.fd));
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

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif

// isMountRoot(path) → true when `path` (symlinks followed, as mountinfo lists
// resolved paths) is the root of a mount, false when it is not or does not
// exist, null when this kernel does not report it (statx before 5.8): the
// caller then reads mountinfo. One statx where reading and parsing
// /proc/self/mountinfo costs time proportional to the whole mount table.
static Napi::Value IsMountRoot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = BytesArg(info, 0, "path");
  struct statx st;
  if (statx(AT_FDCWD, path.c_str(), AT_NO_AUTOMOUNT, STATX_BASIC_STATS, &st) < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return Napi::Boolean::New(env, false);
    if (errno == ENOSYS) return env.Null();
    ThrowErrno(env, errno, "statx", path);
  }
  if (!(st.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)) return env.Null();
  return Napi::Boolean::New(env, (st.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0);
}

void InitMountApi(Napi::Env env, Napi::Object exports) {
  exports.Set("isMountRoot", Napi::Function::New(env, IsMountRoot, "isMountRoot"));
  exports.Set("fsMount", Napi::Function::New(env, FsMount, "fsMount"));
  exports.Set("hasNewMountApi", Napi::Function::New(env, HasNewMountApi, "hasNewMountApi"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("MOUNT_ATTR_RDONLY", Napi::Number::New(env, MOUNT_ATTR_RDONLY));
  c.Set("MOUNT_ATTR_NOSUID", Napi::Number::New(env, MOUNT_ATTR_NOSUID));
  c.Set("MOUNT_ATTR_NODEV", Napi::Number::New(env, MOUNT_ATTR_NODEV));
  c.Set("MOUNT_ATTR_NOEXEC", Napi::Number::New(env, MOUNT_ATTR_NOEXEC));
  c.Set("MOUNT_ATTR_IDMAP", Napi::Number::New(env, MOUNT_ATTR_IDMAP));
  exports.Set("mountApiConstants", c);
}

}  // namespace tsgraph
