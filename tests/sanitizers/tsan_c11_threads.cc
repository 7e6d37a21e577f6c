// TSan builds only (-DCXPULSE_SANITIZE=thread; see CMakeLists.txt): C11
// <threads.h> on top of POSIX threads, linked into every executable.
//
// Why: Debian's librdkafka creates its threads and takes its locks through
// glibc's C11 API (thrd_create, mtx_lock, cnd_wait, call_once). glibc
// implements those by calling its pthread functions internally, past the
// symbols TSan intercepts, and GCC 12's TSan runtime has no C11 interceptors
// of its own. So TSan never learns of librdkafka's threads (the first malloc
// on one crashes inside the TSan allocator: "SEGV on unknown address 0xc38")
// and never sees its locks (every hand-off through a librdkafka queue would
// look like a race). Defining the C11 functions in the executable interposes
// them for librdkafka, and each one here calls the public pthread function,
// which TSan does intercept. glibc's C11 types are its pthread types
// (thrd_t is pthread_t; mtx_t, cnd_t and once_flag have the layout of
// pthread_mutex_t, pthread_cond_t and pthread_once_t), as glibc's own
// implementation assumes.
//
// This is not cxpulse code and nothing else links it.
#include <errno.h>
#include <pthread.h>
#include <threads.h>

#include <cstdint>
#include <cstdlib>

namespace {

int FromErrno(int err) {
  switch (err) {
    case 0: return thrd_success;
    case EBUSY: return thrd_busy;
    case ETIMEDOUT: return thrd_timedout;
    case ENOMEM:
    case EAGAIN: return thrd_nomem;
    default: return thrd_error;
  }
}

pthread_mutex_t* AsMutex(mtx_t* m) { return reinterpret_cast<pthread_mutex_t*>(m); }
pthread_cond_t* AsCond(cnd_t* c) { return reinterpret_cast<pthread_cond_t*>(c); }

struct Start {
  thrd_start_t func;
  void* arg;
};

void* Trampoline(void* p) {
  const Start start = *static_cast<Start*>(p);
  std::free(p);
  return reinterpret_cast<void*>(static_cast<intptr_t>(start.func(start.arg)));
}

static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t));
static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t));
static_assert(sizeof(once_flag) == sizeof(pthread_once_t));
static_assert(sizeof(thrd_t) == sizeof(pthread_t));

}  // namespace

extern "C" {

int thrd_create(thrd_t* thr, thrd_start_t func, void* arg) {
  auto* start = static_cast<Start*>(std::malloc(sizeof(Start)));
  if (start == nullptr) return thrd_nomem;
  *start = Start{func, arg};
  const int err = pthread_create(thr, nullptr, &Trampoline, start);
  if (err != 0) std::free(start);
  return FromErrno(err);
}

int thrd_join(thrd_t thr, int* res) {
  void* value = nullptr;
  const int err = pthread_join(thr, &value);
  if (err == 0 && res != nullptr) *res = static_cast<int>(reinterpret_cast<intptr_t>(value));
  return FromErrno(err);
}

int thrd_detach(thrd_t thr) { return FromErrno(pthread_detach(thr)); }

int mtx_init(mtx_t* m, int type) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_settype(&attr, (type & mtx_recursive) ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_NORMAL);
  const int err = pthread_mutex_init(AsMutex(m), &attr);
  pthread_mutexattr_destroy(&attr);
  return FromErrno(err);
}
int mtx_lock(mtx_t* m) { return FromErrno(pthread_mutex_lock(AsMutex(m))); }
int mtx_trylock(mtx_t* m) { return FromErrno(pthread_mutex_trylock(AsMutex(m))); }
int mtx_timedlock(mtx_t* __restrict m, const struct timespec* __restrict deadline) {
  return FromErrno(pthread_mutex_timedlock(AsMutex(m), deadline));
}
int mtx_unlock(mtx_t* m) { return FromErrno(pthread_mutex_unlock(AsMutex(m))); }
void mtx_destroy(mtx_t* m) { pthread_mutex_destroy(AsMutex(m)); }

int cnd_init(cnd_t* c) { return FromErrno(pthread_cond_init(AsCond(c), nullptr)); }
int cnd_signal(cnd_t* c) { return FromErrno(pthread_cond_signal(AsCond(c))); }
int cnd_broadcast(cnd_t* c) { return FromErrno(pthread_cond_broadcast(AsCond(c))); }
int cnd_wait(cnd_t* c, mtx_t* m) { return FromErrno(pthread_cond_wait(AsCond(c), AsMutex(m))); }
int cnd_timedwait(cnd_t* __restrict c, mtx_t* __restrict m, const struct timespec* __restrict deadline) {
  return FromErrno(pthread_cond_timedwait(AsCond(c), AsMutex(m), deadline));
}
void cnd_destroy(cnd_t* c) { pthread_cond_destroy(AsCond(c)); }

void call_once(once_flag* flag, void (*func)(void)) { pthread_once(reinterpret_cast<pthread_once_t*>(flag), func); }

}  // extern "C"
