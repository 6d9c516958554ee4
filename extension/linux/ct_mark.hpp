#pragma once
// The conntrack mark layout flowrelay owns: a flow's sticky verdict and the epoch that decided it.
// nft_table renders rules against it, conntrack re-marks with it, the controller reads it back.
//
//   bit 31 30 29 ................................ 0
//      +-----+---------------------------------------+
//      | v v |  epoch (low 30 bits)                  |
//      +-----+---------------------------------------+
//   vv: 00 undecided (flows older than the table: carried by the OS), 10 claim, 01 bypass.

#include <cstdint>
#include <optional>

namespace flowrelay::linux_host {

enum class Verdict : std::uint8_t { claim, bypass };

inline const char* to_string(Verdict v) { return v == Verdict::claim ? "claim" : "bypass"; }

struct CtMark {
  static constexpr std::uint32_t verdict_mask = 0xC0000000u;
  static constexpr std::uint32_t claim_bits = 0x80000000u;
  static constexpr std::uint32_t bypass_bits = 0x40000000u;
  static constexpr std::uint32_t epoch_mask = 0x3FFFFFFFu;

  /// The whole mark for a verdict taken under `epoch` (epoch truncated to 30 bits).
  static constexpr std::uint32_t encode(Verdict v, std::uint64_t epoch) {
    return (v == Verdict::claim ? claim_bits : bypass_bits) | (static_cast<std::uint32_t>(epoch) & epoch_mask);
  }
  /// nullopt for an undecided (or foreign) mark.
  static constexpr std::optional<Verdict> verdict(std::uint32_t mark) {
    switch (mark & verdict_mask) {
      case claim_bits: return Verdict::claim;
      case bypass_bits: return Verdict::bypass;
      default: return std::nullopt;
    }
  }
  static constexpr std::uint32_t epoch(std::uint32_t mark) { return mark & epoch_mask; }
};

}  // namespace flowrelay::linux_host
