// File operations Node's fs lacks: mknod (devices, fifos, overlay whiteouts
// as char 0/0), the l*xattr family (never following symlinks: an image's
// symlink must not redirect metadata writes), and renameat2 flags.
#include <cerrno>
#include <fcntl.h>
#include <stdio.h>
#include <string>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <vector>

#include "args.h"
#include "errno-error.h"

namespace tsgraph {

// mknod(path, mode, major, minor): mode includes the S_IF* type bits.
static Napi::Value Mknod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = BytesArg(info, 0, "path");
  mode_t mode = U32Arg(info, 1, "mode");
  if (mode & ~static_cast<mode_t>(S_IFMT | 07777)) throw ArgError(Napi::RangeError::New(env, "mode has bits outside S_IFMT|07777"), "ERR_OUT_OF_RANGE");
  // makedev keeps 12 bits of major and 20 of minor; anything wider would be
  // truncated into another device (possibly 0/0), so refuse it.
  uint32_t major = U32Arg(info, 2, "major"), minor = U32Arg(info, 3, "minor");
  if (major > 0xfff || minor > 0xfffff) throw ArgError(Napi::RangeError::New(env, "device number out of range"), "ERR_OUT_OF_RANGE");
  dev_t dev = makedev(major, minor);
  if (mknod(path.c_str(), mode, dev) != 0) ThrowErrno(env, errno, "mknod", path);
  return env.Undefined();
}

// lgetxattr(path, name) -> Buffer | null (when the attribute is absent)
static Napi::Value Lgetxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = BytesArg(info, 0, "path"), name = BytesArg(info, 1, "xattr name");
  for (int attempt = 0; attempt < 4; attempt++) {  // bounded: size may change between calls
    ssize_t size = lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (size < 0) {
      if (errno == ENODATA) return env.Null();
      ThrowErrno(env, errno, "lgetxattr", path, name);
    }
    std::vector<char> buf(size > 0 ? size : 1);
    ssize_t n = lgetxattr(path.c_str(), name.c_str(), buf.data(), buf.size());
    if (n >= 0) return Napi::Buffer<char>::Copy(env, buf.data(), n);
    if (errno != ERANGE) {
      if (errno == ENODATA) return env.Null();
      ThrowErrno(env, errno, "lgetxattr", path, name);
    }
  }
  ThrowErrno(env, ERANGE, "lgetxattr", path, name);
}

// lsetxattr(path, name, value: Buffer, flags)
static Napi::Value Lsetxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = BytesArg(info, 0, "path"), name = BytesArg(info, 1, "xattr name");
  if (info.Length() < 3 || !info[2].IsBuffer()) throw ArgTypeError(env, "xattr value must be a Buffer");
  Napi::Buffer<char> value = info[2].As<Napi::Buffer<char>>();
  int flags = info.Length() > 3 ? static_cast<int>(FlagsArg(info, 3, "flags", XATTR_CREATE | XATTR_REPLACE)) : 0;
  if (lsetxattr(path.c_str(), name.c_str(), value.Data(), value.Length(), flags) != 0) ThrowErrno(env, errno, "lsetxattr", path, name);
  return env.Undefined();
}

// llistxattr(path) -> string[]
static Napi::Value Llistxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = BytesArg(info, 0, "path");
  for (int attempt = 0; attempt < 4; attempt++) {
    ssize_t size = llistxattr(path.c_str(), nullptr, 0);
    if (size < 0) {
      if (errno == ENOTSUP) return Napi::Array::New(env);
      ThrowErrno(env, errno, "llistxattr", path);
    }
    std::vector<char> buf(size > 0 ? size : 1);
    ssize_t n = llistxattr(path.c_str(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == ERANGE) continue;
      ThrowErrno(env, errno, "llistxattr", path);
    }
    Napi::Array out = Napi::Array::New(env);
    uint32_t idx = 0;
    for (ssize_t i = 0; i < n;) {
      std::string name(buf.data() + i);
      if (!name.empty()) out.Set(idx++, Napi::String::New(env, name));
      i += name.size() + 1;
    }
    return out;
  }
  ThrowErrno(env, ERANGE, "llistxattr", path);
}

static Napi::Value Lremovexattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = BytesArg(info, 0, "path"), name = BytesArg(info, 1, "xattr name");
  if (lremovexattr(path.c_str(), name.c_str()) != 0 && errno != ENODATA) ThrowErrno(env, errno, "lremovexattr", path, name);
  return env.Undefined();
}

// renameat2(oldPath, newPath, flags) relative to the cwd (absolute paths expected).
static Napi::Value Renameat2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string from = BytesArg(info, 0, "from"), to = BytesArg(info, 1, "to");
  unsigned flags = FlagsArg(info, 2, "flags", RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT);
  if (renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags) != 0) ThrowErrno(env, errno, "renameat2", from, to);
  return env.Undefined();
}

void InitFsOps(Napi::Env env, Napi::Object exports) {
  exports.Set("mknod", Napi::Function::New(env, Mknod, "mknod"));
  exports.Set("lgetxattr", Napi::Function::New(env, Lgetxattr, "lgetxattr"));
  exports.Set("lsetxattr", Napi::Function::New(env, Lsetxattr, "lsetxattr"));
  exports.Set("llistxattr", Napi::Function::New(env, Llistxattr, "llistxattr"));
  exports.Set("lremovexattr", Napi::Function::New(env, Lremovexattr, "lremovexattr"));
  exports.Set("renameat2", Napi::Function::New(env, Renameat2, "renameat2"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("S_IFCHR", Napi::Number::New(env, S_IFCHR));
  c.Set("S_IFBLK", Napi::Number::New(env, S_IFBLK));
  c.Set("S_IFIFO", Napi::Number::New(env, S_IFIFO));
  c.Set("XATTR_CREATE", Napi::Number::New(env, XATTR_CREATE));
  c.Set("XATTR_REPLACE", Napi::Number::New(env, XATTR_REPLACE));
  c.Set("RENAME_NOREPLACE", Napi::Number::New(env, RENAME_NOREPLACE));
  c.Set("RENAME_EXCHANGE", Napi::Number::New(env, RENAME_EXCHANGE));
  c.Set("RENAME_WHITEOUT", Napi::Number::New(env, RENAME_WHITEOUT));
  exports.Set("fsConstants", c);
}

}  // namespace tsgraph
