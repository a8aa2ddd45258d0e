// pyruntime: the dense int8 GEMM, AVX-512BW without VNNI. vpmaddubsw multiplies unsigned by signed bytes and
// saturates pair sums to int16, so it gets |w| (0..127) against q with w's sign moved onto it (a masked
// negation: zmm has no vpsignb): a pair sum is at most 2 * 127 * 127 = 32258 and never saturates; vpmaddwd
// with ones widens the pairs to int32. (The sparse kernels: int8_spmm_avx512*.cpp.)
#include "kernels/x86/int8_avx512.h"

namespace pyrt::kernels {
void pyrt_i8_gemm__avx512(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1,
                          void* y, size_t ldy) {
  avx512::gemm<avx512::DotBw>(L, a, ep, r0, r1, y, ldy);
}

}  // namespace pyrt::kernels
