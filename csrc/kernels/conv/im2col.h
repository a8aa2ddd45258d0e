// pyruntime: convolution as patches x GEMM (kernels/conv/conv2d.h, method "im2col").
//
// Per sample and group, the output positions p = oy * out_w + ox are cut into tiles of T positions at
// fixed places (multiples of T from the start of the plane). A tile's patches X[T][K] (row t = the K
// inputs that position p0 + t reads, column (c * kh + ky) * kw + kx as the weight's) go through the
// group's PackedWeight::gemm as a batch of T, giving Y[T][Og], which is transposed into the output planes.
//
// Every GEMM call has batch T and every position the same place in it, whatever output rows were asked
// for: positions of a tile outside the requested rows get zero patches (their results are dropped). The
// GEMM kernels pick their paths by batch size and batch index only, so a position's result does not depend
// on the row range: any split into row ranges is bit-identical to one call (conv2d.h). T is chosen per
// geometry so that X stays in L2 (<= 256 KB) and the tiles cover the plane with little waste.
//
// Groups: each group's rows are packed as a PackedWeight of their own (the same encoding, sliced; a
// codebook keeps its centroids), so the GEMM kernels run unchanged.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/tensor.h"
#include "kernels/conv/conv2d.h"

namespace pyrt::kernels {

// Patches of T positions [p0, p0 + T) of the output plane for one group of one sample: xg is that group's
// first input channel [group_in][in_h][in_w], X is [T][K]. Positions outside [pa, pb) get zero rows.
void im2col_patches(const Conv2dGeometry& g, const float* xg, size_t p0, size_t T, size_t pa, size_t pb, float* X);

// Rows [r0, r1) of a validated tensor as a 2-D tensor [r1 - r0, cols] of the same encoding (codebook:
// the same centroids); dense borrowed values stay borrowed.
DecodedTensor slice_rows(const DecodedTensor& t, uint32_t r0, uint32_t r1);

// An im2col conv for geometry g (validated) and weight w, any encoding.
std::unique_ptr<Conv2d> make_im2col_conv(const Conv2dGeometry& g, const DecodedTensor& w, bool in_place);

}  // namespace pyrt::kernels
