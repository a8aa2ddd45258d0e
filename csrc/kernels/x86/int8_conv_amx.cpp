// pyruntime: the dense int8 conv tile (int8_conv.h) on AMX tiles, level amx.
//
// The tile's patches are already AMX's B layout: block j (16 positions) holds, per group of 4 columns, the
// 16 positions' 4 bytes in 64 bytes, so 16 consecutive groups are a B tile of 64 columns x 16 positions.
// The weight rows are the A side (16 output rows x 64 columns), so a C tile is 16 output rows x 16
// positions: each of its rows is 16 contiguous outputs of one channel plane, stored with the same epilogue
// as the AVX-512 tile (int8_conv_avx512.h). tdpbssd multiplies signed by signed bytes and sums exactly in
// int32: the reference's bits, with no offset correction.
//
// The weight rows come as w64 (rows padded to 16, row length to 64 bytes, with zeros; the conv op packs it
// once at load) or, without it, are copied per call into such a buffer, so every A tile is whole and its
// columns past kp are zeros; a B tile of the last 64 columns may then read
// past the patches' kp columns (into the next block, or kInt8ConvTilePad bytes past the last one), and
// what it reads meets only those zeros. A step is 2 row blocks x 2 position blocks: 4 C tiles, 2 A, 2 B.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/int8/int8_conv.h"
#include "kernels/x86/amx_tiles.h"
#include "kernels/x86/int8_conv_avx512.h"  // conv_store16

namespace pyrt::kernels {
namespace {

// Tiles (amx::config_16x64): 0-3 C (row block i, position block j) at 2 i + j; 4-5 A of row blocks 0, 1;
// 6-7 B of position blocks 0, 1.

// The epilogue of a stored C tile: output rows o0 .. o0 + 15 (those < og), positions from p (those < n).
void store_tile(const Int8ConvTile& t, const int32_t (*c)[16], size_t o0, size_t p) {
  if (p >= t.n) return;
  const __mmask16 m = avx512::tail_mask(t.n - p);
  for (size_t r = 0; r < 16 && o0 + r < t.og; ++r)
    avx512::conv_store16(t, o0 + r, _mm512_load_si512(c[r]), p, m);
}

template <int OB, int PB>
void block(const Int8ConvTile& t, const int8_t* w, size_t ldw, size_t o0, size_t j0) {
  const int8_t* w0 = w + o0 * ldw;
  const int8_t* b0 = t.a + j0 * 16 * t.kp;
  _tile_zero(0);
  if constexpr (PB > 1) _tile_zero(1);
  if constexpr (OB > 1) _tile_zero(2);
  if constexpr (OB > 1 && PB > 1) _tile_zero(3);
  for (size_t k = 0; k < ldw; k += 64) {
    _tile_loadd(4, w0 + k, ldw);
    if constexpr (OB > 1) _tile_loadd(5, w0 + 16 * ldw + k, ldw);
    _tile_loadd(6, b0 + k * 16, 64);
    if constexpr (PB > 1) _tile_loadd(7, b0 + 16 * t.kp + k * 16, 64);
    _tile_dpbssd(0, 4, 6);
    if constexpr (PB > 1) _tile_dpbssd(1, 4, 7);
    if constexpr (OB > 1) _tile_dpbssd(2, 5, 6);
    if constexpr (OB > 1 && PB > 1) _tile_dpbssd(3, 5, 7);
  }
  alignas(64) int32_t c[4][16][16];
  _tile_stored(0, c[0], 64);
  if constexpr (PB > 1) _tile_stored(1, c[1], 64);
  if constexpr (OB > 1) _tile_stored(2, c[2], 64);
  if constexpr (OB > 1 && PB > 1) _tile_stored(3, c[3], 64);
  store_tile(t, c[0], o0, j0 * 16);
  if constexpr (PB > 1) store_tile(t, c[1], o0, j0 * 16 + 16);
  if constexpr (OB > 1) store_tile(t, c[2], o0 + 16, j0 * 16);
  if constexpr (OB > 1 && PB > 1) store_tile(t, c[3], o0 + 16, j0 * 16 + 16);
}

template <int OB>
void position_blocks(const Int8ConvTile& t, const int8_t* w, size_t ldw, size_t o0) {
  const size_t blocks = (t.n + 15) / 16;
  size_t j = 0;
  for (; j + 2 <= blocks; j += 2) block<OB, 2>(t, w, ldw, o0, j);
  if (j < blocks) block<OB, 1>(t, w, ldw, o0, j);
}

}  // namespace

void pyrt_i8_conv_tile__amx(const Int8ConvTile& t) {
  if (t.n == 0 || t.og == 0) return;
  const size_t ldw = (t.kp + 63) / 64 * 64, rows = (t.og + 15) / 16 * 16;
  const int8_t* w = t.w64;
  if (w == nullptr) {
    thread_local std::vector<int8_t> wbuf;
    wbuf.clear();
    int8_conv_w64(t.w, t.og, t.kp, wbuf);
    w = wbuf.data();
  }
  _tile_loadconfig(&amx::config_16x64());
  size_t o = 0;
  for (; o + 32 <= rows; o += 32) position_blocks<2>(t, w, ldw, o);
  if (o < rows) position_blocks<1>(t, w, ldw, o);
  _tile_release();
}

}  // namespace pyrt::kernels
