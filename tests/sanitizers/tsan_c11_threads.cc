// TSan builds only (-DCXPULSE_SANITIZE=thread; see CMakeLists.txt):
// thrd_create and thrd_join of C11 <threads.h> on top of POSIX threads,
// compiled into every executable that links cxpulse_core.
//
// Why: Debian's librdkafka starts its threads with glibc's C11 thrd_create,
// which calls glibc's pthread_create internally, past the symbol TSan
// intercepts (GCC 12's TSan runtime has no C11 interceptors of its own). TSan
// then has no state for librdkafka's threads, and the first malloc on one of
// them crashes inside the TSan allocator ("ThreadSanitizer: SEGV on unknown
// address 0x000000000c38" in SizeClassAllocator64LocalCache::Allocate, on
// thread "rdk:mock" / "rdk:main"). Defined in the executable, these two
// interpose glibc's for librdkafka and call the public pthread_create and
// pthread_join, which TSan intercepts: its threads are then known, and start
// and join order them with their creator as usual.
//
// Only thread lifetime goes through here. librdkafka's locks (C11 mtx_*,
// cnd_*, pthread_rwlock_*) and its atomics stay as opaque to TSan as the rest
// of the uninstrumented library, and tsan.supp ignores the memory
// interceptors it calls (called_from_lib): librdkafka is a black box whose
// threads exist. glibc's thrd_t is its pthread_t, as glibc itself assumes.
//
// This is not cxpulse code and nothing but TSan builds link it.
#include <errno.h>
#include <pthread.h>
#include <threads.h>

#include <cstdint>
#include <cstdlib>

namespace {

int FromErrno(int err) {
  switch (err) {
    case 0: return thrd_success;
    case ENOMEM:
    case EAGAIN: return thrd_nomem;
    default: return thrd_error;
  }
}

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

}  // extern "C"
