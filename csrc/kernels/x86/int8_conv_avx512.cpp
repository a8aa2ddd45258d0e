// pyruntime: int8 convolution kernels, AVX-512 (int8_conv.h): the depthwise body compiled for AVX-512
// (the transpose uses the AVX2 one).
#include "kernels/int8/int8_dwconv_impl.h"

namespace pyrt::kernels {

void pyrt_i8_dwconv__avx512(const Int8DwPlane& p) { detail::dwconv_plane(p); }
void pyrt_i8_dw_phases__avx512(const Int8DwPhases& f, const int8_t* src, int8_t* dst) { detail::dw_phases(f, src, dst); }

}  // namespace pyrt::kernels
