#include "extension/control/epoch_manager.hpp"

#include "extension/control/log.hpp"

namespace flowrelay::control {

const char* to_string(EpochEvent::Kind k) {
  switch (k) {
    case EpochEvent::Kind::accepted: return "accepted";
    case EpochEvent::Kind::unchanged: return "unchanged";
    case EpochEvent::Kind::rejected: return "rejected";
    case EpochEvent::Kind::source_error: return "source-error";
  }
  return "source-error";
}

EpochManager::EpochManager(PlatformCaps platform, const Clock& clock, std::size_t history_limit)
    : platform_(platform), clock_(clock), history_limit_(history_limit == 0 ? 1 : history_limit) {}

relay::EpochId EpochManager::current_id() const {
  auto e = current();
  return e ? e->id : 0;
}

EpochEvent EpochManager::record(EpochEvent e) {
  e.at = clock_.wall_now();
  history_.push_back(e);
  while (history_.size() > history_limit_) history_.pop_front();
  return e;
}

EpochEvent EpochManager::submit(std::string_view text, std::string source) {
  try {
    return submit(parse_config(text, platform_), std::move(source));
  } catch (const ConfigError& err) {
    return reject(std::move(source), err.what());
  } catch (const std::exception& err) {  // not a validation error, but still no reason to stop
    return reject(std::move(source), std::string("config: ") + err.what());
  }
}

EpochEvent EpochManager::reject(std::string source, std::string error) {
  EpochEvent e;
  e.kind = EpochEvent::Kind::rejected;
  e.epoch = current_id();
  e.source = std::move(source);
  e.error = std::move(error);
  logger()->warn("config from {} rejected, epoch {} keeps running: {}", e.source, e.epoch, e.error);
  return record(std::move(e));
}

EpochEvent EpochManager::submit(Config config, std::string source) {
  EpochEvent e;
  e.source = std::move(source);
  e.content_hash = config.content_hash;
  auto running = current();
  // A config built in code has no content hash (0): it is always a new epoch.
  if (running && config.content_hash != 0 && running->content_hash == config.content_hash) {
    e.kind = EpochEvent::Kind::unchanged;
    e.epoch = running->id;
    logger()->info("config from {} unchanged, epoch {} keeps running", e.source, e.epoch);
    return record(std::move(e));
  }
  auto epoch = std::make_shared<Epoch>();
  epoch->id = next_id_++;
  epoch->accepted_at = clock_.wall_now();
  epoch->source = e.source;
  epoch->content_hash = config.content_hash;
  epoch->rules = std::make_shared<const RuleSet>(config);
  epoch->config = std::make_shared<const Config>(std::move(config));
  e.kind = EpochEvent::Kind::accepted;
  e.epoch = epoch->id;
  e.rules = epoch->config->rules.size();
  current_.store(std::move(epoch));
  logger()->info("epoch {} accepted from {} ({} rules, hash {:016x})", e.epoch, e.source, e.rules, e.content_hash);
  return record(std::move(e));
}

EpochEvent EpochManager::record_source_error(std::string source, std::string error) {
  EpochEvent e;
  e.kind = EpochEvent::Kind::source_error;
  e.epoch = current_id();
  e.source = std::move(source);
  e.error = std::move(error);
  logger()->warn("config source {}: {}; epoch {} keeps running", e.source, e.error, e.epoch);
  return record(std::move(e));
}

}  // namespace flowrelay::control
