#pragma once
// The conntrack mark layout flowrelay owns: a flow's sticky verdict and the epoch that decided it.
// nft_table renders rules against it, conntrack re-marks with it, the controller reads it back.
//
//   bit 31 30 29 ............. 16 15 ............... 0
//      +-----+-------------------+--------------------+
//      | v v | epoch (low 14 bits)|  not ours          |
//      +-----+-------------------+--------------------+
//   vv: 00 undecided (flows older than the table: carried by the OS), 10 claim, 01 bypass.
// Every write is masked (`ct mark set ct mark & ~mask | value`, ctnetlink CTA_MARK_MASK), so the
// low 16 bits stay whatever other tools put there. The epoch is only shown (flows' epoch column);
// it wraps at 16384.
//
// The meta (packet) mark: flowrelay owns the bits of `fwmark | bypass_mark` (MetaMark::mask),
// tests and sets only those, and the policy rule matches `fwmark/mask`. The two values differ, so
// they differ under the mask too: an upstream packet (bypass mark) never matches the rule.

#include <cstdint>
#include <optional>

namespace flowrelay::linux_host {

enum class Verdict : std::uint8_t { claim, bypass };

inline const char* to_string(Verdict v) { return v == Verdict::claim ? "claim" : "bypass"; }

struct CtMark {
  static constexpr std::uint32_t mask = 0xFFFF0000u;  // the bits flowrelay owns
  static constexpr std::uint32_t verdict_mask = 0xC0000000u;
  static constexpr std::uint32_t claim_bits = 0x80000000u;
  static constexpr std::uint32_t bypass_bits = 0x40000000u;
  static constexpr std::uint32_t epoch_mask = 0x3FFF0000u;
  static constexpr int epoch_shift = 16;

  /// Our bits of the mark for a verdict taken under `epoch` (epoch truncated to 14 bits).
  static constexpr std::uint32_t encode(Verdict v, std::uint64_t epoch) {
    return (v == Verdict::claim ? claim_bits : bypass_bits) |
           ((static_cast<std::uint32_t>(epoch) << epoch_shift) & epoch_mask);
  }
  /// nullopt for an undecided (or foreign) mark.
  static constexpr std::optional<Verdict> verdict(std::uint32_t mark) {
    switch (mark & verdict_mask) {
      case claim_bits: return Verdict::claim;
      case bypass_bits: return Verdict::bypass;
      default: return std::nullopt;
    }
  }
  static constexpr std::uint32_t epoch(std::uint32_t mark) { return (mark & epoch_mask) >> epoch_shift; }
};

struct MetaMark {
  /// The packet-mark bits flowrelay owns for a config's fwmark and bypass mark.
  static constexpr std::uint32_t mask(std::uint32_t fwmark, std::uint32_t bypass_mark) { return fwmark | bypass_mark; }
};

}  // namespace flowrelay::linux_host
