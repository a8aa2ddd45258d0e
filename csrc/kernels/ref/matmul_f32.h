// pyruntime: the f32 matrix product of two activations (the matmul op, runtime/ops/matmul.cpp).
#pragma once

#include <cstddef>

namespace pyrt::kernels::ref {

// c[m x n] = a[m x k] @ b[k x n], all three row-major and contiguous; c must not overlap a or b.
// Each c[i][j] is sum_p a[i][p] * b[p][j] added in order p = 0, 1, ..., k - 1 from 0 (a multiply and an
// add, rounded apart unless the compiler contracts them; the same on every call), so the result of a row
// does not depend on m or on the other rows. k == 0 gives zeros.
void matmul_f32(const float* a, const float* b, float* c, size_t m, size_t k, size_t n);

}  // namespace pyrt::kernels::ref
