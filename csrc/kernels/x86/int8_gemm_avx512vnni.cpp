// pyruntime: int8 GEMM, AVX-512 VNNI. vpdpbusd multiplies unsigned by signed bytes, so the activations go
// in as q + 128 (q xor 0x80, as u8) against the signed weights, and 128 * (the row's weight sum) is taken
// off each sum at the end: int32 arithmetic wraps, so the result is exact whenever the true sum fits, which
// the format's limit on int8 layer inputs guarantees.
#include "kernels/x86/int8_avx512.h"

namespace pyrt::kernels {

void pyrt_i8_gemm__avx512vnni(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1,
                              void* y, size_t ldy) {
  avx512::gemm<avx512::DotVnni>(L, a, ep, r0, r1, y, ldy);
}

}  // namespace pyrt::kernels
