// pyruntime: the int8 kernels, baseline Advanced SIMD (the templates: arm/int8_neon.h, DotMull policy). Each
// 16 weight bytes (4 rows x 4 columns) meet their activations with vmull_s8 / vmlal_s8 (two groups' products
// summed in int16, exact since |w| <= 127) and vpadalq_s16 into int32 pairs, folded by vpaddq_s32 at the end.
// Dense (i8_r16k4): batch 1 runs 2 row blocks per pass, larger batches 1 row block x 2 samples (16
// accumulators). Sparse (i8_p128): tbl/tbx gathers, one sample at a time (its panel fills 8 registers).
// Conv tile: 2 output channels x 16 positions per pass.
#include "kernels/arm/int8_neon.h"

namespace pyrt::kernels {

void pyrt_i8_gemm__neon(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1,
                        void* y, size_t ldy) {
  neon_i8::gemm<neon_i8::DotMull, 2, 2>(L, a, ep, r0, r1, y, ldy);
}

void pyrt_i8_spmm__neon(const Int8Panels& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1,
                        void* y, size_t ldy) {
  neon_i8::spmm<neon_i8::DotMull, 1>(L, a, ep, r0, r1, y, ldy);
}

void pyrt_i8_conv_tile__neon(const Int8ConvTile& t) { neon_i8::conv_tile<neon_i8::DotMull, 2>(t); }

}  // namespace pyrt::kernels
