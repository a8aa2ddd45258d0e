// pyruntime: the dense int8 GEMM on AMX (Intel Advanced Matrix Extensions: AMX-TILE + AMX-INT8, Sapphire
// Rapids and later), the batch kernel of ISA level amx (kernels/isa.h). Below kAmxMinBatch samples the
// weights' bandwidth bounds a layer and the AVX-512 VNNI kernel runs instead (int8_weight.cpp).
//
// tdpbssd multiplies a tile of 16 rows x 64 signed bytes (A) by a tile of 16 rows x 64 signed bytes holding
// a 64 x 16 matrix in groups of 4 (B: row j holds k = 4j .. 4j + 3 of each of 16 columns) and adds the
// int32 products into a 16 x 16 tile (C). The i8_r16k4 weight layout is that B layout already: 16
// consecutive blocks (rb, g .. g + 15) are the B tile of row block rb and columns 4 g .. 4 g + 63, with the
// layer's rows as the tile's columns. A holds 16 samples x 64 activation columns. Signed by signed bytes,
// summed exactly in int32: no offset correction, and the results are the reference's bit for bit.
//
// Per call the activations are copied into a zero-padded buffer (samples to a multiple of 16, columns to a
// multiple of 64), so every A tile is whole; a B tile of the last column chunk may read past the layer's
// columns into the next row block or the weights' padding (Int8Dense), which meets only zero activations.
// A tile step is 2 sample blocks x 2 row blocks: 4 C tiles, 2 A and 2 B tiles, all 8 tile registers.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/x86/amx_tiles.h"
#include "kernels/x86/int8_avx512.h"

namespace pyrt::kernels {
namespace {

// Tiles (amx::config_16x64): 0-3 C (sample block i, row block j) at 2 i + j; 4-5 A of sample blocks 0, 1;
// 6-7 B of row blocks 0, 1.

// The epilogue of a C tile stored at c (16 samples x 16 rows): samples b0 .. b0 + 15 (those < batch), rows
// r .. r + 15 (those < r1). (The tile intrinsics take their tile numbers as literals, so the callers store.)
void store_tile(const int32_t (*c)[16], const Int8Epilogue& ep, const Int8Act& a, size_t b0, uint32_t r,
                uint32_t r1, void* y, size_t ldy) {
  const size_t nb = std::min<size_t>(16, a.batch - b0);
  const uint32_t n = std::min<uint32_t>(16, r1 - r);
  for (size_t m = 0; m < nb; ++m)
    avx512::store_rows(ep, _mm512_load_si512(c[m]), a.xs[b0 + m], r, n, y, (b0 + m) * ldy + r);
}

// MB sample blocks (A at q, stride ldq) x RB row blocks (B from w0, w1) over kc columns.
template <int MB, int RB>
void tile_step(const int8_t* q, size_t ldq, const int8_t* w0, const int8_t* w1, size_t kc) {
  _tile_zero(0);
  if constexpr (RB > 1) _tile_zero(1);
  if constexpr (MB > 1) _tile_zero(2);
  if constexpr (MB > 1 && RB > 1) _tile_zero(3);
  for (size_t k = 0; k < kc; k += 64) {
    _tile_loadd(4, q + k, ldq);
    if constexpr (MB > 1) _tile_loadd(5, q + 16 * ldq + k, ldq);
    _tile_loadd(6, w0 + k * 16, 64);
    if constexpr (RB > 1) _tile_loadd(7, w1 + k * 16, 64);
    _tile_dpbssd(0, 4, 6);
    if constexpr (RB > 1) _tile_dpbssd(1, 4, 7);
    if constexpr (MB > 1) _tile_dpbssd(2, 5, 6);
    if constexpr (MB > 1 && RB > 1) _tile_dpbssd(3, 5, 7);
  }
}

template <int MB, int RB>
void block(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, const int8_t* q, size_t ldq, size_t kc,
           size_t b0, uint32_t rb, uint32_t r1, void* y, size_t ldy) {
  const size_t block_bytes = size_t(L.kp) * 16;  // one row block of the weights
  tile_step<MB, RB>(q + b0 * ldq, ldq, L.w + rb * block_bytes, L.w + (rb + 1) * block_bytes, kc);
  const uint32_t r = rb * 16;
  alignas(64) int32_t c[4][16][16];
  _tile_stored(0, c[0], 64);
  if constexpr (RB > 1) _tile_stored(1, c[1], 64);
  if constexpr (MB > 1) _tile_stored(2, c[2], 64);
  if constexpr (MB > 1 && RB > 1) _tile_stored(3, c[3], 64);
  store_tile(c[0], ep, a, b0, r, r1, y, ldy);
  if constexpr (RB > 1) store_tile(c[1], ep, a, b0, r + 16, r1, y, ldy);
  if constexpr (MB > 1) store_tile(c[2], ep, a, b0 + 16, r, r1, y, ldy);
  if constexpr (MB > 1 && RB > 1) store_tile(c[3], ep, a, b0 + 16, r + 16, r1, y, ldy);
}

template <int RB>
void row_blocks(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, const int8_t* q, size_t ldq, size_t kc,
                uint32_t rb, uint32_t r1, void* y, size_t ldy) {
  size_t b = 0;
  for (; b + 32 <= (a.batch + 15) / 16 * 16; b += 32) block<2, RB>(L, a, ep, q, ldq, kc, b, rb, r1, y, ldy);
  if (b < a.batch) block<1, RB>(L, a, ep, q, ldq, kc, b, rb, r1, y, ldy);
}

}  // namespace

void pyrt_i8_gemm__amx(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1,
                       void* y, size_t ldy) {
  if (a.batch == 0 || r0 >= r1) return;
  const size_t kc = (size_t(L.kp) + 63) / 64 * 64, mp = (a.batch + 15) / 16 * 16;
  thread_local std::vector<int8_t> buffer;
  buffer.assign(mp * kc, 0);
  for (size_t b = 0; b < a.batch; ++b) std::memcpy(buffer.data() + b * kc, a.q + b * a.ldq, L.kp);
  _tile_loadconfig(&amx::config_16x64());
  const uint32_t rb_end = (r1 + 15) / 16;
  uint32_t rb = r0 / 16;
  for (; rb + 2 <= rb_end; rb += 2) row_blocks<2>(L, a, ep, buffer.data(), kc, kc, rb, r1, y, ldy);
  if (rb < rb_end) row_blocks<1>(L, a, ep, buffer.data(), kc, kc, rb, r1, y, ldy);
  _tile_release();  // the thread's tile state back to its initial (small) form
}

}  // namespace pyrt::kernels
