// pyruntime: the measurement behind kernels/isa.h's gather choice, for one vector type V (a traits class
// with the vector's lanes, its vgatherdps and its scalar-load gather of 16-bit column indices, as the csr
// kernels hold them). Included by gather_probe_avx2.cpp and gather_probe_avx512.cpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pyrt::kernels::gather_probe {
namespace {

constexpr size_t kTable = 4096;    // floats: 16 KiB, L1-resident
constexpr size_t kIndices = 8192;  // per round
constexpr int kRounds = 7;

// Best-of-kRounds ns per element of gathering kIndices random table entries with Get, 4 independent sums.
template <class V, class Get>
double best_ns(const float* table, const uint16_t* idx, Get get) {
  double best = 1e30;
  for (int round = 0; round < kRounds; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    typename V::Vec acc[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
    for (size_t i = 0; i < kIndices; i += 4 * V::kLanes)
      for (int k = 0; k < 4; ++k) acc[k] = V::add(acc[k], get(table, idx + i + k * V::kLanes));
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    V::keep(V::add(V::add(acc[0], acc[1]), V::add(acc[2], acc[3])));
    best = std::min(best, ns / kIndices);
  }
  return best;
}

template <class V>
void measure(double* hw_ns, double* scalar_ns) {
  std::vector<float> table(kTable);
  std::vector<uint16_t> idx(kIndices + 64);
  uint32_t s = 12345;
  for (size_t i = 0; i < kTable; ++i) table[i] = float(i % 7);
  for (auto& v : idx) {
    s = s * 1664525u + 1013904223u;
    v = static_cast<uint16_t>((s >> 8) % kTable);
  }
  best_ns<V>(table.data(), idx.data(), V::hw);  // warm-up: the table and the indices into L1
  *hw_ns = best_ns<V>(table.data(), idx.data(), V::hw);
  *scalar_ns = best_ns<V>(table.data(), idx.data(), V::scalar);
}

}  // namespace
}  // namespace pyrt::kernels::gather_probe
