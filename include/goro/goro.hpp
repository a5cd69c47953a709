// goro/goro.hpp: everything goro offers, in one include.
#pragma once

#include "goro/atomic_value.hpp"
#include "goro/chan.hpp"
#include "goro/cond.hpp"
#include "goro/goroutine.hpp"
#include "goro/mutex.hpp"
#include "goro/once.hpp"
#include "goro/panic.hpp"
#include "goro/pool.hpp"
#include "goro/runtime.hpp"
#include "goro/rw_mutex.hpp"
#include "goro/select.hpp"
#include "goro/sharded_map.hpp"
#include "goro/singleflight.hpp"
#include "goro/sleep.hpp"
#include "goro/sync_map.hpp"
#include "goro/wait_group.hpp"
