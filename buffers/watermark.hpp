#pragma once
// High/low watermark on a byte count. A crossing is reported once: above `high` the reader stops,
// and it resumes only when the queue has drained to `low`, so a queue near the mark does not flap.

#include <cstddef>

namespace flowrelay::buffers {

class Watermark {
 public:
  enum class Crossing { none, high, low };

  /// low defaults to half of high (the relay's default: 256 KiB high, 128 KiB low).
  explicit Watermark(std::size_t high, std::size_t low) : high_(high), low_(low < high ? low : high) {}
  explicit Watermark(std::size_t high) : Watermark(high, high / 2) {}

  std::size_t high() const noexcept { return high_; }
  std::size_t low() const noexcept { return low_; }
  bool above() const noexcept { return above_; }

  /// Feeds the current size; says whether it just crossed a mark.
  Crossing update(std::size_t size) noexcept {
    if (!above_ && size >= high_) {
      above_ = true;
      return Crossing::high;
    }
    if (above_ && size <= low_) {
      above_ = false;
      return Crossing::low;
    }
    return Crossing::none;
  }

 private:
  std::size_t high_;
  std::size_t low_;
  bool above_ = false;
};

}  // namespace flowrelay::buffers
