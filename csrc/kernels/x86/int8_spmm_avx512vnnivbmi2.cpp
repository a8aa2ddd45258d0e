// pyruntime: the sparse int8 kernel on masked steps (i8_p128m, int8_layouts.h), AVX-512 VNNI + VBMI + VBMI2: each
// step's offsets and weights are expanded into their lanes with vpexpandb, then looked up and multiplied as on the
// padded layout (int8_avx512.h). Dispatched only on CPUs with VBMI and VBMI2 (kernels/int8/int8_weight.cpp).
#include "kernels/x86/int8_avx512.h"

namespace pyrt::kernels {

void pyrt_i8_spmm_masked__avx512vnni(const Int8Panels& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0,
                                     uint32_t r1, void* y, size_t ldy) {
  avx512::spmm_masked<avx512::DotVnni>(L, a, ep, r0, r1, y, ldy);
}

}  // namespace pyrt::kernels
