// goro/goro.hpp: everything goro offers, in one include.
#pragma once

#include "goro/blocking.hpp"
#include "goro/chan.hpp"
#include "goro/context.hpp"
#include "goro/error.hpp"
#include "goro/debug.hpp"
#include "goro/goroutine.hpp"
#include "goro/mutex.hpp"
#include "goro/panic.hpp"
#include "goro/pipeline.hpp"
#include "goro/runtime.hpp"
#include "goro/schedule.hpp"
#include "goro/select.hpp"
#include "goro/sleep.hpp"
#include "goro/ticker.hpp"
#include "goro/timer.hpp"
#include "goro/wait_group.hpp"
