// Idmapped mounts: a container in a user namespace sees the image's owners
// without tsgraph chowning a single file. The mount (not the files) carries
// the mapping: open_tree(OPEN_TREE_CLONE) makes a detached copy of a mount,
// mount_setattr(MOUNT_ATTR_IDMAP, userns_fd) makes it show ids through the
// user namespace's maps (a file owned by 0 on disk shows as the host id
// container 0 maps to), move_mount attaches it (vfs/btrfs), or overlay takes
// its layers from it (mount-api.cc).
//
// A user namespace comes from the caller (a path such as /proc/PID/ns/user,
// or an fd) or is made here from uid/gid maps: a child cloned into a new user
// namespace, its /proc/PID/{uid,gid}_map written, its ns file opened, the
// child killed. The namespace lives as long as the returned fd.
//
// Every argument is re-checked here: fds must be user namespace fds
// (NS_GET_NSTYPE), maps must be well-formed and non-overlapping, attribute
// flags known bits only, paths without NUL, relative layer paths without
// "..", and lookups beneath a mount never follow a symlink or leave it.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <linux/nsfs.h>
#include <linux/openat2.h>
#include <sched.h>
#include <string>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>
#include <vector>

#include "args.h"
#include "errno-error.h"
#include "idmap.h"

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

namespace tsgraph {

namespace {

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  int release() {
    int f = fd;
    fd = -1;
    return f;
  }
};

// The MOUNT_ATTR_* bits a caller may add to an idmapped mount.
constexpr uint32_t kAllowedAttrs =
    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NOATIME | MOUNT_ATTR_NODIRATIME;

// The kernel's limits on a uid_map/gid_map write: 340 lines, one page.
constexpr size_t kMaxMapLines = 340;
constexpr size_t kMaxMapBytes = 4095;
constexpr double kMaxId = 4294967294.0;  // (uid_t)-1 is "no id"

struct Extent {
  uint32_t inside, outside, count;
};

// [containerId, hostId, size, …] → extents, refusing anything the kernel
// would refuse (or worse, wrap): sizes of 0, ids past 2^32-2, overlaps.
std::vector<Extent> MapArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsArray()) throw ArgTypeError(env, std::string(what) + " must be an array of numbers");
  Napi::Array a = info[i].As<Napi::Array>();
  uint32_t n = a.Length();
  if (n == 0 || n % 3 != 0 || n / 3 > kMaxMapLines) {
    throw ArgError(Napi::RangeError::New(env, std::string(what) + " must hold 1 to 340 [containerId, hostId, size] triples"),
                   "ERR_OUT_OF_RANGE");
  }
  std::vector<Extent> out;
  for (uint32_t k = 0; k < n; k += 3) {
    double v[3];
    for (uint32_t j = 0; j < 3; j++) {
      Napi::Value x = a.Get(k + j);
      if (!x.IsNumber()) throw ArgTypeError(env, std::string(what) + " must be an array of numbers");
      v[j] = x.As<Napi::Number>().DoubleValue();
      if (!std::isfinite(v[j]) || std::floor(v[j]) != v[j] || v[j] < 0 || v[j] > kMaxId + 1) {
        throw ArgError(Napi::RangeError::New(env, std::string(what) + " holds an id out of range"), "ERR_OUT_OF_RANGE");
      }
    }
    if (v[2] < 1 || v[0] + v[2] - 1 > kMaxId || v[1] + v[2] - 1 > kMaxId) {
      throw ArgError(Napi::RangeError::New(env, std::string(what) + " holds a range out of bounds"), "ERR_OUT_OF_RANGE");
    }
    out.push_back({static_cast<uint32_t>(v[0]), static_cast<uint32_t>(v[1]), static_cast<uint32_t>(v[2])});
  }
  for (size_t x = 0; x < out.size(); x++) {
    for (size_t y = x + 1; y < out.size(); y++) {
      auto overlap = [](uint64_t a0, uint64_t an, uint64_t b0, uint64_t bn) { return a0 < b0 + bn && b0 < a0 + an; };
      if (overlap(out[x].inside, out[x].count, out[y].inside, out[y].count) ||
          overlap(out[x].outside, out[x].count, out[y].outside, out[y].count)) {
        throw ArgError(Napi::RangeError::New(env, std::string(what) + " has overlapping ranges"), "ERR_OUT_OF_RANGE");
      }
    }
  }
  return out;
}

std::string FormatMap(const Napi::Env& env, const std::vector<Extent>& map, const char* what) {
  std::string s;
  for (const Extent& e : map) s += std::to_string(e.inside) + " " + std::to_string(e.outside) + " " + std::to_string(e.count) + "\n";
  if (s.size() > kMaxMapBytes) {
    throw ArgError(Napi::RangeError::New(env, std::string(what) + " is longer than the kernel's one page"), "ERR_OUT_OF_RANGE");
  }
  return s;
}

// One write (the kernel takes a map in a single write only).
int WriteFile(const std::string& path, const std::string& data) {
  Fd f(open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
  if (f.fd < 0) return errno;
  ssize_t w;
  do {
    w = write(f.fd, data.data(), data.size());
  } while (w < 0 && errno == EINTR);
  if (w < 0) return errno;
  if (static_cast<size_t>(w) != data.size()) return EIO;
  return 0;
}


// The short-lived children below (a user namespace from maps; a namespace's
// maps through setns) do nothing but a few syscalls, so they share our
// memory (CLONE_VM, on a stack of their own) instead of copying it: a fork
// of a Node process costs its page tables, measured 0.8 ms at 40 MB RSS and
// 36 ms at 540 MB. Sharing memory, the child must not write anything of
// ours — errno is our thread's TLS — so it calls the kernel directly.
// Elsewhere than x86_64/aarch64 it is a fork (same code, its own copy).
struct ChildJob {
  int holdRd;    // the child waits for EOF here (we are done, or dead)
  int holdWr;    // ours; the child closes its copy
  int statusWr;  // with setnsFd: the child writes one byte, 0 or the errno of setns
  int setnsFd;   // -1: nothing to join
};

#if defined(__x86_64__)
#define TSG_RAW_SYSCALLS 1
static inline long RawSyscall3(long n, long a, long b, long c) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
#define TSG_RAW_SYSCALLS 1
static inline long RawSyscall3(long n, long a, long b, long c) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
  return x0;
}
#else
static inline long RawSyscall3(long n, long a, long b, long c) {
  long r = syscall(n, a, b, c);
  return r < 0 ? -errno : r;  // a forked child: its errno is its own
}
#endif

// Closes every fd of this (copied) fd table from 3 up except `keep` (sorted, distinct).
static void CloseAllBut(const int* keep, int n) {
  long lo = 3;
  for (int i = 0; i < n; i++) {
    if (keep[i] < lo) continue;
    if (keep[i] > lo) RawSyscall3(SYS_close_range, lo, keep[i] - 1, 0);
    lo = keep[i] + 1;
  }
  RawSyscall3(SYS_close_range, lo, ~0U, 0);
}

static int ChildMain(void* arg) {
  const ChildJob* j = static_cast<const ChildJob*>(arg);
  RawSyscall3(SYS_close, j->holdWr, 0, 0);
  if (j->setnsFd >= 0) {
    // Joining a namespace someone else made gives its root (a container's root) ptrace rights
    // over us: this child is a copy (no CLONE_VM, see StartChild), made non-dumpable (ptrace
    // then needs CAP_SYS_PTRACE where our memory was created, the host's namespace) and
    // holding no fd but the three it needs, before it joins.
    RawSyscall3(SYS_prctl, PR_SET_DUMPABLE, 0, 0);
    int keep[3] = {j->holdRd, j->statusWr, j->setnsFd};
    for (int a = 0; a < 3; a++)
      for (int b = a + 1; b < 3; b++)
        if (keep[b] < keep[a]) std::swap(keep[a], keep[b]);
    CloseAllBut(keep, 3);
    long r = RawSyscall3(SYS_setns, j->setnsFd, CLONE_NEWUSER, 0);
    unsigned char code = r == 0 ? 0 : static_cast<unsigned char>(-r > 255 ? 255 : -r);
    while (RawSyscall3(SYS_write, j->statusWr, reinterpret_cast<long>(&code), 1) == -EINTR) {
    }
  }
  char c;
  while (RawSyscall3(SYS_read, j->holdRd, reinterpret_cast<long>(&c), 1) == -EINTR) {
  }
  return 0;
}

constexpr size_t kChildStack = 64 * 1024;

// Starts ChildMain(job) with `nsFlags` (CLONE_NEWUSER or 0), exit signal 0
// (no SIGCHLD for libuv to see), every signal blocked in it (a handler would
// run Node's code); SIGKILL still ends it. Returns the pid, or -errno. The
// caller reaps it (waitpid __WALL) and then frees `stack` (munmap).
static long StartChild(ChildJob* job, int nsFlags, void** stack) {
  *stack = nullptr;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  long pid;
#ifdef TSG_RAW_SYSCALLS
  void* mem = mmap(nullptr, kChildStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (mem == MAP_FAILED) {
    pid = -errno;
  } else {
    *stack = mem;
    // A child that joins another's namespace gets its own copy of our memory (review of issue
    // 10, F2: sharing it let that namespace's root read and write Node's heap); one that only
    // makes a fresh namespace shares it (cheap; nobody else is inside that namespace).
    int vm = job->setnsFd >= 0 ? 0 : CLONE_VM;
    pid = clone(ChildMain, static_cast<char*>(mem) + kChildStack, vm | nsFlags, job);
    if (pid < 0) pid = -errno;
  }
#else
  pid = syscall(SYS_clone, nsFlags, nullptr, nullptr, nullptr, nullptr);
  if (pid == 0) _exit(ChildMain(job));
  if (pid < 0) pid = -errno;
#endif
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return pid;
}

static void ReapChild(long pid, void* stack) {
  kill(static_cast<pid_t>(pid), SIGKILL);
  int status;
  while (waitpid(static_cast<pid_t>(pid), &status, __WALL) < 0 && errno == EINTR) {
  }
  if (stack) munmap(stack, kChildStack);
}

int UsernsFdArg(const Napi::CallbackInfo& info, size_t i) {
  int fd = FdArg(info, i, "usernsFd");
  RequireUsernsFd(info.Env(), fd, "usernsFd");
  return fd;
}

}  // namespace

void RequireUsernsFd(const Napi::Env& env, int fd, const std::string& what) {
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type < 0) {
    int err = errno;
    // ENOTTY: an open fd, but not a namespace file.
    ThrowErrno(env, err == ENOTTY ? EINVAL : err, "ioctl", what, "not a user namespace (NS_GET_NSTYPE)");
  }
  if (type != CLONE_NEWUSER) ThrowErrno(env, EINVAL, "ioctl", what, "a namespace, but not a user namespace");
}

int OpenIdmappedTree(const Napi::Env& env, const std::string& path, int usernsFd, unsigned attrs, bool recursive) {
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW | (recursive ? AT_RECURSIVE : 0);
  Fd tree(static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, path.c_str(), flags)));
  if (tree.fd < 0) ThrowErrno(env, errno, "open_tree", path);
  struct stat st;
  if (fstat(tree.fd, &st) < 0) ThrowErrno(env, errno, "fstat", path);
  if (!S_ISDIR(st.st_mode)) ThrowErrno(env, ENOTDIR, "open_tree", path, "an idmapped mount is made of a directory");
  struct mount_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.attr_set = MOUNT_ATTR_IDMAP | attrs;
  attr.userns_fd = static_cast<uint64_t>(usernsFd);
  if (syscall(SYS_mount_setattr, tree.fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof(attr)) < 0) {
    int err = errno;
    ThrowErrno(env, err, "mount_setattr", path,
               err == EINVAL ? "MOUNT_ATTR_IDMAP refused: the filesystem does not support idmapped mounts, or the user namespace maps nothing"
                             : "");
  }
  return tree.release();
}

int OpenDirBeneath(const Napi::Env& env, int base, const std::string& rel, const std::string& what) {
  if (rel.empty() || rel[0] == '/') throw ArgError(Napi::TypeError::New(env, what + " must be a relative path"), "ERR_INVALID_ARG_VALUE");
  size_t start = 0;
  while (start <= rel.size()) {
    size_t end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    std::string part = rel.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      throw ArgError(Napi::TypeError::New(env, what + " must not hold empty, . or .. components"), "ERR_INVALID_ARG_VALUE");
    }
    start = end + 1;
  }
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  long fd = -1;
  for (int attempt = 0; attempt < 8; attempt++) {  // EAGAIN: a racing rename; EINTR: a signal
    fd = syscall(SYS_openat2, base, rel.c_str(), &how, sizeof(how));
    if (fd >= 0 || (errno != EINTR && errno != EAGAIN)) break;
  }
  if (fd < 0) ThrowErrno(env, errno, "openat2", rel, what);
  return static_cast<int>(fd);
}

// usernsOpen(path) → fd of the user namespace file at `path` (e.g.
// /proc/PID/ns/user), checked to be one. The caller closes it.
static Napi::Value UsernsOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = BytesArg(info, 0, "path");
  // Looked at before it is opened for real: opening a device has side effects (a watchdog
  // arms), so only a file on nsfs is reopened readable, through its O_PATH fd.
  Fd p(open(path.c_str(), O_PATH | O_CLOEXEC));
  if (p.fd < 0) ThrowErrno(env, errno, "open", path);
  struct statfs sfs;
  if (fstatfs(p.fd, &sfs) < 0) ThrowErrno(env, errno, "fstatfs", path);
  if (sfs.f_type != NSFS_MAGIC) ThrowErrno(env, EINVAL, "open", path, "not a namespace file (nsfs)");
  std::string viaFd = "/proc/self/fd/" + std::to_string(p.fd);
  Fd f(open(viaFd.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (f.fd < 0) ThrowErrno(env, errno, "open", path);
  RequireUsernsFd(env, f.fd, path);
  return Napi::Number::New(env, f.release());
}

// usernsCheck(fd): throws unless fd is a user namespace fd.
static Napi::Value UsernsCheck(const Napi::CallbackInfo& info) {
  UsernsFdArg(info, 0);
  return info.Env().Undefined();
}

// usernsCreate(uidMap, gidMap) → fd of a new user namespace with these maps
// ([containerId, hostId, size] triples, flattened). Needs CAP_SETUID and
// CAP_SETGID over the ids mapped (root); EPERM otherwise.
static Napi::Value UsernsCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string uidMap = FormatMap(env, MapArg(info, 0, "uidMap"), "uidMap");
  std::string gidMap = FormatMap(env, MapArg(info, 1, "gidMap"), "gidMap");

  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) ThrowErrno(env, errno, "pipe2");
  Fd rd(pipefd[0]), wr(pipefd[1]);
  ChildJob job{pipefd[0], pipefd[1], -1, -1};
  void* stack = nullptr;
  long pid = StartChild(&job, CLONE_NEWUSER, &stack);
  if (pid < 0) ThrowErrno(env, static_cast<int>(-pid), "clone", "CLONE_NEWUSER");
  auto reap = [&]() {
    close(wr.release());
    ReapChild(pid, stack);
  };
  std::string proc = "/proc/" + std::to_string(pid);
  int err = WriteFile(proc + "/uid_map", uidMap);
  const char* step = "write uid_map";
  if (err == 0) {
    err = WriteFile(proc + "/gid_map", gidMap);
    step = "write gid_map";
  }
  int ns = -1;
  if (err == 0) {
    ns = open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (ns < 0) err = errno;
    step = "open ns/user";
  }
  reap();
  if (err != 0) ThrowErrno(env, err, step, proc);
  Fd nsfd(ns);
  RequireUsernsFd(env, nsfd.fd, proc + "/ns/user");
  return Napi::Number::New(env, nsfd.release());
}

// Parses a uid_map/gid_map file as read from our namespace into flattened
// [inside, outside, count] triples (at most 340 lines, bounded read).
static bool ReadMap(const std::string& path, std::vector<double>& out) {
  Fd f(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (f.fd < 0) return false;
  std::string text;
  char buf[4096];
  for (int i = 0; i < 8; i++) {  // 340 lines of at most 33 bytes fit in 3 reads
    ssize_t n = read(f.fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  size_t pos = 0;
  while (pos < text.size() && out.size() < kMaxMapLines * 3) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    unsigned long a, b, c;
    if (sscanf(text.substr(pos, end - pos).c_str(), "%lu %lu %lu", &a, &b, &c) == 3) {
      out.push_back(static_cast<double>(a));
      out.push_back(static_cast<double>(b));
      out.push_back(static_cast<double>(c));
    }
    pos = end + 1;
  }
  return true;
}

// usernsMaps(usernsFd) → {uidMap, gidMap}: the maps of a user namespace, as
// [containerId, hostId, size] triples relative to ours. A namespace fd does
// not say its maps; a child that joins it (setns) shows them in /proc/PID.
static Napi::Value UsernsMaps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int userns = UsernsFdArg(info, 0);
  int hold[2], status[2];
  if (pipe2(hold, O_CLOEXEC) < 0) ThrowErrno(env, errno, "pipe2");
  Fd holdRd(hold[0]), holdWr(hold[1]);
  if (pipe2(status, O_CLOEXEC) < 0) ThrowErrno(env, errno, "pipe2");
  Fd statusRd(status[0]), statusWr(status[1]);
  ChildJob job{hold[0], hold[1], status[1], userns};
  void* stack = nullptr;
  long pid = StartChild(&job, 0, &stack);
  if (pid < 0) ThrowErrno(env, static_cast<int>(-pid), "clone");
  close(statusWr.release());
  unsigned char code = 0;
  ssize_t got;
  do {
    got = read(statusRd.fd, &code, 1);
  } while (got < 0 && errno == EINTR);
  std::vector<double> uid, gid;
  int err = got == 1 ? code : EIO;
  std::string proc = "/proc/" + std::to_string(pid);
  if (err == 0 && (!ReadMap(proc + "/uid_map", uid) || !ReadMap(proc + "/gid_map", gid))) err = errno ? errno : EIO;
  close(holdWr.release());
  ReapChild(pid, stack);
  if (err != 0) ThrowErrno(env, err, "setns", "usernsFd", "reading the maps of the user namespace");
  Napi::Object out = Napi::Object::New(env);
  Napi::Array u = Napi::Array::New(env, uid.size()), g = Napi::Array::New(env, gid.size());
  for (size_t i = 0; i < uid.size(); i++) u.Set(static_cast<uint32_t>(i), Napi::Number::New(env, uid[i]));
  for (size_t i = 0; i < gid.size(); i++) g.Set(static_cast<uint32_t>(i), Napi::Number::New(env, gid[i]));
  out.Set("uidMap", u);
  out.Set("gidMap", g);
  return out;
}

// idmappedBind(source, target, usernsFd, attrFlags, recursive): a bind mount
// of `source` at `target`, idmapped to the user namespace (with the
// MOUNT_ATTR_* bits in attrFlags: read-only…) in one mount_setattr.
static Napi::Value IdmappedBind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string source = BytesArg(info, 0, "source");
  std::string target = BytesArg(info, 1, "target");
  int userns = UsernsFdArg(info, 2);
  unsigned attrs = FlagsArg(info, 3, "attrFlags", kAllowedAttrs);
  bool recursive = BoolArg(info, 4, "recursive");
  Fd tree(OpenIdmappedTree(env, source, userns, attrs, recursive));
  if (syscall(SYS_move_mount, tree.fd, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0) {
    ThrowErrno(env, errno, "move_mount", target);
  }
  return env.Undefined();
}

// idmapProbe(path, usernsFd) → undefined when an idmapped clone of the mount
// at `path` can be made (nothing is attached), else throws the kernel's refusal.
static Napi::Value IdmapProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = BytesArg(info, 0, "path");
  int userns = UsernsFdArg(info, 1);
  Fd tree(OpenIdmappedTree(env, path, userns, 0, false));
  return env.Undefined();
}

void InitIdmap(Napi::Env env, Napi::Object exports) {
  exports.Set("usernsOpen", Napi::Function::New(env, UsernsOpen, "usernsOpen"));
  exports.Set("usernsCheck", Napi::Function::New(env, UsernsCheck, "usernsCheck"));
  exports.Set("usernsCreate", Napi::Function::New(env, UsernsCreate, "usernsCreate"));
  exports.Set("usernsMaps", Napi::Function::New(env, UsernsMaps, "usernsMaps"));
  exports.Set("idmappedBind", Napi::Function::New(env, IdmappedBind, "idmappedBind"));
  exports.Set("idmapProbe", Napi::Function::New(env, IdmapProbe, "idmapProbe"));
}

}  // namespace tsgraph
