// goro::pipeline's non-template half: the error path and the goroutine
// accounting (goro/pipeline.hpp). The first failure wins under mu_ and
// cancels the pipeline's context; every stage goroutine is counted in wg_,
// so wait() returns only when none is left.
#include "goro/pipeline.hpp"

namespace goro {

pipeline::pipeline(const context& parent) {
  auto [ctx, cancel] = with_cancel(parent);
  ctx_ = std::move(ctx);
  cancel_ = std::move(cancel);
}

pipeline::~pipeline() {
  cancel_();
  wg_.wait();
}

void pipeline::fail(const std::string& stage, std::exception_ptr err) noexcept {
  {
    std::lock_guard lk(mu_);
    if (!first_error_) {
      first_error_ = std::move(err);
      try {
        failed_stage_ = stage;
      } catch (...) {
        // Out of memory for the name: the error itself is kept.
      }
    }
  }
  cancel_();
}

std::error_code pipeline::wait() {
  wg_.wait();
  std::exception_ptr err;
  std::string stage;
  {
    std::lock_guard lk(mu_);
    err = first_error_;
    stage = failed_stage_;
  }
  if (err) {
    try {
      std::rethrow_exception(err);
    } catch (const std::exception& e) {
      std::throw_with_nested(pipeline_error(stage, e.what()));
    } catch (...) {
      std::throw_with_nested(pipeline_error(stage, "unknown exception"));
    }
  }
  return ctx_.err();
}

}  // namespace goro
