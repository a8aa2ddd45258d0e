// pyruntime: the register tiles of the direct_lanes convolution (conv/direct.h), written once over the
// vector traits V of conv/direct_tiles.h (which this header needs: its pad_group and VClamp) and
// instantiated by x86/conv_direct_avx2.cpp, x86/conv_direct_avx512.cpp and arm/conv_direct_neon.cpp. Internal
// linkage, as there.
//
// Tile: P consecutive outputs of one row x NB blocks of 16 output channels (NV = NB * 16 / kLanes vectors),
// P * NV = 12 or (two blocks with AVX-512) 24 accumulators. Per weight column k: NV aligned loads of the packed block, P broadcasts of the
// input taps, P * NV FMAs. The result is transposed in registers (AVX2, AVX-512: V::store_columns) or goes
// through a small buffer to the P outputs of each channel.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/conv/direct.h"
#include "kernels/conv/direct_tiles.h"

namespace pyrt::kernels {
namespace {

template <class V>
constexpr int lanes_vectors() { return int(kLanesBlock) / V::kLanes; }

// Whether V stores a tile's outputs transposed in registers: V::store_columns<P>(px, y, plane, n) writes lane
// c of the P vectors px (output channel c, pixels 0..P-1) to y + c * plane, P floats, for c < n. Else each
// output goes through a buffer, one scalar store each (about 13% of a first conv's time).
template <class V, class = void>
struct HasStoreColumns : std::false_type {};
template <class V>
struct HasStoreColumns<V, std::void_t<decltype(&V::template store_columns<1>)>> : std::true_type {};
template <class V>
constexpr int lanes_pixels() { return 12 / lanes_vectors<V>(); }

// The P x NV accumulators of a tile to y, transposed in registers (V::store_columns), one store per channel.
// Not inlined: the tile's FMA loop keeps (almost) every register, and the transpose's would spill some.
template <class V, int P, int NV>
__attribute__((noinline)) void lanes_store(const typename V::vec (&acc)[P][NV], float* y, size_t plane, size_t pos,
                                           uint32_t n_o, const VClamp<V>& cl) {
  constexpr int L = V::kLanes;
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    if (uint32_t(v * L) >= n_o) break;
    typename V::vec px[P];
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) px[p] = cl(acc[p][v]);
    V::template store_columns<P>(px, y + size_t(v) * L * plane + pos, plane, std::min<uint32_t>(L, n_o - v * L));
  }
}

// Outputs [ox, ox + P) of row oy, channels [o0, o0 + n_o) of the NB blocks from wb (consecutive blocks of the
// packed weight, K * kLanesBlock floats apart); xr: the padded input at row oy's first tap row, column 0.
template <class V, int P, int NB>
inline void lanes_tile(const DirectConvLayout& Lw, const float* wb, const float* bias, const float* xr, uint32_t ox,
                       float* y, size_t plane, size_t pos, uint32_t n_o, const VClamp<V>& cl) {
  constexpr int NV = lanes_vectors<V>() * NB, L = V::kLanes, PB = kLanesBlock / L;  // vectors per block
  typename V::vec acc[P][NV];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[p][v] = V::load(bias + v * L);
  const float* x0 = xr + ox;
  const size_t block = size_t(Lw.K) * kLanesBlock;
  for (uint32_t k = 0; k < Lw.K; ++k) {
    typename V::vec w[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) w[v] = V::load(wb + (v / PB) * block + size_t(k) * kLanesBlock + (v % PB) * L);
    const float* xk = x0 + Lw.koff[k];
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      const typename V::vec xb = V::set1(xk[p]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[p][v] = V::fma(w[v], xb, acc[p][v]);
    }
  }
  if constexpr (HasStoreColumns<V>::value) return lanes_store<V, P, NV>(acc, y, plane, pos, n_o, cl);
  alignas(64) float buf[P][NB * kLanesBlock];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) V::store(buf[p] + v * L, cl(acc[p][v]));
  for (uint32_t o = 0; o < n_o; ++o) {
    float* yo = y + o * plane + pos;
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) yo[p] = buf[p][o];
  }
}

// The last t < P outputs of a row in one tile of t (T counts down from P - 1 to find it).
template <class V, int T, int NB>
inline void lanes_tail(const DirectConvLayout& Lw, const float* wb, const float* bias, const float* xr, uint32_t ox,
                       float* y, size_t plane, size_t pos, uint32_t n_o, const VClamp<V>& cl, uint32_t t) {
  if constexpr (T >= 1) {
    if (t == T) return lanes_tile<V, T, NB>(Lw, wb, bias, xr, ox, y, plane, pos, n_o, cl);
    lanes_tail<V, T - 1, NB>(Lw, wb, bias, xr, ox, y, plane, pos, n_o, cl, t);
  }
}

// Rows [oy0, oy1) of the NB blocks of output channels from o0.
template <class V, int NB>
inline void lanes_rows(const DirectConvLayout& Lw, const float* xp, float* y, uint32_t o0, uint32_t oy0, uint32_t oy1,
                       const VClamp<V>& cl) {
  constexpr int P = lanes_pixels<V>();
  const size_t plane = size_t(Lw.out_h) * Lw.out_w;
  const float* wb = Lw.lanes_w + size_t(o0 / kLanesBlock) * Lw.K * kLanesBlock;
  const float* bias = Lw.lanes_bias + o0;
  const uint32_t n_o = std::min<uint32_t>(NB * kLanesBlock, Lw.out_c - o0);
  float* yb = y + o0 * plane;
  for (uint32_t oy = oy0; oy < oy1; ++oy) {
    const float* xr = xp + oy * Lw.row_step;
    const size_t row = size_t(oy) * Lw.out_w;
    uint32_t ox = 0;
    for (; ox + P <= Lw.out_w; ox += P) lanes_tile<V, P, NB>(Lw, wb, bias, xr, ox, yb, plane, row + ox, n_o, cl);
    if (ox < Lw.out_w)
      lanes_tail<V, P - 1, NB>(Lw, wb, bias, xr, ox, yb, plane, row + ox, n_o, cl, Lw.out_w - ox);
  }
}

// The kernel of one ISA (DirectConvFn): the padded copy of every input channel, then blocks of output
// channels (their packed weights stay in L1), row by row, tile by tile. Where V has 32 registers (kLanes 16:
// AVX-512), two blocks share each tile's broadcasts (24 accumulators: 2 weight loads and 12 broadcasts per
// 24 FMAs instead of 1 and 12 per 12; the first convs of ResNet-18 and SqueezeNet 1.1x).
template <class V>
void lanes_conv(const DirectConvLayout& Lw, const float* x, float* xp, float* y, uint32_t oy0, uint32_t oy1) {
  pad_group<V>(Lw, x, xp, oy0, oy1);
  const VClamp<V> cl{V::set1(Lw.lo), V::set1(Lw.hi)};
  uint32_t o0 = 0;
  if constexpr (V::kLanes == 16)
    for (; o0 + kLanesBlock < Lw.out_c; o0 += 2 * kLanesBlock) lanes_rows<V, 2>(Lw, xp, y, o0, oy0, oy1, cl);
  for (; o0 < Lw.out_c; o0 += kLanesBlock) lanes_rows<V, 1>(Lw, xp, y, o0, oy0, oy1, cl);
}

}  // namespace
}  // namespace pyrt::kernels
