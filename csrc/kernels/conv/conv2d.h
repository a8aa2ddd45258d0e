// pyruntime: 2-D convolution over compressed weights (NCHW activations, any weight encoding).
//
// A conv weight [out_c, in_c / groups, kh, kw] is the matrix W of rows = out_c and cols = K =
// in_c / groups * kh * kw (row-major, column index (c * kh + ky) * kw + kx), exactly the 2-D view every
// encoding already stores. Group g owns the rows [g * out_c / groups, (g + 1) * out_c / groups) and reads
// the input channels [g * in_c / groups, (g + 1) * in_c / groups).
//
//   y[b][o][oy][ox] = bias[o] + sum_{c, ky, kx} W[o][(c * kh + ky) * kw + kx]
//                                 * x[b][g * Cg + c][oy * sh - pt + ky * dh][ox * sw - pl + kx * dw]
//
// where taps outside the input read zero (padding). The weights stay in their compressed execution layout:
// no conv inflates W to dense fp32 at run time (the scalar oracle decodes one row at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/tensor.h"
#include "kernels/isa.h"
#include "kernels/output_clamp.h"
#include "kernels/packed_weight.h"

namespace pyrt::kernels {

struct Conv2dGeometry {
  uint32_t in_c = 0, in_h = 0, in_w = 0;     // input per sample [in_c, in_h, in_w]
  uint32_t out_c = 0, out_h = 0, out_w = 0;  // output per sample [out_c, out_h, out_w]
  uint32_t kh = 1, kw = 1;
  uint32_t stride_h = 1, stride_w = 1;
  uint32_t pad_top = 0, pad_left = 0;        // bottom / right padding are implied by out_h / out_w
  uint32_t dilation_h = 1, dilation_w = 1;
  uint32_t groups = 1;

  uint32_t group_in() const { return in_c / groups; }    // input channels per group
  uint32_t group_out() const { return out_c / groups; }  // output channels per group
  uint32_t patch() const { return group_in() * kh * kw; }  // K: columns of W
  size_t in_size() const { return size_t(in_c) * in_h * in_w; }
  size_t out_size() const { return size_t(out_c) * out_h * out_w; }

  // Checks the geometry alone, throwing pyrt::Error(status) with a message naming the field: every size,
  // stride, dilation and group count >= 1, groups dividing both channel counts, and out_h / out_w
  // consistent with the output-size formula
  //     out = (in + pad_begin + pad_end - dilation * (k - 1) - 1) / stride + 1      (integer division)
  // for some implied pad_end >= 0, with the last window starting inside the top/left-padded input
  // ((out - 1) * stride < pad_begin + in); sizes small enough for the 32-bit offsets of the kernels.
  void validate(int status) const;
  // validate(status), and the weight's shape: [out_c, in_c / groups, kh, kw] (rank 4) or its 2-D view
  // [out_c, in_c / groups * kh * kw] (rank 2); the tensor itself is validated by DecodedTensor::validate.
  void validate(const DecodedTensor& w, int status) const;
};

// A conv layer ready to run: its weights packed once (at load time) into the layout of the method chosen
// for this geometry and encoding, immutable afterwards (any number of threads may run it).
class Conv2d {
 public:
  virtual ~Conv2d() = default;

  // How to run: kAuto picks the faster method for this geometry and encoding (the rule, and the
  // measurements behind it, are in conv2d.cpp); the others force one (tests, benchmarks).
  enum class Method { kAuto, kIm2col, kDirect, kDirectLanes };

  // Packs `w` (shape [out_c, in_c / groups, kh, kw], any encoding; validated) for geometry `g`. Checks
  // g.validate(w, PYRT_INVALID_ARGUMENT) again (cheap), so a caller that validated with its own status
  // never sees this one. in_place as for pack(): the im2col method reads dense weights where they lie;
  // direct always copies (its entries interleave offsets with the values).
  static std::unique_ptr<Conv2d> create(const Conv2dGeometry& g, const DecodedTensor& w, bool in_place = false,
                                        Method method = Method::kAuto);

  const Conv2dGeometry& geometry() const { return geom_; }
  // An activation applied to every output as it is written (relu, clamp fused into the conv); none by
  // default. Set before the conv runs, never while it does.
  void set_output_clamp(OutputClamp c) { clamp_ = c; }
  const OutputClamp& output_clamp() const { return clamp_; }

  // Computes output rows [oy0, oy1) of every output channel of `batch` samples: x is [batch, in_c, in_h,
  // in_w], y is [batch, out_c, out_h, out_w] (only the rows asked for are written), bias [out_c] or null.
  // isa must be supported; Isa::ref runs a scalar reference on the same packed weights (im2col: the oracle
  // ref::conv2d below; direct: the scalar twin of its vector kernels). Threads split a layer by samples,
  // or at batch 1 by output rows; results are bit-identical to one call over all rows. Allocation-free
  // after a thread's first call (per-thread scratch, Scratch::kConv).
  virtual void run(Isa isa, const float* x, size_t batch, float* y, const float* bias, uint32_t oy0,
                   uint32_t oy1) const = 0;
  void run(Isa isa, const float* x, size_t batch, float* y, const float* bias) const {
    run(isa, x, batch, y, bias, 0, geom_.out_h);
  }

  // Output channels [o0, o1) of every output row of one sample (the direct method; the others return false
  // and compute nothing): a batch-1 split for narrow outputs, where a row split would leave each thread
  // streaming every weight entry for a few rows. channel_splits(parts): parts + 1 channel boundaries that
  // give the pieces about equal entries (empty where run_channels is not supported). Bit-identical to run().
  // residual r (null: none): as run_residual.
  virtual bool run_channels(Isa, const float*, float*, const float*, uint32_t, uint32_t,
                            const float* /*r*/ = nullptr) const {
    return false;
  }

  // Whether run_residual() computes (the direct method; the others compute nothing): run() that adds r
  // (`batch` samples [out_c, out_h, out_w], apart from y) to every output before the output clamp, y =
  // clamp(conv(x) + r): the bits of run() and then an add (one rounding of the same two floats; where both are
  // NaN, which NaN's payload survives may differ, as it does between a + b and b + a), with no pass of its own
  // (a residual connection fused into the conv, runtime/fusion.h).
  virtual bool adds_residual() const { return false; }
  virtual void run_residual(Isa, const float* /*x*/, size_t /*batch*/, float* /*y*/, const float* /*bias*/,
                            const float* /*r*/, uint32_t /*oy0*/, uint32_t /*oy1*/) const {}
  virtual std::vector<uint32_t> channel_splits(unsigned) const { return {}; }

  // Bytes of the packed weights one pass streams (as PackedWeight::bytes()).
  virtual size_t bytes() const = 0;
  // Execution layout of the weights: im2col the PackedWeight::layout() names (e.g. "csr_lut4"), direct
  // "direct_f32", "direct_csr_f32", "direct_lut8", "direct_csr_lut8" (conv/direct.h).
  virtual const char* layout() const = 0;
  // How the conv runs: "im2col" (patches fed to the GEMM kernels) or "direct" (sparse direct convolution).
  virtual const char* method() const = 0;
  virtual bool in_place() const { return false; }

 protected:
  explicit Conv2d(const Conv2dGeometry& g) : geom_(g) {}
  Conv2dGeometry geom_;
  OutputClamp clamp_;
};

namespace ref {

// The scalar oracle: naive direct convolution in natural order (f32 sums over c, ky, kx as in the formula
// at the top, bias added last), output rows [oy0, oy1) only, weight rows decoded one at a time with
// PackedWeight::decode_row into a small buffer (never the whole W). The weight is given as `nparts`
// PackedWeights of out_c / nparts consecutive rows each: 1 (the whole weight) or groups (one per group,
// as the im2col conv packs them). Conv2d::run(Isa::ref) of the im2col method runs this.
void conv2d(const Conv2dGeometry& g, const PackedWeight* const* parts, uint32_t nparts, const float* x, size_t batch,
            float* y, const float* bias, uint32_t oy0, uint32_t oy1);

}  // namespace ref

}  // namespace pyrt::kernels
