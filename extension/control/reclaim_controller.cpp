#include "extension/control/reclaim_controller.hpp"

#include "extension/control/log.hpp"

#include <algorithm>

namespace flowrelay::control {

const char* to_string(CycleRecord::Outcome o) {
  switch (o) {
    case CycleRecord::Outcome::running: return "running";
    case CycleRecord::Outcome::done: return "done";
    case CycleRecord::Outcome::partial: return "partial";
    case CycleRecord::Outcome::deferred: return "deferred";
    case CycleRecord::Outcome::failed: return "failed";
    case CycleRecord::Outcome::timed_out: return "timed-out";
  }
  return "timed-out";
}

struct ReclaimController::Run {
  CycleRecord rec;
  SteadyTime started{};
  SteadyTime deadline = SteadyTime::max();
  std::shared_ptr<const Epoch> from, to;
  ReclaimPlan plan;
  int outstanding = 0;
  bool want_restart = false;
  std::size_t extra_errors = 0;
};

ReclaimController::ReclaimController(ProviderHost& host, BypassedFlows& bypassed, const Clock& clock,
                                     ControllerOptions options)
    : host_(host), bypassed_(bypassed), clock_(clock), options_(options), last_restart_(options.last_restart) {}

ReclaimController::~ReclaimController() = default;

const CycleRecord* ReclaimController::current_cycle() const { return run_ ? &run_->rec : nullptr; }

std::optional<SteadyTime> ReclaimController::next_deadline() const {
  std::optional<SteadyTime> d;
  if (run_ && run_->deadline != SteadyTime::max()) d = run_->deadline;
  if (!run_ && restart_due_) d = restart_due_;
  return d;
}

HostCompletion ReclaimController::guard(void (ReclaimController::*fn)(HostResult), std::chrono::milliseconds extra) {
  // A completion for a cycle that timed out (or a controller that is gone) is dropped.
  std::weak_ptr<int> alive = alive_;
  run_->deadline = std::max(run_->deadline == SteadyTime::max() ? SteadyTime::min() : run_->deadline,
                            clock_.now() + options_.op_timeout + extra);
  return [this, alive, id = run_->rec.id, fn](HostResult r) {
    if (alive.expired() || !run_ || run_->rec.id != id) return;
    (this->*fn)(std::move(r));
  };
}

void ReclaimController::add_error(std::string e) {
  if (run_->rec.errors.size() < 16) run_->rec.errors.push_back(std::move(e));
  else ++run_->extra_errors;
}

void ReclaimController::on_epoch(std::shared_ptr<const Epoch> epoch) {
  if (!epoch) return;
  target_ = std::move(epoch);
  if (!run_) start_cycle("epoch");
}

void ReclaimController::tick() {
  const auto now = clock_.now();
  if (run_ && now >= run_->deadline) {
    add_error("host did not answer within " + std::to_string(options_.op_timeout.count()) + " ms");
    finish(CycleRecord::Outcome::timed_out);
    return;
  }
  if (!run_ && restart_due_ && now >= *restart_due_) {
    restart_due_.reset();
    start_cycle("deferred restart");
  }
}

void ReclaimController::start_cycle(std::string trigger) {
  run_ = std::make_unique<Run>();
  auto& r = *run_;
  r.from = applied_;
  r.to = target_;
  r.started = clock_.now();
  r.rec.id = next_cycle_++;
  r.rec.from = applied_ ? applied_->id : 0;
  r.rec.to = target_->id;
  r.rec.policy = target_->config->reclaim.policy;
  r.rec.trigger = std::move(trigger);
  r.rec.started_at = clock_.wall_now();
  if (target_ != applied_) {
    const auto id = r.rec.id;
    const auto target = target_;
    if (!attempt(id, "apply_epoch", [&] { host_.apply_epoch(target_, guard(&ReclaimController::on_applied)); })) {
      failed_target_ = target;  // not retried until a newer epoch comes
      finish(CycleRecord::Outcome::failed);
    }
    return;  // the completion may already have run (and finished this cycle)
  }
  if (!attempt(r.rec.id, "reclaim", [&] { act(); })) finish(CycleRecord::Outcome::failed);
}

template <typename Fn>
bool ReclaimController::attempt(std::uint64_t cycle, const char* what, Fn&& fn) {
  // The cycle boundary: a host (or ledger) that throws, say a netlink error deep in sock_diag,
  // fails this cycle, which is logged and shown by `epochs`; the controller goes on.
  try {
    fn();
    return true;
  } catch (const std::exception& e) {
    if (!run_ || run_->rec.id != cycle) {
      logger()->error("reclaim cycle {}: {} threw after the cycle ended: {}", cycle, what, e.what());
      return true;
    }
    add_error(std::string(what) + ": " + e.what());
    return false;  // the caller ends the cycle as failed
  }
}

void ReclaimController::on_applied(HostResult r) {
  if (r.status != HostResult::Status::ok) {
    add_error("apply_epoch: " + (r.detail.empty() ? std::string("failed") : r.detail));
    failed_target_ = run_->to;
    finish(CycleRecord::Outcome::failed);
    return;
  }
  applied_ = run_->to;
  if (!attempt(run_->rec.id, "reclaim", [&] { act(); })) finish(CycleRecord::Outcome::failed);
}

void ReclaimController::act() {
  auto& r = *run_;
  r.deadline = SteadyTime::max();
  if (r.rec.policy == ReclaimPolicy::keep) {
    finish();
    return;
  }
  const auto caps = host_.capabilities();
  const auto claimed = host_.claimed_flows();
  const auto bypassed = bypassed_.snapshot();
  const auto t0 = std::chrono::steady_clock::now();
  r.plan = plan(r.from.get(), *r.to, claimed, bypassed, caps);
  r.rec.plan_time =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  r.rec.claimed_seen = r.plan.claimed_seen;
  r.rec.bypassed_seen = r.plan.bypassed_seen;
  r.rec.planned_release = r.plan.release.size();
  r.rec.planned_reclaim = r.plan.reclaim.size();

  if (!r.plan.reclaim.empty()) {
    if (r.rec.policy == ReclaimPolicy::restart) {
      r.want_restart = caps.restart;
      if (!caps.restart) logger()->warn("reclaim cycle {}: host cannot restart; closing {} flows singly", r.rec.id,
                                        r.plan.reclaim.size());
    } else if (r.plan.restart_needed) {
      r.want_restart = true;
      r.rec.fell_back = true;
      logger()->warn("reclaim cycle {} epoch {}: host cannot close bypassed flows singly; falling back to restart",
                     r.rec.id, r.rec.to);
    }
  }
  const bool restart_now = r.want_restart && caps.restart &&
                           (!last_restart_ || clock_.now() >= *last_restart_ + r.to->config->reclaim.min_restart_interval);
  if (restart_now) {
    restart_or_defer();  // the restart closes every flow: releases need no separate call
    return;
  }
  r.outstanding = 1;  // held while issuing, so a synchronous completion cannot finish the cycle early
  if (!r.plan.release.empty()) {
    ++r.outstanding;
    const auto drain = r.to->config->reclaim.drain;  // the host may take the whole grace period
    host_.release(r.plan.release, drain, guard(&ReclaimController::after_release, drain));
  }
  if (run_ && !r.want_restart && !r.plan.reclaim.empty()) {
    ++r.outstanding;
    host_.close_bypassed(r.plan.reclaim, guard(&ReclaimController::after_close));
  }
  op_done();
}

void ReclaimController::after_release(HostResult res) {
  auto& r = *run_;
  if (res.status != HostResult::Status::ok) add_error("release: " + (res.detail.empty() ? std::string("failed") : res.detail));
  r.rec.released += res.done;
  r.rec.failed += res.failures.size();
  for (auto& [id, why] : res.failures) add_error("release flow " + std::to_string(id) + ": " + why);
  op_done();
}

void ReclaimController::after_close(HostResult res) {
  auto& r = *run_;
  if (res.status == HostResult::Status::unsupported) {
    r.rec.fell_back = true;
    r.want_restart = true;
    logger()->warn("reclaim cycle {} epoch {}: close_bypassed unsupported; falling back to restart", r.rec.id, r.rec.to);
  } else {
    if (res.status == HostResult::Status::failed)
      add_error("close_bypassed: " + (res.detail.empty() ? std::string("failed") : res.detail));
    r.rec.reclaimed += res.done;
    r.rec.failed += res.failures.size();
    for (auto& [id, why] : res.failures) add_error("close flow " + std::to_string(id) + ": " + why);
  }
  op_done();
}

void ReclaimController::op_done() {
  if (--run_->outstanding > 0) return;
  if (run_->want_restart) restart_or_defer();
  else finish();
}

void ReclaimController::restart_or_defer() {
  auto& r = *run_;
  if (!host_.capabilities().restart) {
    add_error("restart needed for " + std::to_string(r.plan.reclaim.size()) + " flows, but the host cannot restart");
    r.rec.failed += r.plan.reclaim.size();
    finish();
    return;
  }
  const auto now = clock_.now();
  const auto interval = r.to->config->reclaim.min_restart_interval;
  if (last_restart_ && now < *last_restart_ + interval) {
    restart_due_ = *last_restart_ + interval;
    r.rec.restart_due = clock_.wall_now() + std::chrono::duration_cast<WallTime::duration>(*restart_due_ - now);
    logger()->info("reclaim cycle {} epoch {}: restart rate-limited, deferred by {} ms", r.rec.id, r.rec.to,
                   std::chrono::duration_cast<std::chrono::milliseconds>(*restart_due_ - now).count());
    finish(CycleRecord::Outcome::deferred);
    return;
  }
  restart_due_.reset();
  const bool ok = attempt(r.rec.id, "cancel_and_restart", [&] {
    last_restart_ = clock_.now();  // a restart that threw may have half happened: keep the interval
    host_.cancel_and_restart(guard(&ReclaimController::after_restart));
  });
  if (!ok) finish(CycleRecord::Outcome::failed);
}

void ReclaimController::after_restart(HostResult res) {
  auto& r = *run_;
  last_restart_ = clock_.now();
  if (res.status != HostResult::Status::ok) {
    add_error("cancel_and_restart: " + (res.detail.empty() ? std::string("failed") : res.detail));
    finish(CycleRecord::Outcome::failed);
    return;
  }
  r.rec.restarted = true;
  // Every flow came back through the flow source under the new epoch.
  r.rec.reclaimed = r.plan.reclaim.size();
  if (r.rec.released == 0) r.rec.released = r.plan.release.size();
  finish();
}

void ReclaimController::finish(CycleRecord::Outcome forced) {
  auto& r = *run_;
  r.rec.duration = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - r.started);
  if (r.extra_errors) r.rec.errors.push_back("... and " + std::to_string(r.extra_errors) + " more");
  if (forced != CycleRecord::Outcome::running) r.rec.outcome = forced;
  else if (r.rec.failed > 0 || !r.rec.errors.empty()) r.rec.outcome = CycleRecord::Outcome::partial;
  else r.rec.outcome = CycleRecord::Outcome::done;
  logger()->info(
      "reclaim cycle {} epoch {}->{} policy {}: {}; released {}/{}, reclaimed {}/{}, failed {}{}{} in {} ms",
      r.rec.id, r.rec.from, r.rec.to, to_string(r.rec.policy), to_string(r.rec.outcome), r.rec.released,
      r.rec.planned_release, r.rec.reclaimed, r.rec.planned_reclaim, r.rec.failed,
      r.rec.restarted ? ", restarted" : "", r.rec.fell_back ? ", fell back to restart" : "", r.rec.duration.count());
  cycle_seconds_[r.rec.policy].observe(std::chrono::duration<double>(r.rec.duration).count());
  log_.push_back(std::move(r.rec));
  while (log_.size() > options_.log_limit) log_.pop_front();
  run_.reset();
  if (target_ && target_ != applied_ && target_ != failed_target_) start_cycle("epoch");
}

}  // namespace flowrelay::control
