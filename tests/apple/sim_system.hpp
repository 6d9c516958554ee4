#pragma once
// A simulated macOS around one transparent proxy provider, for the provider and seed-scenario
// tests. It does what the system and the container app do:
//   - installs the provider's network settings and offers each new flow they include to
//     handleNewFlow: (a flow they leave out, or any flow while no provider runs, goes direct);
//   - carries every flow answered NO itself, from 127.0.0.2, so the far end can tell who carried
//     a flow (the relay's connections come from 127.0.0.1);
//   - on cancelProxyWithError: stops the provider, closes every flow it handed over, and, as the
//     container app does, starts a new provider with the saved providerConfiguration; starting a
//     transparent proxy closes every flow the system carries, so apps reconnect and are offered
//     again;
//   - saving a configuration reaches the running provider as KVO on protocolConfiguration.
// The destinations apps use (203.0.113.x) are mapped to far servers on loopback by a World, for
// the system's direct flows and the relay's dials alike.

#include "extension/apple/provider_core.hpp"
#include "tests/apple/ne_sim.hpp"
#include "tests/support/net.hpp"
#include "tests/support/udp_echo.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace flowrelay::apple::sim {

/// Where the destinations apps name really are.
class World {
 public:
  void map(relay::Endpoint intended, relay::Endpoint real);
  std::optional<relay::Endpoint> resolve(const relay::Endpoint& intended) const;
  /// An Egress that dials the real endpoint of each destination.
  std::unique_ptr<relay::Egress> egress(std::chrono::milliseconds connect_timeout) const;

 private:
  mutable std::mutex mu_;
  std::map<relay::Endpoint, relay::Endpoint> map_;
};

/// A TCP server on 127.0.0.1 that answers each line with "<peer address> <line>".
class TcpLineEcho {
 public:
  TcpLineEcho();
  ~TcpLineEcho();
  relay::Endpoint endpoint() const { return endpoint_; }

 private:
  void serve();
  flowrelay::test::Fd listener_;
  int wake_[2];
  relay::Endpoint endpoint_;
  std::thread thread_;
};

/// Who opens a flow: the metadata NEFlowMetaData and the audit token give.
struct AppInfo {
  std::string signing_id = "com.example.browser";
  std::int32_t pid = 4242;
  std::uint32_t uid = 501;
};

/// An app's TCP connection as the app sees it, whoever carries it.
class AppTcp {
 public:
  virtual ~AppTcp() = default;
  virtual bool claimed() const = 0;
  /// Sends a line and returns the far end's answer ("<peer address> <line>"); nullopt once the
  /// connection was closed under the app.
  virtual std::optional<std::string> ask(const std::string& line) = 0;
};

/// An app's UDP socket to one destination.
class AppUdp {
 public:
  virtual ~AppUdp() = default;
  virtual bool claimed() const = 0;
  virtual std::optional<std::string> ask(const std::string& payload) = 0;
};

class SimSystem final : public ProviderShell {
 public:
  struct Options {
    ProviderOptions provider;
    Delivery delivery = Delivery::other_thread;
  };
  SimSystem(World& world, std::string config_json, Options options);
  SimSystem(World& world, std::string config_json) : SimSystem(world, std::move(config_json), Options{}) {}
  ~SimSystem() override;

  /// The container app starts the provider with the saved configuration and waits for its
  /// startProxy completion: empty on success, else the provider's error.
  std::string start();
  /// The container app saves a new providerConfiguration; the running provider sees it by KVO.
  void save_configuration(std::string json);

  std::unique_ptr<AppTcp> connect_tcp(relay::Endpoint dst, AppInfo app = {}, std::string hostname = {});
  std::unique_ptr<AppUdp> open_udp(relay::Endpoint dst, AppInfo app = {});

  /// The running provider (null between a cancel and the restart). Stays valid until the next
  /// restart; tests use it between restarts only.
  ProviderCore* provider();
  ProviderMemory& memory() { return memory_; }
  NetworkSettings settings() const;
  std::size_t restarts() const;
  /// Waits until the container app has restarted the provider `n` times and the new one runs.
  bool wait_restarts(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  /// When each cancelProxyWithError: came, in order.
  std::vector<std::chrono::steady_clock::time_point> cancels() const;
  std::shared_ptr<SimEnv> env() const { return env_; }

  // ProviderShell
  void apply_network_settings(const NetworkSettings& settings, std::function<void(std::string)> done) override;
  void cancel_proxy(const std::string& reason) override;

  struct Carried;  // a flow the system carries itself

 private:
  std::string start_locked(std::unique_lock<std::mutex>& lk);
  void run_system(std::function<void()> fn);
  relay::FlowMeta meta_for(relay::Proto proto, relay::Endpoint dst, const AppInfo& app, std::string hostname) const;

  World& world_;
  Options options_;
  std::shared_ptr<SimEnv> env_;
  ProviderMemory memory_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string config_;
  NetworkSettings settings_;
  bool settings_installed_ = false;
  std::unique_ptr<ProviderCore> provider_;
  bool running_ = false;
  std::size_t restarts_ = 0;
  std::vector<std::chrono::steady_clock::time_point> cancels_;
  std::vector<std::weak_ptr<SimTcp>> handed_tcp_;
  std::vector<std::weak_ptr<SimUdp>> handed_udp_;
  std::vector<std::weak_ptr<Carried>> carried_;

  // The system's own queue (KVO, settings completions, the stop/start cycle): one thread.
  std::mutex qmu_;
  std::condition_variable qcv_;
  std::vector<std::function<void()>> queue_;
  bool qstop_ = false;
  std::thread system_thread_;
};

}  // namespace flowrelay::apple::sim
