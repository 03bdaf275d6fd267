// A last-resort exit for SIGINT/SIGTERM. Node runs signal listeners on the
// main thread's event loop, so while JavaScript is inside a long synchronous
// call (a big tree copy, a blocking wait) a signal is queued and nothing
// happens: Ctrl-C and SIGTERM look ignored. armSignalWatchdog(graceMs) wraps
// the handler libuv installed for JavaScript's listeners: the wrapper
// records the signal and posts a semaphore (both async-signal-safe), then
// calls libuv's handler as before. A helper thread wakes on the semaphore,
// sleeps graceMs, and if the process is still alive calls _exit(128 + sig).
// The store tolerates that exactly as it tolerates SIGKILL (flocks drop,
// partial work is repaired at the next open); JavaScript normally exits
// first, on its own, well inside the grace time.
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "errno-error.h"

namespace tsgraph {

static sem_t g_sem;
static std::atomic<int> g_signal{0};
static std::atomic<long> g_grace_ms{1800};
static struct sigaction g_old_int, g_old_term;
static bool g_armed = false;

static void Chain(const struct sigaction& old, int sig, siginfo_t* info, void* ctx) {
  if (old.sa_flags & SA_SIGINFO) {
    if (old.sa_sigaction) old.sa_sigaction(sig, info, ctx);
  } else if (old.sa_handler == SIG_DFL) {
    _exit(128 + sig);  // nobody was listening: the default action is to die
  } else if (old.sa_handler != SIG_IGN && old.sa_handler) {
    old.sa_handler(sig);
  }
}

static void OnSignal(int sig, siginfo_t* info, void* ctx) {
  int saved = errno;
  int expected = 0;
  if (g_signal.compare_exchange_strong(expected, sig)) sem_post(&g_sem);
  Chain(sig == SIGINT ? g_old_int : g_old_term, sig, info, ctx);
  errno = saved;
}

static void* Watchdog(void*) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);  // signals go to Node's threads, not this one
  while (sem_wait(&g_sem) != 0) {
    if (errno != EINTR) return nullptr;
  }
  long ms = g_grace_ms.load();
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  _exit(128 + g_signal.load());
}

// armSignalWatchdog(graceMs): call after process.on('SIGINT'/'SIGTERM') so
// libuv's handlers exist to chain to. Idempotent; later calls update graceMs.
static Napi::Value Arm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  g_grace_ms.store(static_cast<long>(IntArg(info, 0, "graceMs", 100, 60000)));
  if (g_armed) return env.Undefined();
  if (sem_init(&g_sem, 0, 0) != 0) ThrowErrno(env, errno, "sem_init");
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnSignal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, &g_old_int) != 0) ThrowErrno(env, errno, "sigaction", "SIGINT");
  if (sigaction(SIGTERM, &sa, &g_old_term) != 0) {
    int err = errno;
    sigaction(SIGINT, &g_old_int, nullptr);
    ThrowErrno(env, err, "sigaction", "SIGTERM");
  }
  pthread_t thread;
  int rc = pthread_create(&thread, nullptr, Watchdog, nullptr);
  if (rc != 0) {
    sigaction(SIGINT, &g_old_int, nullptr);
    sigaction(SIGTERM, &g_old_term, nullptr);
    ThrowErrno(env, rc, "pthread_create");
  }
  pthread_detach(thread);
  g_armed = true;
  return env.Undefined();
}

void InitSignalWatchdog(Napi::Env env, Napi::Object exports) {
  exports.Set("armSignalWatchdog", Napi::Function::New(env, Arm, "armSignalWatchdog"));
}

}  // namespace tsgraph
