// For every config parse_config accepts on Linux, nft_spec_from_config + render() produce a
// ruleset libnftables accepts: the script is checked with a dry run (`nft --check`), which still
// needs CAP_NET_ADMIN and talks to the kernel. The fuzzer enters a network namespace of its own at
// start so that nothing it does can reach the host's tables (it must run as root, or with the
// capabilities unshare(CLONE_NEWNET) and nftables need). A dry run is `nft --check`: the kernel
// sees the batch and aborts it, so checks it makes only at commit (an expression's hook, e.g.
// tproxy outside prerouting) are not covered.
#include "extension/control/config.hpp"
#include "extension/linux/nft_spec_from_config.hpp"
#include "extension/linux/nft_table.hpp"

#include <nftables/libnftables.h>
#include <sched.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

nft_ctx* g_nft = nullptr;
unsigned long g_checked = 0;  // accepted configs whose ruleset nft checked: reported at exit

void report() { std::fprintf(stderr, "nft_render_fuzzer: %lu accepted configs checked by nft\n", g_checked); }

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (::unshare(CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "nft_render_fuzzer: unshare(CLONE_NEWNET): %s (run as root)\n", std::strerror(errno));
    std::exit(2);
  }
  g_nft = nft_ctx_new(NFT_CTX_DEFAULT);
  if (g_nft == nullptr) {
    std::fprintf(stderr, "nft_render_fuzzer: nft_ctx_new failed\n");
    std::exit(2);
  }
  nft_ctx_set_dry_run(g_nft, true);
  nft_ctx_buffer_output(g_nft);
  nft_ctx_buffer_error(g_nft);
  // The check must be able to fail: a value out of range is an error a dry run reports.
  if (nft_run_cmd_from_buffer(g_nft, "add table inet flowrelay_selftest\n"
                                     "add chain inet flowrelay_selftest c\n"
                                     "add rule inet flowrelay_selftest c ct mark set 99999999999\n") == 0) {
    std::fprintf(stderr, "nft_render_fuzzer: the dry run accepted a bad ruleset; it checks nothing\n");
    std::exit(2);
  }
  std::atexit(report);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace flowrelay;
  control::Config config;
  try {
    config = control::parse_config(std::string_view(reinterpret_cast<const char*>(data), size),
                                   control::PlatformCaps::for_linux());
  } catch (const control::ConfigError&) {
    return 0;  // rejected: nothing to render
  }
  // Accepted: from here any exception (render's std::invalid_argument too) escapes and aborts.
  const std::string script = linux_host::render(linux_host::nft_spec_from_config(config, 1, 4242));
  if (nft_run_cmd_from_buffer(g_nft, script.c_str()) != 0) {
    std::fprintf(stderr, "nft_render_fuzzer: nft rejects the rendered ruleset:\n%s\n--- script ---\n%s\n",
                 nft_ctx_get_error_buffer(g_nft), script.c_str());
    std::abort();
  }
  ++g_checked;
  return 0;
}
