// pyruntime: an activation fused into a kernel's epilogue: y = min(max(y, lo), hi), with relu as
// [0, +inf) and no activation as (-inf, +inf). Matches the relu and clamp ops exactly (FORMAT.md 2.3): a
// NaN stays NaN, and -0 stays -0 under relu, as `x < 0 ? 0 : x` leaves it.
#pragma once

#include <cstddef>
#include <limits>

namespace pyrt::kernels {

struct OutputClamp {
  float lo = -std::numeric_limits<float>::infinity();
  float hi = std::numeric_limits<float>::infinity();

  bool active() const {
    return lo != -std::numeric_limits<float>::infinity() || hi != std::numeric_limits<float>::infinity();
  }
  // hi < v ? hi : v, then lo > v ? lo : v: the operand order of vminps / vmaxps (a NaN v passes both).
  float operator()(float v) const {
    v = hi < v ? hi : v;
    return lo > v ? lo : v;
  }
  void apply(float* y, size_t n) const {
    if (!active()) return;
    const OutputClamp c = *this;  // a local copy: y cannot alias it, so the loop vectorizes (minps, maxps)
    for (size_t i = 0; i < n; ++i) y[i] = c(y[i]);
  }
};

}  // namespace pyrt::kernels
