// pyruntime: matmul of two values (format version 5): a [..., M, K] @ b [..., K, N] -> [..., M, N], f32,
// the leading (per-sample) dims broadcast numpy-style, e.g. attention's [H, T, d] @ [H, d, T], or
// [T, K] @ [H, K, N] (a shared by every head). Both operands are activations: each sample has its own b.
//
// Each matrix product is a dense GEMM of the ISA level (kernels::kernel_for<DenseF32>, the kernels of dense
// linear layers): b's matrix is transposed into a per-thread scratch (N x K, the layout a weight has) and a's
// M rows are the batch, C = A B = (B^T A^T)^T (PYRT_ISA=ref: the reference GEMM; tests compare with numpy at
// every level). When b holds one matrix per sample
// (rank 2, or leading dims all 1) the matrices of a are stacked into one product of L * M rows, so b is
// transposed once per sample.
#include <algorithm>

#include "kernels/kernels.h"
#include "runtime/step.h"

namespace pyrt::runtime {
namespace {

// Below this many multiply-adds per run a pool's wake-up costs more than the products save.
constexpr uint64_t kMinParallelMacs = uint64_t(1) << 18;

// The output's leading dims, two of them (1s in front), and each operand's matrix stride along them
// (0 where the operand broadcasts: it has a 1 there, or fewer dims).
struct MatmulGeometry {
  uint32_t m = 0, k = 0, n = 0;
  uint32_t lead[2] = {1, 1};
  uint64_t a_step[2] = {0, 0}, b_step[2] = {0, 0};  // in matrices
  uint64_t a_numel = 0, b_numel = 0;                // per sample
  bool b_single = false;                            // b has one matrix: stack a's rows into one product
};

// The leading dims of `s` (all but the last two) right-aligned into 2 (1s in front).
void lead_dims(const std::vector<uint32_t>& s, uint32_t out[2]) {
  out[0] = out[1] = 1;
  const size_t l = s.size() - 2;
  for (size_t i = 0; i < l; ++i) out[2 - l + i] = s[i];
}

MatmulGeometry matmul_geometry(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b,
                               const std::vector<uint32_t>& out) {
  MatmulGeometry g;
  g.m = a[a.size() - 2], g.k = a.back(), g.n = b.back();
  uint32_t la[2], lb[2];
  lead_dims(a, la);
  lead_dims(b, lb);
  lead_dims(out, g.lead);
  // row-major matrix index of operand x at leading index (l0, l1): (l0 if x0 > 1) * x1 + (l1 if x1 > 1)
  g.a_step[0] = la[0] > 1 ? la[1] : 0, g.a_step[1] = la[1] > 1 ? 1 : 0;
  g.b_step[0] = lb[0] > 1 ? lb[1] : 0, g.b_step[1] = lb[1] > 1 ? 1 : 0;
  g.a_numel = shape_numel(a), g.b_numel = shape_numel(b);
  g.b_single = lb[0] == 1 && lb[1] == 1;
  return g;
}

class MatmulStep final : public Step {
 public:
  explicit MatmulStep(const MatmulGeometry& g) : g_(g) {}

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    const float* a = static_cast<const float*>(in[0]);
    const float* b = static_cast<const float*>(in[1]);
    float* c = static_cast<float*>(out);
    const size_t mk = size_t(g_.m) * g_.k, kn = size_t(g_.k) * g_.n, mn = size_t(g_.m) * g_.n;
    const size_t mats = size_t(g_.lead[0]) * g_.lead[1], c_numel = mats * mn;
    const kernels::GemmFn<kernels::DenseF32> gemm = kernels::kernel_for<kernels::DenseF32>(ctx.isa);
    // C (rows x N) = A (rows x K) B (K x N): the GEMM of a weight B^T over `rows` samples of A. The scratch is
    // the calling thread's, so products may run on the pool's threads at once.
    auto product = [&](const float* am, const float* bm, float* cm, size_t rows) {
      float* bt = kernels::thread_scratch(kn, kernels::Scratch::kRows);  // b's matrix, transposed: N x K
      for (uint32_t k = 0; k < g_.k; ++k)
        for (uint32_t n = 0; n < g_.n; ++n) bt[size_t(n) * g_.k + k] = bm[size_t(k) * g_.n + n];
      gemm(kernels::DenseF32{bt, g_.n, g_.k}, am, rows, cm, nullptr);
    };
    // One task per (sample, output matrix); a b of one matrix per sample stacks a's rows instead (one task
    // per sample). Each product is the same computation whichever thread runs it: the bits do not depend
    // on the thread count.
    const size_t per_sample = g_.b_single ? 1 : mats;
    auto task = [&](size_t t) {
      const size_t s = t / per_sample, mat = t % per_sample;
      const float* as = a + s * g_.a_numel;
      const float* bs = b + s * g_.b_numel;
      float* cs = c + s * c_numel;
      if (g_.b_single) return product(as, bs, cs, mats * g_.m);
      const uint32_t l0 = uint32_t(mat / g_.lead[1]), l1 = uint32_t(mat % g_.lead[1]);
      product(as + (l0 * g_.a_step[0] + l1 * g_.a_step[1]) * mk, bs + (l0 * g_.b_step[0] + l1 * g_.b_step[1]) * kn,
              cs + mat * mn, g_.m);
    };
    const size_t tasks = batch * per_sample;
    if (ctx.pool && tasks >= 2 && work() * batch >= kMinParallelMacs) {
      ctx.pool->run(static_cast<unsigned>(std::min<size_t>(tasks, UINT32_MAX)), [&](unsigned t) { task(t); });
    } else {
      for (size_t t = 0; t < tasks; ++t) task(t);
    }
  }

  uint64_t work() const override {  // multiply-adds
    return uint64_t(g_.lead[0]) * g_.lead[1] * g_.m * g_.k * g_.n;
  }

 private:
  MatmulGeometry g_;
};

}  // namespace

StepSpec build_matmul(const BuildContext& ctx) {
  StepSpec s;
  s.step = std::make_unique<MatmulStep>(matmul_geometry(*ctx.in_shapes[0], *ctx.in_shapes[1], ctx.out_shape));
  s.takes = {ValueType::f32(), ValueType::f32()};
  s.gives = ValueType::f32();
  return s;
}

}  // namespace pyrt::runtime
