// pyruntime: int8 kernels, AVX-512BW without VNNI.
//
// Dense: vpmaddubsw multiplies unsigned by signed bytes and saturates pair sums to int16, so it gets |w|
// (0..127) against q with w's sign moved onto it (a masked negation: zmm has no vpsignb): a pair sum is at
// most 2 * 127 * 127 = 32258 and never saturates; vpmaddwd with ones widens the pairs to int32.
// Sparse (i8_csr): 16 nonzeros of a row at a time, the activations gathered as dwords at their columns and
// sign-extended from their low byte, multiplied by the sign-extended weights in int32.
#include "kernels/x86/int8_avx512.h"

namespace pyrt::kernels {
namespace {

struct DotBw {
  struct W {
    __m512i absw;
    __mmask64 neg;
  };
  static W prep(__m512i w) { return {_mm512_abs_epi8(w), _mm512_movepi8_mask(w)}; }
  static __m512i bcast(const int8_t* q4) { return avx512::bcast4(q4); }
  static __m512i dot(__m512i acc, const W& w, __m512i q) {
    const __m512i qs = _mm512_mask_sub_epi8(q, w.neg, _mm512_setzero_si512(), q);
    const __m512i p16 = _mm512_maddubs_epi16(w.absw, qs);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p16, _mm512_set1_epi16(1)));
  }
  static __m512i correction(const int32_t*) { return _mm512_setzero_si512(); }
};

template <class Col>
int32_t row_dot(const Col* col, const int8_t* val, uint32_t j0, uint32_t j1, const int8_t* q) {
  __m512i acc = _mm512_setzero_si512();
  for (uint32_t j = j0; j < j1; j += 16) {
    const __mmask16 m = avx512::tail_mask(j1 - j);
    const __m512i c = avx512::load_cols(col + j, m);
    // 4 bytes at q + column (kInt8ActPad covers the bytes past the row); the low byte is q[column]
    __m512i x = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, c, q, 1);
    x = _mm512_srai_epi32(_mm512_slli_epi32(x, 24), 24);
    const __m512i w = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, val + j));
    acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(x, w));
  }
  return _mm512_reduce_add_epi32(acc);
}

}  // namespace

void pyrt_i8_gemm__avx512(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1,
                          void* y, size_t ldy) {
  avx512::gemm<DotBw>(L, a, ep, r0, r1, y, ldy);
}

void pyrt_i8_spmm__avx512(const Int8Csr& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1,
                          void* y, size_t ldy) {
  for (uint32_t rb = r0; rb < r1; rb += 16) {
    const uint32_t n = std::min<uint32_t>(16, r1 - rb);
    for (size_t b = 0; b < a.batch; ++b) {
      const int8_t* q = a.q + b * a.ldq;
      alignas(64) int32_t acc[16] = {};
      for (uint32_t i = 0; i < n; ++i) {
        const uint32_t r = rb + i, j0 = L.rowptr[r], j1 = L.rowptr[r + 1];
        acc[i] = L.col16 ? row_dot(L.col16, L.val, j0, j1, q) : row_dot(L.col32, L.val, j0, j1, q);
      }
      avx512::store_rows(ep, _mm512_load_si512(acc), a.xs[b], rb, n, y, b * ldy + rb);
    }
  }
}

}  // namespace pyrt::kernels
