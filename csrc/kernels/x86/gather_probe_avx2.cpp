// pyruntime: the gather measurement (kernels/gather_mode.cpp) at 8 lanes: vgatherdps ymm against
// avx2::gather8.
#include <immintrin.h>

#include "kernels/x86/avx2_util.h"
#include "kernels/x86/gather_probe.h"

namespace pyrt::kernels {
namespace {

struct Ymm {
  using Vec = __m256;
  static constexpr size_t kLanes = 8;
  static Vec zero() { return _mm256_setzero_ps(); }
  static Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
  static void keep(Vec v) { asm volatile("" : : "x"(v)); }
  static Vec hw(const float* t, const uint16_t* c) { return _mm256_i32gather_ps(t, avx2::load_u16x8(c), 4); }
  static Vec scalar(const float* t, const uint16_t* c) { return avx2::gather8(t, c); }
};

}  // namespace

void pyrt_gather_probe__avx2(double* hw_ns, double* scalar_ns) { gather_probe::measure<Ymm>(hw_ns, scalar_ns); }

}  // namespace pyrt::kernels
