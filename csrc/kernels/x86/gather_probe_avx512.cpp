// pyruntime: the gather measurement (kernels/gather_mode.cpp) at 16 lanes: vgatherdps zmm against two
// avx2::gather8 joined, as csr_spmm_avx512.cpp's gather16 does.
#include <immintrin.h>

#include "kernels/x86/avx2_util.h"
#include "kernels/x86/gather_probe.h"

namespace pyrt::kernels {
namespace {

struct Zmm {
  using Vec = __m512;
  static constexpr size_t kLanes = 16;
  static Vec zero() { return _mm512_setzero_ps(); }
  static Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
  static void keep(Vec v) { asm volatile("" : : "v"(v)); }
  static Vec hw(const float* t, const uint16_t* c) {
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF,
                                    _mm512_maskz_cvtepu16_epi32(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c))), t, 4);
  }
  static Vec scalar(const float* t, const uint16_t* c) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(avx2::gather8(t, c)), avx2::gather8(t, c + 8), 1);
  }
};

}  // namespace

void pyrt_gather_probe__avx512(double* hw_ns, double* scalar_ns) { gather_probe::measure<Zmm>(hw_ns, scalar_ns); }

}  // namespace pyrt::kernels
