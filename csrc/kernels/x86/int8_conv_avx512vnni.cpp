// pyruntime: the positions-vectorized int8 conv tile, AVX-512 VNNI (int8_conv_avx512.h: ConvDotVnni).
#include "kernels/x86/int8_conv_avx512.h"

namespace pyrt::kernels {

void pyrt_i8_conv_tile__avx512vnni(const Int8ConvTile& t) { avx512::conv_tile<avx512::ConvDotVnni>(t); }

}  // namespace pyrt::kernels
