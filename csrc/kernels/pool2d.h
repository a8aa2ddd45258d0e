// pyruntime: the pool kernels chosen by ISA level. Only the f32 max pool has vector versions (the same
// separable body compiled per level, kernels/pool_max_f32.h); the other pools are the portable loops of
// ref/pool2d.cpp, bound by memory next to the convolutions around them.
#pragma once

#include <cstddef>

#include "kernels/isa.h"
#include "kernels/ref/ref_kernels.h"

namespace pyrt::kernels {

// ref::max_pool2d_f32 at level isa (the same bits at every level).
void max_pool2d_f32(Isa isa, const ref::Pool2dGeometry& g, const float* x, size_t batch, float* y);

#if PYRT_HAVE_X86_KERNELS
void pyrt_max_pool2d_f32__avx2(const ref::Pool2dGeometry& g, const float* x, size_t batch, float* y);
void pyrt_max_pool2d_f32__avx512(const ref::Pool2dGeometry& g, const float* x, size_t batch, float* y);
#endif

}  // namespace pyrt::kernels
