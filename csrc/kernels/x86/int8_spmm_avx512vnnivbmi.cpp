// pyruntime: the sparse int8 kernel on the i8_p128 layout, AVX-512 VNNI + VBMI (vpermi2b picks each step's 64
// activations, as u8 with the offset of 128, from the panel's 128; one vpdpbusd per step). Dispatched only on
// CPUs with VBMI (kernels/int8/int8_weight.cpp).
#include "kernels/x86/int8_avx512.h"

namespace pyrt::kernels {

void pyrt_i8_spmm__avx512vnni(const Int8Panels& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0,
                              uint32_t r1, void* y, size_t ldy) {
  avx512::spmm<avx512::DotVnni>(L, a, ep, r0, r1, y, ldy);
}

}  // namespace pyrt::kernels
