// pyruntime: the int8 kernels with the Armv8.2 dot product (sdot: 4 int8 products summed into each int32
// lane; this file is compiled with -march=armv8.2-a+dotprod and dispatched only at Isa::neon_dot). The
// templates: arm/int8_neon.h, DotSdot policy. Dense (i8_r16k4): batch 1 runs 4 row blocks per pass, larger
// batches 1 row block x 4 samples (16 accumulators). Sparse (i8_p128): tbl/tbx gathers, 2 samples per pass.
// Conv tile: 4 output channels x 16 positions per pass.
#include "kernels/arm/int8_neon.h"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "int8_gemm_neondot.cpp needs -march=armv8.2-a+dotprod (CMakeLists.txt sets it for *_neondot.cpp)"
#endif

namespace pyrt::kernels {

void pyrt_i8_gemm__neon_dot(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1,
                            void* y, size_t ldy) {
  neon_i8::gemm<neon_i8::DotSdot, 4, 4>(L, a, ep, r0, r1, y, ldy);
}

void pyrt_i8_spmm__neon_dot(const Int8Panels& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0,
                            uint32_t r1, void* y, size_t ldy) {
  neon_i8::spmm<neon_i8::DotSdot, 2>(L, a, ep, r0, r1, y, ldy);
}

void pyrt_i8_conv_tile__neon_dot(const Int8ConvTile& t) { neon_i8::conv_tile<neon_i8::DotSdot, 4>(t); }

}  // namespace pyrt::kernels
