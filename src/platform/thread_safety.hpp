// Clang thread-safety annotations (-Wthread-safety): fields name the lock that
// guards them and functions the locks they need, and the compiler checks it.
// They expand to nothing on other compilers.
#pragma once

#if defined(__clang__)
#define GORO_TSA(x) __attribute__((x))
#else
#define GORO_TSA(x)
#endif

#define GORO_CAPABILITY(name) GORO_TSA(capability(name))
#define GORO_GUARDED_BY(m) GORO_TSA(guarded_by(m))
#define GORO_PT_GUARDED_BY(m) GORO_TSA(pt_guarded_by(m))
#define GORO_REQUIRES(...) GORO_TSA(requires_capability(__VA_ARGS__))
#define GORO_ACQUIRE(...) GORO_TSA(acquire_capability(__VA_ARGS__))
#define GORO_RELEASE(...) GORO_TSA(release_capability(__VA_ARGS__))
#define GORO_TRY_ACQUIRE(...) GORO_TSA(try_acquire_capability(__VA_ARGS__))
#define GORO_EXCLUDES(...) GORO_TSA(locks_excluded(__VA_ARGS__))
#define GORO_NO_TSA GORO_TSA(no_thread_safety_analysis)
