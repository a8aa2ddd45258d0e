// pyruntime: the f32 matrix product of two activations (matmul_f32.h). Loop order i-p-j with the j loop
// contiguous, so the compiler vectorizes it at the baseline ISA; blocked over N and K so that the panel of
// b the rows stream (kBlockK x kBlockN floats) stays in cache, and four rows of c at a time, so every b
// vector loaded serves four rows. Each c[i][j] still adds its k products in order p = 0 .. k - 1.
#include "kernels/ref/matmul_f32.h"

#include <algorithm>
#include <cstring>

namespace pyrt::kernels::ref {
namespace {

constexpr size_t kBlockN = 256;  // columns of a panel: a c row piece of 1 KiB stays in L1
constexpr size_t kBlockK = 64;   // rows of a panel: 64 x 256 floats = 64 KiB, in L2

// c_r[0..n) += a_r[p] * b[p * ldb + 0..n) for p in [0, kb), for the `rows` rows r (1..4) at once.
template <int kRows>
void panel_rows(const float* a, size_t lda, const float* __restrict b, size_t ldb, float* c, size_t ldc,
                size_t kb, size_t n) {
  float* __restrict c0 = c;
  float* __restrict c1 = c + (kRows > 1 ? ldc : 0);
  float* __restrict c2 = c + (kRows > 2 ? 2 * ldc : 0);
  float* __restrict c3 = c + (kRows > 3 ? 3 * ldc : 0);
  for (size_t p = 0; p < kb; ++p) {
    const float* __restrict bp = b + p * ldb;
    const float a0 = a[p];
    const float a1 = kRows > 1 ? a[lda + p] : 0.0f;
    const float a2 = kRows > 2 ? a[2 * lda + p] : 0.0f;
    const float a3 = kRows > 3 ? a[3 * lda + p] : 0.0f;
    for (size_t j = 0; j < n; ++j) {
      const float bv = bp[j];
      c0[j] += a0 * bv;
      if (kRows > 1) c1[j] += a1 * bv;
      if (kRows > 2) c2[j] += a2 * bv;
      if (kRows > 3) c3[j] += a3 * bv;
    }
  }
}

}  // namespace

void matmul_f32(const float* a, const float* b, float* c, size_t m, size_t k, size_t n) {
  for (size_t i = 0; i < m; ++i) std::memset(c + i * n, 0, n * sizeof(float));
  for (size_t n0 = 0; n0 < n; n0 += kBlockN) {
    const size_t nb = std::min(kBlockN, n - n0);
    for (size_t k0 = 0; k0 < k; k0 += kBlockK) {
      const size_t kb = std::min(kBlockK, k - k0);
      const float* bp = b + k0 * n + n0;
      size_t i = 0;
      for (; i + 4 <= m; i += 4) panel_rows<4>(a + i * k + k0, k, bp, n, c + i * n + n0, n, kb, nb);
      for (; i < m; ++i) panel_rows<1>(a + i * k + k0, k, bp, n, c + i * n + n0, n, kb, nb);
    }
  }
}

}  // namespace pyrt::kernels::ref
