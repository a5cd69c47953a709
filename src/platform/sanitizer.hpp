// Sanitizer fiber hooks. ASan must be told when the stack changes under it
// (start/finish_switch_fiber), or it reports false stack-buffer overflows and
// loses its fake stacks; TSan must be told which fiber is running
// (switch_to_fiber), or it mixes up the shadow state of goroutines that share
// a thread. All of this compiles to nothing in normal builds.
//
// Under TSan this library itself is compiled without instrumentation (see
// race.hpp) and defines GORO_TSAN_RUNTIME instead; GORO_TSAN is 1 either way.
// TSan fibers are switched without synchronization: the edges between
// goroutines are exactly those race.hpp makes.
#pragma once

#include <cstddef>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GORO_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define GORO_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define GORO_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define GORO_TSAN 1
#endif
#if defined(GORO_TSAN_RUNTIME)
#define GORO_TSAN 1
#endif
#ifndef GORO_ASAN
#define GORO_ASAN 0
#endif
#ifndef GORO_TSAN
#define GORO_TSAN 0
#endif

#if GORO_ASAN
extern "C" {
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, std::size_t size);
void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old,
                                     std::size_t* size_old);
}
#endif
#if GORO_TSAN
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_set_fiber_name(void* fiber, const char* name);
}
#endif
