// Batched layer extraction: one call applies a list of create operations
// (regular file with its content, directory, symlink, metadata of an existing
// directory, times) below a layer root, in order, on a libuv pool thread, and
// returns a promise. The JavaScript applier decides what to create (its model
// of the tree, whiteouts, hardlinks, xattrs, big and sparse files stay there);
// this file only does the syscalls, but re-checks everything it is handed, as
// if JavaScript were hostile:
//  - every path is relative, NUL-free, bounded, with no empty, "." or ".."
//    component; every integer is in its C type's range; every data range lies
//    inside the Buffer handed in;
//  - everything is resolved from the root's fd with openat2(RESOLVE_BENEATH |
//    RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): a symlink anywhere on the
//    way (even one swapped in by someone else between two batches) fails the
//    op with ELOOP instead of being followed, and nothing lands outside the
//    root. Files are created O_CREAT|O_EXCL|O_NOFOLLOW; directories, symlinks
//    and times act on a basename relative to a parent fd opened that way;
//  - the ops and names are copied and checked on the main thread before the
//    work is queued (JavaScript changing them later changes nothing); the data
//    Buffer is referenced until the work completes; the root fd is dup'ed, so
//    the batch holds its own.
// Order per op as the applier's: content, owner, mode (chown clears setuid),
// times. The first failing op stops the batch; the promise rejects with an
// errno-shaped Error (code, errno, syscall, path) plus `opIndex`.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

#include "args.h"
#include "errno-error.h"

namespace tsgraph {

namespace {

// One op = kFields doubles in a Float64Array (cheap to hand over, every field range-checked).
enum Field {
  fKind, fPathOff, fPathLen, fLinkOff, fLinkLen, fDataOff, fDataLen,
  fCreateMode, fFlags, fMode, fUid, fGid, fSec, fNsec, kFields
};
enum Kind { kFile = 1, kMkdir = 2, kDirMeta = 3, kSymlink = 4, kTimes = 5 };
enum Flag { kOwner = 1, kSetMode = 2, kSetTimes = 4 };
constexpr size_t kMaxOps = 1 << 16;
constexpr size_t kMaxPath = 4095;  // PATH_MAX with its NUL
constexpr size_t kMaxComponent = 255;
constexpr double kMaxId = 4294967294.0;  // (uid_t)-1 means "no change" to chown: refused
constexpr double kMaxSeconds = 8.64e12;  // what a JS Date holds
constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

struct Op {
  int kind = 0;
  std::string path;
  std::string link;
  size_t dataOff = 0, dataLen = 0;
  mode_t createMode = 0, mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  unsigned flags = 0;
  struct timespec mtime = {0, 0};
};

Napi::Error OpError(const Napi::Env& env, size_t i, const std::string& what, bool range) {
  std::string message = "applyBatch op " + std::to_string(i) + ": " + what;
  if (range) return ArgError(Napi::RangeError::New(env, message), "ERR_OUT_OF_RANGE");
  return ArgError(Napi::TypeError::New(env, message), "ERR_INVALID_ARG_VALUE");
}

double FieldIn(const Napi::Env& env, const double* f, size_t i, int field, const char* name, double lo, double hi) {
  double v = f[field];
  if (!std::isfinite(v) || std::floor(v) != v || v < lo || v > hi) throw OpError(env, i, std::string(name) + " is out of range", true);
  return v;
}

// A clean relative path: what cleanEntryPath (src/layer/paths.ts) produces.
void CheckRel(const Napi::Env& env, size_t i, const std::string& p) {
  if (p.empty() || p.size() > kMaxPath) throw OpError(env, i, "path is empty or longer than 4095 bytes", false);
  if (p.find('\0') != std::string::npos) throw OpError(env, i, "path contains a NUL byte", false);
  if (p[0] == '/') throw OpError(env, i, "path is absolute", false);
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    size_t len = end - start;
    if (len == 0) throw OpError(env, i, "path has an empty component", false);
    if (len > kMaxComponent) throw OpError(env, i, "path has a component over 255 bytes", false);
    if ((len == 1 && p[start] == '.') || (len == 2 && p[start] == '.' && p[start + 1] == '.')) {
      throw OpError(env, i, "path has a \".\" or \"..\" component", false);
    }
    start = end + 1;
  }
}

// A byte range [off, off+len) of a buffer of `size` bytes, as a string.
std::string Slice(const Napi::Env& env, size_t i, const char* what, const char* base, size_t size, double off, double len) {
  if (off > static_cast<double>(size) || len > static_cast<double>(size) - off) {
    throw OpError(env, i, std::string(what) + " range is outside the names buffer", true);
  }
  return std::string(base + static_cast<size_t>(off), static_cast<size_t>(len));
}

Op ParseOp(const Napi::Env& env, size_t i, const double* f, const char* names, size_t namesLen, size_t dataLen) {
  Op op;
  op.kind = static_cast<int>(FieldIn(env, f, i, fKind, "kind", kFile, kTimes));
  op.path = Slice(env, i, "path", names, namesLen, FieldIn(env, f, i, fPathOff, "path offset", 0, 9007199254740991.0),
                  FieldIn(env, f, i, fPathLen, "path length", 0, 9007199254740991.0));
  CheckRel(env, i, op.path);
  op.flags = static_cast<unsigned>(FieldIn(env, f, i, fFlags, "flags", 0, kOwner | kSetMode | kSetTimes));
  op.createMode = static_cast<mode_t>(FieldIn(env, f, i, fCreateMode, "create mode", 0, 0777));
  op.mode = static_cast<mode_t>(FieldIn(env, f, i, fMode, "mode", 0, 07777));
  op.uid = static_cast<uid_t>(FieldIn(env, f, i, fUid, "uid", 0, kMaxId));
  op.gid = static_cast<gid_t>(FieldIn(env, f, i, fGid, "gid", 0, kMaxId));
  op.mtime.tv_sec = static_cast<time_t>(FieldIn(env, f, i, fSec, "mtime seconds", -kMaxSeconds, kMaxSeconds));
  op.mtime.tv_nsec = static_cast<long>(FieldIn(env, f, i, fNsec, "mtime nanoseconds", 0, 999999999));
  double linkOff = FieldIn(env, f, i, fLinkOff, "link offset", 0, 9007199254740991.0);
  double linkLen = FieldIn(env, f, i, fLinkLen, "link length", 0, 9007199254740991.0);
  double dataOff = FieldIn(env, f, i, fDataOff, "data offset", 0, 9007199254740991.0);
  double dLen = FieldIn(env, f, i, fDataLen, "data length", 0, 9007199254740991.0);
  if (op.kind == kSymlink) {
    op.link = Slice(env, i, "link", names, namesLen, linkOff, linkLen);
    if (op.link.empty() || op.link.size() > kMaxPath || op.link.find('\0') != std::string::npos) {
      throw OpError(env, i, "symlink target is empty, over 4095 bytes or holds a NUL", false);
    }
    if (op.flags & kSetMode) throw OpError(env, i, "a symlink has no mode to set", false);
  } else if (linkLen != 0) {
    throw OpError(env, i, "only a symlink has a link target", false);
  }
  if (op.kind == kFile) {
    if (dataOff > static_cast<double>(dataLen) || dLen > static_cast<double>(dataLen) - dataOff) {
      throw OpError(env, i, "data range is outside the data buffer", true);
    }
    op.dataOff = static_cast<size_t>(dataOff);
    op.dataLen = static_cast<size_t>(dLen);
  } else if (dLen != 0) {
    throw OpError(env, i, "only a file has data", false);
  }
  if (op.kind == kTimes && op.flags != kSetTimes) throw OpError(env, i, "a times op sets times only", false);
  return op;
}

int Openat2(int dirfd, const char* path, uint64_t flags, uint64_t mode) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = flags;
  how.mode = mode;
  how.resolve = kResolve;
  for (int attempt = 0; attempt < 8; attempt++) {  // EAGAIN: a racing rename; EINTR: a signal
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    if (fd >= 0 || (errno != EINTR && errno != EAGAIN)) return static_cast<int>(fd);
  }
  return -1;
}

class BatchWorker : public Napi::AsyncWorker {
 public:
  // The content is copied: a reference keeps the Buffer object alive, not its
  // backing store, which JavaScript can detach (a transfer) and free while the
  // pool thread reads it. At most a batch's bytes (4 MiB) per call.
  BatchWorker(Napi::Env env, int rootFd, std::vector<Op>&& ops, const char* data, size_t used)
      : Napi::AsyncWorker(env, "tsgraph.applyBatch"),
        deferred_(Napi::Promise::Deferred::New(env)),
        root_(rootFd),
        ops_(std::move(ops)),
        data_(data, data + used),
        base_(data_.data()) {}

  ~BatchWorker() override {
    if (root_ >= 0) close(root_);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    for (size_t i = 0; i < ops_.size(); i++) {
      if (!Run(ops_[i])) {
        failed_ = i;
        return;
      }
      done_++;
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ == 0) {
      deferred_.Resolve(Napi::Number::New(env, static_cast<double>(done_)));
      return;
    }
    try {
      ThrowErrno(env, err_, syscall_, ops_[failed_].path);
    } catch (const Napi::Error& e) {
      Napi::Object error = e.Value();
      error.Set("opIndex", Napi::Number::New(env, static_cast<double>(failed_)));
      error.Set("completed", Napi::Number::New(env, static_cast<double>(done_)));
      deferred_.Reject(error);
    }
  }

 private:
  bool Fail(const char* syscall) {
    err_ = errno ? errno : EIO;
    syscall_ = syscall;
    return false;
  }

  // The parent directory of `path`, opened O_PATH beneath the root without
  // following any symlink; `base` gets the last component. Returns the root
  // itself for a top-level name (nothing to close then).
  int OpenParent(const std::string& path, std::string& base) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos) {
      base = path;
      return root_;
    }
    base = path.substr(slash + 1);
    return Openat2(root_, path.substr(0, slash).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
  }

  void CloseParent(int fd) {
    if (fd >= 0 && fd != root_) close(fd);
  }

  // Owner, then mode, then times, on an fd that is the created inode.
  bool Meta(int fd, const Op& op) {
    if ((op.flags & kOwner) && fchown(fd, op.uid, op.gid) != 0) return Fail("fchown");
    if ((op.flags & kSetMode) && fchmod(fd, op.mode) != 0) return Fail("fchmod");
    struct timespec ts[2] = {op.mtime, op.mtime};
    if ((op.flags & kSetTimes) && futimens(fd, ts) != 0) return Fail("futimens");
    return true;
  }

  bool WriteAll(int fd, const char* p, size_t left) {
    while (left > 0) {
      ssize_t n = write(fd, p, left > (1u << 30) ? (1u << 30) : left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Fail("write");
      }
      if (n == 0) {
        errno = EIO;
        return Fail("write");
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    return true;
  }

  bool File(const Op& op) {
    int fd = Openat2(root_, op.path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return Fail("openat2");
    bool ok = WriteAll(fd, base_ + op.dataOff, op.dataLen) && Meta(fd, op);
    int saved = errno;
    if (close(fd) != 0 && ok && errno != EINTR) return Fail("close");
    errno = saved;
    return ok;
  }

  // mkdir (or an existing directory: kDirMeta), then owner/mode/times through
  // an fd opened O_NOFOLLOW|O_DIRECTORY on the basename.
  bool Dir(const Op& op) {
    std::string base;
    int pfd = OpenParent(op.path, base);
    if (pfd < 0) return Fail("openat2");
    bool ok = true;
    if (op.kind == kMkdir && mkdirat(pfd, base.c_str(), op.createMode) != 0) ok = Fail("mkdirat");
    if (ok && op.flags) {
      int fd = openat(pfd, base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        ok = Fail("openat");
      } else {
        ok = Meta(fd, op);
        close(fd);
      }
    }
    CloseParent(pfd);
    return ok;
  }

  bool Symlink(const Op& op) {
    std::string base;
    int pfd = OpenParent(op.path, base);
    if (pfd < 0) return Fail("openat2");
    struct timespec ts[2] = {op.mtime, op.mtime};
    bool ok = true;
    if (symlinkat(op.link.c_str(), pfd, base.c_str()) != 0) ok = Fail("symlinkat");
    if (ok && (op.flags & kOwner) && fchownat(pfd, base.c_str(), op.uid, op.gid, AT_SYMLINK_NOFOLLOW) != 0) ok = Fail("fchownat");
    if (ok && (op.flags & kSetTimes) && utimensat(pfd, base.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) ok = Fail("utimensat");
    CloseParent(pfd);
    return ok;
  }

  bool Times(const Op& op) {
    std::string base;
    int pfd = OpenParent(op.path, base);
    if (pfd < 0) return Fail("openat2");
    struct timespec ts[2] = {op.mtime, op.mtime};
    bool ok = utimensat(pfd, base.c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0 || Fail("utimensat");
    CloseParent(pfd);
    return ok;
  }

  bool Run(const Op& op) {
    errno = 0;
    switch (op.kind) {
      case kFile: return File(op);
      case kMkdir:
      case kDirMeta: return Dir(op);
      case kSymlink: return Symlink(op);
      case kTimes: return Times(op);
    }
    errno = EINVAL;
    return Fail("applyBatch");
  }

  Napi::Promise::Deferred deferred_;
  int root_;
  std::vector<Op> ops_;
  std::vector<char> data_;  // our own copy of the bytes the ops write
  const char* base_;
  size_t done_ = 0;
  size_t failed_ = 0;
  int err_ = 0;
  const char* syscall_ = "";
};

// applyBatch(rootFd, ops: Float64Array, names: Buffer, data: Buffer) -> Promise<number of ops done>
Napi::Value ApplyBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int rootArg = FdArg(info, 0, "rootFd");
  if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throw ArgTypeError(env, "ops must be a Float64Array");
  }
  if (info.Length() < 3 || !info[2].IsBuffer()) throw ArgTypeError(env, "names must be a Buffer");
  if (info.Length() < 4 || !info[3].IsBuffer()) throw ArgTypeError(env, "data must be a Buffer");
  Napi::Float64Array arr = info[1].As<Napi::Float64Array>();
  Napi::Buffer<char> names = info[2].As<Napi::Buffer<char>>();
  Napi::Buffer<char> data = info[3].As<Napi::Buffer<char>>();
  size_t count = arr.ElementLength() / kFields;
  if (arr.ElementLength() % kFields != 0 || count > kMaxOps) {
    throw ArgError(Napi::RangeError::New(env, "ops must hold whole ops, at most 65536"), "ERR_OUT_OF_RANGE");
  }
  std::vector<Op> ops;
  ops.reserve(count);
  const double* fields = arr.Data();
  for (size_t i = 0; i < count; i++) ops.push_back(ParseOp(env, i, fields + i * kFields, names.Data(), names.Length(), data.Length()));

  int root = fcntl(rootArg, F_DUPFD_CLOEXEC, 0);
  if (root < 0) ThrowErrno(env, errno, "fcntl");
  struct stat st;
  int err = fstat(root, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
  if (err != 0) {
    close(root);
    ThrowErrno(env, err, "fstat", "", "rootFd must be a directory");
  }
  size_t used = 0;  // ParseOp checked every range against data.Length()
  for (const Op& op : ops) used = std::max(used, static_cast<size_t>(op.dataOff + op.dataLen));
  auto* worker = new BatchWorker(env, root, std::move(ops), data.Data(), used);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// Whether this kernel has openat2 (Linux >= 5.6); without it JavaScript keeps the synchronous path.
Napi::Value ApplyBatchSupported(const Napi::CallbackInfo& info) {
  int fd = Openat2(AT_FDCWD, "/", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd >= 0) close(fd);
  // RESOLVE_BENEATH refuses the absolute "/" (EXDEV): the call itself exists.
  return Napi::Boolean::New(info.Env(), fd >= 0 || errno != ENOSYS);
}

}  // namespace

void InitApplyBatch(Napi::Env env, Napi::Object exports) {
  exports.Set("applyBatch", Napi::Function::New(env, ApplyBatch, "applyBatch"));
  exports.Set("applyBatchSupported", Napi::Function::New(env, ApplyBatchSupported, "applyBatchSupported"));
  Napi::Object c = Napi::Object::New(env);
  const char* fieldNames[] = {"KIND", "PATH_OFF", "PATH_LEN", "LINK_OFF", "LINK_LEN", "DATA_OFF", "DATA_LEN",
                              "CREATE_MODE", "FLAGS", "MODE", "UID", "GID", "SEC", "NSEC"};
  for (int i = 0; i < kFields; i++) c.Set(fieldNames[i], Napi::Number::New(env, i));
  c.Set("FIELDS", Napi::Number::New(env, kFields));
  c.Set("FILE", Napi::Number::New(env, kFile));
  c.Set("MKDIR", Napi::Number::New(env, kMkdir));
  c.Set("DIR_META", Napi::Number::New(env, kDirMeta));
  c.Set("SYMLINK", Napi::Number::New(env, kSymlink));
  c.Set("TIMES", Napi::Number::New(env, kTimes));
  c.Set("OWNER", Napi::Number::New(env, kOwner));
  c.Set("SET_MODE", Napi::Number::New(env, kSetMode));
  c.Set("SET_TIMES", Napi::Number::New(env, kSetTimes));
  c.Set("MAX_OPS", Napi::Number::New(env, static_cast<double>(kMaxOps)));
  exports.Set("applyBatchConstants", c);
}

}  // namespace tsgraph
