// Smallest useful goro program: run the runtime, start one goroutine, wait
// for it. Built against an installed goro by run_consumer.cmake.
#include <goro/goro.hpp>

int main() {
  return goro::run([] {
    goro::wait_group wg;
    wg.add(1);
    goro::go([&] { wg.done(); });
    wg.wait();
  });
}
