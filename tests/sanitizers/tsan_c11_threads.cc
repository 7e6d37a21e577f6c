// TSan builds only (-DCXPULSE_SANITIZE=thread; see CMakeLists.txt): makes
// librdkafka's threads and locks visible to ThreadSanitizer. Compiled into
// every executable that links cxpulse_core; not cxpulse code.
//
// Debian's librdkafka is not instrumented, so TSan sees none of its own
// loads, stores or atomics; it sees only the libc functions it calls. Two
// problems follow, both fixed by defining functions here, in the executable,
// where they interpose glibc's for librdkafka:
//
// 1. librdkafka starts its threads with glibc's C11 thrd_create, which calls
//    glibc's pthread_create internally, past the symbol TSan intercepts (GCC
//    12's TSan runtime has no C11 interceptors). TSan has no state for those
//    threads, and the first malloc on one crashes inside the TSan allocator:
//    "ThreadSanitizer: SEGV on unknown address 0x000000000c38" in
//    SizeClassAllocator64LocalCache::Allocate on thread "rdk:mock"/"rdk:main".
//    thrd_create/thrd_join here call the public pthread functions instead.
//
// 2. Its C11 locks (mtx_*, cnd_*, call_once) are invisible for the same
//    reason, and tsan.supp's called_from_lib (needed for the frees it orders
//    by reference counts TSan cannot see) would hide its pthread_rwlock_*
//    calls too. Without them TSan misses the hand-off of every message
//    through a librdkafka queue and reports the consumer of a payload
//    (decompressed by liblz4 on a broker thread, parsed on a shard thread) as
//    racing with its producer. The lock and wait operations here forward to
//    TSan's interceptors, called from this file (so not from an ignored
//    library): the happens-before they give is real.
//
//    Initialisation and destruction of those locks are left to glibc, unseen:
//    librdkafka orders them by reference counts, which TSan cannot see, so it
//    would report a lock destroyed on one thread "racing" with its last use
//    on another.
//
// glibc's C11 types are its pthread types (thrd_t is pthread_t; mtx_t, cnd_t,
// once_flag have the layout of pthread_mutex_t, pthread_cond_t,
// pthread_once_t), which glibc's own implementation relies on.
#include <errno.h>
#include <pthread.h>
#include <threads.h>
#include <time.h>

#include <cstdint>
#include <cstdlib>

// TSan's interceptors, exported by libtsan. The rwlock functions are defined
// below under their public names, so they reach TSan by these.
extern "C" {
int __interceptor_pthread_rwlock_rdlock(pthread_rwlock_t* l);
int __interceptor_pthread_rwlock_wrlock(pthread_rwlock_t* l);
int __interceptor_pthread_rwlock_unlock(pthread_rwlock_t* l);
}

namespace {

// TSan decides whether to ignore an interceptor by its caller's address, so
// the calls below must not become tail calls (which would make librdkafka
// the caller): the empty asm, after the call, keeps a frame here.
inline int Kept(int result) {
  asm volatile("" ::: "memory");
  return result;
}

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

static_assert(sizeof(thrd_t) == sizeof(pthread_t));
static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t));
static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t));
static_assert(sizeof(once_flag) == sizeof(pthread_once_t));

}  // namespace

extern "C" {

int thrd_create(thrd_t* thr, thrd_start_t func, void* arg) {
  auto* start = static_cast<Start*>(std::malloc(sizeof(Start)));
  if (start == nullptr) return thrd_nomem;
  *start = Start{func, arg};
  const int err = Kept(pthread_create(thr, nullptr, &Trampoline, start));
  if (err != 0) std::free(start);
  return FromErrno(err);
}

int thrd_join(thrd_t thr, int* res) {
  void* value = nullptr;
  const int err = Kept(pthread_join(thr, &value));
  if (err == 0 && res != nullptr) *res = static_cast<int>(reinterpret_cast<intptr_t>(value));
  return FromErrno(err);
}

int thrd_detach(thrd_t thr) { return FromErrno(Kept(pthread_detach(thr))); }

int mtx_lock(mtx_t* m) { return FromErrno(Kept(pthread_mutex_lock(AsMutex(m)))); }
int mtx_trylock(mtx_t* m) { return FromErrno(Kept(pthread_mutex_trylock(AsMutex(m)))); }
int mtx_timedlock(mtx_t* __restrict m, const struct timespec* __restrict deadline) {
  return FromErrno(Kept(pthread_mutex_timedlock(AsMutex(m), deadline)));
}
int mtx_unlock(mtx_t* m) { return FromErrno(Kept(pthread_mutex_unlock(AsMutex(m)))); }

int cnd_signal(cnd_t* c) { return FromErrno(Kept(pthread_cond_signal(AsCond(c)))); }
int cnd_broadcast(cnd_t* c) { return FromErrno(Kept(pthread_cond_broadcast(AsCond(c)))); }
int cnd_wait(cnd_t* c, mtx_t* m) {
  return FromErrno(Kept(pthread_cond_wait(AsCond(c), AsMutex(m))));
}
int cnd_timedwait(cnd_t* __restrict c, mtx_t* __restrict m, const struct timespec* __restrict deadline) {
  return FromErrno(Kept(pthread_cond_timedwait(AsCond(c), AsMutex(m), deadline)));
}

void call_once(once_flag* flag, void (*func)(void)) {
  Kept(pthread_once(reinterpret_cast<pthread_once_t*>(flag), func));
}

int pthread_rwlock_rdlock(pthread_rwlock_t* l) { return Kept(__interceptor_pthread_rwlock_rdlock(l)); }
int pthread_rwlock_wrlock(pthread_rwlock_t* l) { return Kept(__interceptor_pthread_rwlock_wrlock(l)); }
int pthread_rwlock_unlock(pthread_rwlock_t* l) { return Kept(__interceptor_pthread_rwlock_unlock(l)); }

}  // extern "C"
