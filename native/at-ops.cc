// fd-relative file operations for reading content a container controls
// (commit, diff, bundle): Node's fs has no openat, so without these every
// read re-resolves a path, and a running container can swap a checked file
// for a symlink to the host in between. Here every lookup is one component
// relative to a directory fd, never follows a symlink, and metadata is read
// from the fd that was opened, not from a path looked up again.
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <string>
#include <sys/xattr.h>
#include <unistd.h>
#include <vector>

#include "args.h"
#include "errno-error.h"

namespace tsgraph {

namespace {

// A single directory entry name: not empty, no '/', not "." or ".." (so a
// lookup can never leave the directory the fd stands for).
std::string NameArg(const Napi::CallbackInfo& info, size_t i) {
  std::string name = BytesArg(info, i, "name");
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
    throw Napi::TypeError::New(info.Env(), "name must be a single path component");
  }
  return name;
}

// xattrs of what fd stands for. f*xattr refuse O_PATH fds (EBADF), and so
// does getxattrat(fd, "", AT_EMPTY_PATH) on 6.18; the fd's /proc magic link,
// resolved with following, lands on the very inode the fd holds (a symlink's
// own xattrs, measured: not its target's) with no name looked up again.
// An fd argument: a non-negative int (a local name: args.h may grow its own).
int AtFdArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return static_cast<int>(IntArg(info, i, what, 0, 2147483647.0));
}

std::string ProcFd(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

ssize_t GetXattrFd(int fd, const char* name, void* buf, size_t size) {
  ssize_t r = fgetxattr(fd, name, buf, size);
  if (r < 0 && errno == EBADF) return getxattr(ProcFd(fd).c_str(), name, buf, size);
  return r;
}

ssize_t ListXattrFd(int fd, char* buf, size_t size) {
  ssize_t r = flistxattr(fd, buf, size);
  if (r < 0 && errno == EBADF) return listxattr(ProcFd(fd).c_str(), buf, size);
  return r;
}

}  // namespace

// openatNoFollow(dirfd, name, flags) -> fd, read-only. O_NOFOLLOW and O_CLOEXEC
// are always added: a symlink as the name fails with ELOOP (or is opened as
// itself with O_PATH), never followed. The name must also be on dirfd's own
// mount (openat2 RESOLVE_NO_XDEV, EXDEV otherwise): a walk of a container's
// tree never reads a host directory mounted (or propagated) into it.
static Napi::Value OpenatNoFollow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd = AtFdArg(info, 0, "dirfd");
  std::string name = NameArg(info, 1);
  // Reading only: no access mode but O_RDONLY, nothing that creates, truncates
  // or writes (O_CREAT, O_TRUNC, O_TMPFILE, O_WRONLY, O_RDWR, O_APPEND are refused).
  int flags = static_cast<int>(FlagsArg(info, 2, "flags", O_PATH | O_DIRECTORY | O_NONBLOCK | O_NOCTTY | O_NOATIME | O_NOFOLLOW | O_CLOEXEC)) |
              O_NOFOLLOW | O_CLOEXEC;
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = static_cast<uint64_t>(flags);
  how.resolve = RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH;
  int fd = static_cast<int>(syscall(SYS_openat2, dirfd, name.c_str(), &how, sizeof how));
  // Kernels before 5.6 have no openat2: the plain openat (no mount check) is what they get.
  if (fd < 0 && errno == ENOSYS) fd = openat(dirfd, name.c_str(), flags);
  if (fd < 0) ThrowErrno(env, errno, "openat", name);
  return Napi::Number::New(env, fd);
}

// freadlink(fd) -> Buffer: the target of the symlink that O_PATH|O_NOFOLLOW fd
// stands for (readlinkat with an empty name), as raw bytes.
static Napi::Value Freadlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = AtFdArg(info, 0, "fd");
  std::vector<char> buf(256);
  for (int attempt = 0; attempt < 8; attempt++) {  // bounded: 256 << 7 = 32 KiB > PATH_MAX
    ssize_t n = readlinkat(fd, "", buf.data(), buf.size());
    if (n < 0) ThrowErrno(env, errno, "readlinkat");
    if (static_cast<size_t>(n) < buf.size()) return Napi::Buffer<char>::Copy(env, buf.data(), n);
    buf.resize(buf.size() * 2);
  }
  ThrowErrno(env, ENAMETOOLONG, "readlinkat");
}

// Most xattr lists and values are small: one call into a 4 KiB buffer, and
// only on ERANGE ask the size and retry (bounded: the size may keep changing).
template <typename Call>
static ssize_t SizedCall(std::vector<char>& buf, Call call) {
  buf.resize(4096);
  for (int attempt = 0; attempt < 4; attempt++) {
    ssize_t n = call(buf.data(), buf.size());
    if (n >= 0 || errno != ERANGE) return n;
    ssize_t size = call(nullptr, 0);
    if (size < 0) return size;
    buf.resize(static_cast<size_t>(size) + 1);
  }
  errno = ERANGE;
  return -1;
}

// fgetxattr(fd, name) -> Buffer | null (absent). Works on O_PATH fds too.
static Napi::Value Fgetxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = AtFdArg(info, 0, "fd");
  std::string name = BytesArg(info, 1, "xattr name");
  std::vector<char> buf;
  ssize_t n = SizedCall(buf, [&](char* b, size_t size) { return GetXattrFd(fd, name.c_str(), b, size); });
  if (n >= 0) return Napi::Buffer<char>::Copy(env, buf.data(), n);
  if (errno == ENODATA || errno == ENOTSUP) return env.Null();
  ThrowErrno(env, errno, "fgetxattr", "", name);
}

// flistxattr(fd) -> string[]. Works on O_PATH fds too.
static Napi::Value Flistxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = AtFdArg(info, 0, "fd");
  std::vector<char> buf;
  ssize_t n = SizedCall(buf, [&](char* b, size_t size) { return ListXattrFd(fd, b, size); });
  if (n < 0) {
    if (errno == ENOTSUP) return Napi::Array::New(env);
    ThrowErrno(env, errno, "flistxattr");
  }
  Napi::Array out = Napi::Array::New(env);
  uint32_t idx = 0;
  for (ssize_t i = 0; i < n;) {
    // Names are NUL-separated; the last one is NUL-terminated by the kernel.
    size_t len = strnlen(buf.data() + i, n - i);
    if (len) out.Set(idx++, Napi::String::New(env, buf.data() + i, len));
    i += len + 1;
  }
  return out;
}

void InitAtOps(Napi::Env env, Napi::Object exports) {
  exports.Set("openatNoFollow", Napi::Function::New(env, OpenatNoFollow, "openatNoFollow"));
  exports.Set("freadlink", Napi::Function::New(env, Freadlink, "freadlink"));
  exports.Set("fgetxattr", Napi::Function::New(env, Fgetxattr, "fgetxattr"));
  exports.Set("flistxattr", Napi::Function::New(env, Flistxattr, "flistxattr"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("O_PATH", Napi::Number::New(env, O_PATH));
  c.Set("O_DIRECTORY", Napi::Number::New(env, O_DIRECTORY));
  c.Set("O_NONBLOCK", Napi::Number::New(env, O_NONBLOCK));
  c.Set("O_NOCTTY", Napi::Number::New(env, O_NOCTTY));
  c.Set("O_RDONLY", Napi::Number::New(env, O_RDONLY));
  exports.Set("atConstants", c);
}

}  // namespace tsgraph
