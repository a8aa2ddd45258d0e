// pyruntime: the sparse int8 kernel on the i8_p128 layout, AVX-512BW + VBMI (vpermi2b picks each step's 64
// activations from the panel's 128; vpmaddubsw + vpmaddwd as the dense AVX-512BW kernel). Dispatched only on
// CPUs with VBMI (kernels/int8/int8_weight.cpp); its flags add -mavx512vbmi to the AVX-512 ones.
#include "kernels/x86/int8_avx512.h"

namespace pyrt::kernels {

void pyrt_i8_spmm__avx512(const Int8Panels& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1,
                          void* y, size_t ldy) {
  avx512::spmm<avx512::DotBw>(L, a, ep, r0, r1, y, ldy);
}

}  // namespace pyrt::kernels
