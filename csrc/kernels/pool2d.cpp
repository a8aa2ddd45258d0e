// pyruntime: dispatch of the pool kernels (kernels/pool2d.h).
#include "kernels/pool2d.h"

namespace pyrt::kernels {

void max_pool2d_f32(Isa isa, const ref::Pool2dGeometry& g, const float* x, size_t batch, float* y) {
#if PYRT_HAVE_X86_KERNELS
  if (isa >= Isa::avx512) return pyrt_max_pool2d_f32__avx512(g, x, batch, y);
  if (isa >= Isa::avx2) return pyrt_max_pool2d_f32__avx2(g, x, batch, y);
#else
  (void)isa;
#endif
  ref::max_pool2d_f32(g, x, batch, y);
}

}  // namespace pyrt::kernels
