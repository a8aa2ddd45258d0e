// pyruntime: int8 convolutions (FORMAT.md 2.5): conv2d with an int8 or csr+int8 weight (dynamic: each sample's
// f32 input is quantized with one scale, max |x| over the sample / 127) and qconv2d (static: it takes an i8
// value of its input_scale and gives i8 of its output_scale, or f32 when that is 0, its clamp applied before).
//
// A sample's int8 input is laid out channels-last with its zero padding, [group][row][column][channel] (zero
// padding is q = 0, exact). A patch (the K = Cg * kh * kw inputs of one output position) is then kh runs of
// kw * Cg contiguous bytes (kh * kw runs of Cg when dilated across), copied 16 bytes at a time; the weight's
// columns are permuted once at load to that (ky, kx, c) order. A 1x1 convolution of stride 1 reads the
// channels-last input in place. Patches of up to kTile positions go through the int8 GEMM kernels of the
// group's rows, and each output gets the int8 epilogue. The sums are exact integers, so the column order, the
// tiling and the split across threads (by tiles at batch 1, by samples above) never change a bit. A depthwise
// convolution (one input channel per group) runs directly instead (ops/conv_int8_depthwise.cpp).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "kernels/int8/int8_conv.h"
#include "kernels/int8/int8_weight.h"
#include "kernels/kernels.h"
#include "runtime/ops/conv_int8.h"
#include "runtime/ops/weights.h"

namespace pyrt::runtime {
namespace {

constexpr size_t kTile = 128;                     // output positions per GEMM call
constexpr uint64_t kMinMacsPerTask = 256 * 1024;  // as ops/conv.cpp
constexpr size_t kCopySlack = 16;                 // bytes a 16-byte run copy may read or write past a run
static_assert(kernels::kInt8ActPad >= kCopySlack, "the channels-last input's pad serves both");

// Rows [r0, r1) of an int8 or csr+int8 conv weight (viewed as [rows, Cg * kh * kw], column (c * kh + ky) *
// kw + kx), its columns permuted to (ky * kw + kx) * Cg + c: the order of a channels-last patch.
DecodedTensor slice_channels_last(const DecodedTensor& t, uint32_t r0, uint32_t r1, uint32_t cg, uint32_t kh,
                                  uint32_t kw) {
  const size_t cols = t.cols(), taps = size_t(kh) * kw;
  std::vector<uint32_t> to(cols);  // old column -> new column
  for (uint32_t c = 0; c < cg; ++c)
    for (size_t tap = 0; tap < taps; ++tap) to[c * taps + tap] = uint32_t(tap * cg + c);
  DecodedTensor s;
  s.name = t.name;
  s.encoding = t.encoding;
  s.shape = {r1 - r0, uint32_t(cols)};
  s.scales.assign(t.scales.begin() + r0, t.scales.begin() + r1);
  if (t.encoding == Encoding::int8) {
    s.qvalues.resize(size_t(r1 - r0) * cols);
    for (uint32_t r = r0; r < r1; ++r)
      for (size_t j = 0; j < cols; ++j) s.qvalues[(r - r0) * cols + to[j]] = t.qvalues[r * cols + j];
    return s;
  }
  s.rowptr.push_back(0);
  std::vector<std::pair<uint32_t, int8_t>> row;
  for (uint32_t r = r0; r < r1; ++r) {
    row.clear();
    for (uint32_t j = t.rowptr[r]; j < t.rowptr[r + 1]; ++j) row.emplace_back(to[t.colidx[j]], t.qvalues[j]);
    std::sort(row.begin(), row.end());
    for (const auto& [c, v] : row) {
      s.colidx.push_back(c);
      s.qvalues.push_back(v);
    }
    s.rowptr.push_back(uint32_t(s.colidx.size()));
  }
  return s;
}

// n > 0 bytes from src to dst, 16 at a time: may read and write up to 15 bytes past the run.
inline void copy_run(int8_t* dst, const int8_t* src, size_t n) {
  for (size_t i = 0; i < n; i += 16) std::memcpy(dst + i, src + i, 16);
}

// A csr+int8 tensor as int8: its entries in zero rows.
DecodedTensor densify(const DecodedTensor& t) {
  DecodedTensor d;
  d.name = t.name;
  d.encoding = Encoding::int8;
  d.shape = t.shape;
  d.scales = t.scales;
  const size_t cols = t.cols();
  d.qvalues.assign(t.rows() * cols, 0);
  for (size_t r = 0; r < t.rows(); ++r)
    for (uint32_t j = t.rowptr[r]; j < t.rowptr[r + 1]; ++j) d.qvalues[r * cols + t.colidx[j]] = t.qvalues[j];
  return d;
}

class Int8ConvStep final : public Step {
 public:
  Int8ConvStep(const BuildContext& ctx, LayerInfo& li, bool is_static, const QLinearAttrs& a)
      : g_(ops::conv_geometry(ctx)), static_(is_static), in_scale_(a.input_scale) {
    const DecodedTensor& w = ctx.tensor(0);
    const uint32_t og = g_.group_out();
    std::vector<DecodedTensor> parts;
    for (uint32_t grp = 0; grp < g_.groups; ++grp)
      parts.push_back(slice_channels_last(w, grp * og, (grp + 1) * og, g_.group_in(), g_.kh, g_.kw));
    dense_ = w.encoding == Encoding::int8;
    if (!dense_) {
      uint64_t steps = 0;
      for (const DecodedTensor& part : parts) {
        parts_.push_back(kernels::Int8Weight::pack(part));
        steps += parts_.back()->steps();
      }
      kp_ = parts_[0]->kp();
      if (amx_dense_is_faster(steps)) {  // run dense on the tiles; the same sums, so the same bits
        parts_.clear();
        for (DecodedTensor& part : parts) part = densify(part);
        dense_ = true;
      } else {
        for (const auto& part : parts_) li.exec_bytes += part->bytes();
        li.steps = steps;
      }
    }
    if (dense_) {  // row-major, rows of kp (K rounded up to 4), for kernels::int8_conv_tile
      for (const DecodedTensor& part : parts) {
        const size_t k = part.cols(), kp = (k + 3) / 4 * 4;
        kp_ = kp;
        for (size_t r = 0; r < og; ++r) {
          const int8_t* row = part.qvalues.data() + r * k;
          wrows_.insert(wrows_.end(), row, row + k);
          wrows_.insert(wrows_.end(), kp - k, 0);
          int32_t sum = 0;
          for (size_t c = 0; c < k; ++c) sum += row[c];
          wsum_.push_back(sum);
        }
        wscale_.insert(wscale_.end(), part.scales.begin(), part.scales.end());
        li.exec_bytes += og * (kp + 8);
      }
    }
    if (dense_ && kernels::isa_supported(kernels::Isa::amx))  // AMX's A tiles, packed once (int8_conv.h)
      for (uint32_t grp = 0; grp < g_.groups; ++grp)
        w64_at_.push_back(kernels::int8_conv_w64(wrows_.data() + size_t(grp) * og * kp_, og, kp_, w64_));
    const size_t prow = dense_ ? og : parts_[0]->padded_rows();
    bias_.resize(size_t(g_.groups) * prow);
    has_bias_ = ctx.node.tensors.size() == 2;
    if (has_bias_) {
      const DecodedTensor& b = ctx.tensor(1);
      for (uint32_t grp = 0; grp < g_.groups; ++grp)
        std::memcpy(bias_.data() + grp * prow, b.value_data() + size_t(grp) * og, og * sizeof(float));
      li.file_bytes += ctx.tensor_file_bytes(1);
      li.exec_bytes += g_.out_c * sizeof(float);
      li.dense_bytes += g_.out_c * sizeof(float);
    }
    lo_ = is_static ? a.min : -std::numeric_limits<float>::infinity();
    hi_ = is_static ? a.max : std::numeric_limits<float>::infinity();
    inv_out_ = is_static && a.output_scale > 0 ? 1.0f / a.output_scale : 0.0f;
    li.layout = dense_ ? "i8_k4x16" : parts_[0]->layout();
    li.method = is_static ? "im2col-static" : "im2col-dynamic";
    li.groups = g_.groups;
    // Model.work's share: the stored weights' multiply-adds, and the patches the im2col writes (in_c * kh * kw
    // bytes per output position): a kernel thousands of taps wide over a few channels costs its patches, not
    // its nonzeros (the fuzzer found a 3 x 2051 kernel with 50 nonzeros that ran for seconds under a work of
    // 12 M). The thread splits weigh the multiply-adds, as before.
    macs_ = w.nnz() * uint64_t(g_.out_h) * g_.out_w;
    work_ = macs_ + uint64_t(g_.in_c) * g_.kh * g_.kw * g_.out_h * g_.out_w;
    // the padded channels-last extent: every row / column a window reads (the bottom / right padding implied)
    hp_ = ops::padded_rows(g_);
    wp_ = ops::padded_cols(g_);
    in_place_ = g_.kh == 1 && g_.kw == 1 && g_.stride_h == 1 && g_.stride_w == 1 && g_.pad_top == 0 &&
                g_.pad_left == 0 && hp_ == g_.in_h && wp_ == g_.in_w && kp_ == g_.group_in();
    tiles_ = (size_t(g_.out_h) * g_.out_w + kTile - 1) / kTile;
    planar_ = dense_ && in_place_ && g_.group_in() % 4 == 0;
    if (dense_ && !in_place_ && g_.group_in() % 4 == 0)  // the taps' byte offsets, for int8_patch_gather
      for (uint32_t ky = 0; ky < g_.kh; ++ky)
        for (uint32_t kx = 0; kx < g_.kw; ++kx)
          taps_.push_back(int32_t((size_t(ky) * g_.dilation_h * wp_ + size_t(kx) * g_.dilation_w) * g_.group_in()));
  }

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    const size_t items = size_t(g_.groups) * tiles_;
    if (ctx.pool && batch > 1 && macs_ * batch >= 2 * kMinMacsPerTask) {
      const unsigned parts = static_cast<unsigned>(std::min<size_t>(ctx.pool->threads(), batch));
      ctx.pool->run(parts, [&](unsigned i) {
        for (size_t b = batch * i / parts; b < batch * (i + 1) / parts; ++b) {
          const Input x = channels_last(ctx.isa, in[0], b);
          tiles(ctx.isa, x, out, b, 0, items);
        }
      });
      return;
    }
    const unsigned parts = ctx.pool && macs_ >= 2 * kMinMacsPerTask
                               ? static_cast<unsigned>(std::min<size_t>(ctx.pool->threads(), items))
                               : 1;
    for (size_t b = 0; b < batch; ++b) {
      const Input x = channels_last(ctx.isa, in[0], b);
      if (parts < 2) {
        tiles(ctx.isa, x, out, b, 0, items);
        continue;
      }
      ctx.pool->run(parts, [&](unsigned i) { tiles(ctx.isa, x, out, b, items * i / parts, items * (i + 1) / parts); });
    }
  }

  uint64_t work() const override { return work_; }

  uint32_t set_threads(unsigned threads) override {
    const size_t items = size_t(g_.groups) * tiles_;
    return threads > 1 && macs_ >= 2 * kMinMacsPerTask ? uint32_t(std::min<size_t>(threads, items)) : 1;
  }

 private:
  struct Input {
    const int8_t* q;  // [group][hp][wp][Cg], zero padding, then kInt8ActPad zero bytes (the kernels' pad);
                      // planar_: the sample's int8 input as it is, [group][Cg][h][w]
    float scale;
  };

  // Sample b's int8 input, channels-last and padded, in this thread's scratch (kernels::Scratch::kConv).
  Input channels_last(kernels::Isa isa, const void* x, size_t b) const {
    const kernels::Conv2dGeometry& g = g_;
    const size_t in_size = g.in_size(), plane = size_t(g.in_h) * g.in_w, cg = g.group_in();
    const size_t bytes = size_t(g.groups) * hp_ * wp_ * cg + kernels::kInt8ActPad;
    const size_t qbytes = static_ ? 0 : (in_size + 63) / 64 * 64;
    int8_t* base = reinterpret_cast<int8_t*>(kernels::thread_scratch((qbytes + bytes) / 4 + 16, kernels::Scratch::kConv));
    const int8_t* qin = static_cast<const int8_t*>(x) + b * in_size;
    float scale = in_scale_;
    if (!static_) {
      kernels::quantize_rows(isa, static_cast<const float*>(x) + b * in_size, 1, in_size, in_size, base, &scale);
      qin = base;
    }
    if (planar_) return {qin, scale};  // a 1x1 conv's blocks come straight from the channel planes
    int8_t* hwc = base + qbytes;
    std::memset(hwc, 0, bytes);
    for (uint32_t grp = 0; grp < g.groups; ++grp)
      kernels::int8_channels_last(isa, qin + grp * cg * plane, cg, g.in_h, g.in_w,
                                  hwc + grp * hp_ * wp_ * cg + (g.pad_top * wp_ + g.pad_left) * cg, wp_ * cg, cg);
    return {hwc, scale};
  }

  // The patch rows (kp_ bytes each, zero from K on) of m positions from (oy, ox) on, out of one group's
  // channels-last input src; (oy, ox) advances past them.
  void patch_rows(const int8_t* src, size_t& oy, size_t& ox, size_t m, int8_t* rows) const {
    const kernels::Conv2dGeometry& g = g_;
    const size_t cg = g.group_in(), k = cg * g.kh * g.kw;
    const size_t row_step = g.dilation_h * wp_ * cg, run = g.dilation_w == 1 ? g.kw * cg : cg;
    const size_t runs_per_row = g.dilation_w == 1 ? 1 : g.kw, col_step = g.dilation_w * cg;
    for (size_t i = 0; i < m; ++i) {
      int8_t* row = rows + i * kp_;
      const int8_t* win = src + (oy * g.stride_h * wp_ + ox * g.stride_w) * cg;
      int8_t* dst = row;
      for (uint32_t ky = 0; ky < g.kh; ++ky, win += row_step)
        for (size_t r = 0; r < runs_per_row; ++r, dst += run) copy_run(dst, win + r * col_step, run);
      std::memset(row + k, 0, kp_ - k);
      if (++ox == g.out_w) ox = 0, ++oy;
    }
  }

  // Whether a csr+int8 weight of `steps` steps in all runs faster dense, when the model is loaded at level
  // amx. Cycles per 16 output positions on a Sapphire Rapids core, fitted at batch 1 and 8 to ResNet-20,
  // LeNet-5 and MobileNet-V2 shapes (16-128 channels 3x3, 1x1 24-192 channels, 6->16 5x5; 50-95% pruned):
  //   dense:  about 140 per tile product (tdpbssd of 16 rows x 64 columns, its loads and epilogue) and 10 per
  //           4-column group of the patches;
  //   sparse: about 43 per step, 27 per 4-column group of the patch rows, 300 per 16-row block (its epilogue
  //           into the channel planes).
  // The two forms give the same bits, so the choice only moves time. The dense weight (og x K bytes per
  // group) is kept under 1 MiB.
  bool amx_dense_is_faster(uint64_t steps) const {
#if PYRT_HAVE_AMX
    if (kernels::active_isa() != kernels::Isa::amx) return false;
    const double og = g_.group_out(), k = double(g_.group_in()) * g_.kh * g_.kw, n = g_.groups;
    if (og * k * n > double(1 << 20)) return false;
    const double blocks = std::ceil(og / 16), groups = std::ceil(k / 4);
    const double dense = n * (140.0 * blocks * std::ceil(k / 64) + 10.0 * groups);
    const double sparse = 43.0 * double(steps) + n * (27.0 * groups + 300.0 * blocks);
    return dense < sparse;
#else
    (void)steps;
    return false;
#endif
  }

  // Work items [i0, i1) of sample b (item = group * tiles_ + tile) of a dense weight: the patches of 16
  // positions at a time, their 4-byte groups transposed into the positions-vectorized layout of
  // kernels::Int8ConvTile, and the tile's outputs straight into the channel planes.
  void dense_tiles(kernels::Isa isa, const Input& x, void* y, size_t b, size_t i0, size_t i1) const {
    const kernels::Conv2dGeometry& g = g_;
    const size_t plane = size_t(g.out_h) * g.out_w, og = g.group_out(), cg = g.group_in();
    const size_t groups4 = kp_ / 4, out_bytes = inv_out_ > 0 ? 1 : 4;
    // scratch: 16 patch rows (+ the copies' slack), then the tile in the vectorized layout
    const size_t rows_bytes = (16 * kp_ + kCopySlack + 63) / 64 * 64;
    uint8_t* base = reinterpret_cast<uint8_t*>(
        kernels::thread_scratch((rows_bytes + kTile * kp_ + kernels::kInt8ConvTilePad) / 4 + 16,
                                kernels::Scratch::kInt8));
    int8_t* rows16 = reinterpret_cast<int8_t*>(base);
    int8_t* tile = reinterpret_cast<int8_t*>(base + rows_bytes);
    const kernels::Int8PatchGatherFn gather = taps_.empty() ? nullptr : kernels::int8_patch_gather_kernel(isa);
    for (size_t item = i0; item < i1; ++item) {
      const size_t grp = item / tiles_, p0 = (item % tiles_) * kTile;
      const size_t n = std::min(kTile, plane - p0);
      const int8_t* src = x.q + grp * hp_ * wp_ * cg;
      size_t oy = p0 / g.out_w, ox = p0 % g.out_w;
      for (size_t j = 0; j * 16 < n; ++j) {
        const size_t m = std::min<size_t>(16, n - j * 16);
        if (planar_) {
          kernels::int8_planar_block(x.q + grp * cg * plane + p0 + j * 16, plane, cg, m, tile + j * 16 * kp_);
          continue;
        }
        if (gather) {  // straight from the input, where the gathers are fast
          int32_t pos[16];
          for (size_t i = 0; i < m; ++i) {
            pos[i] = int32_t((oy * g.stride_h * wp_ + ox * g.stride_w) * cg);
            if (++ox == g.out_w) ox = 0, ++oy;
          }
          gather({src, pos, uint32_t(m), taps_.data(), uint32_t(taps_.size()), uint32_t(cg), tile + j * 16 * kp_});
          continue;
        }
        const int8_t* rows = src + (p0 + j * 16) * cg;  // in place: the channels-last input rows
        if (!in_place_ || m < 16) {
          patch_rows(src, oy, ox, m, rows16);
          std::memset(rows16 + m * kp_, 0, (16 - m) * kp_);
          rows = rows16;
        } else {
          oy += (ox + 16) / g.out_w, ox = (ox + 16) % g.out_w;
        }
        kernels::transpose_to_planes(isa, reinterpret_cast<const float*>(rows), 16, groups4,
                                     reinterpret_cast<float*>(tile + j * 16 * kp_), 16);
      }
      const size_t w0 = grp * og;
      const kernels::Int8ConvTile t{tile, n, wrows_.data() + w0 * kp_, wsum_.data() + w0, og, kp_, x.scale,
                                    wscale_.data() + w0, has_bias_ ? bias_.data() + w0 : nullptr, lo_, hi_, inv_out_,
                                    static_cast<uint8_t*>(y) + (b * g.out_size() + w0 * plane + p0) * out_bytes,
                                    plane, w64_.empty() ? nullptr : w64_.data() + w64_at_[grp]};
      kernels::int8_conv_tile(isa, t);
    }
  }

  // Work items [i0, i1) of sample b (item = group * tiles_ + tile): patches, GEMM, transpose into the planes.
  void tiles(kernels::Isa isa, const Input& x, void* y, size_t b, size_t i0, size_t i1) const {
    if (dense_) return dense_tiles(isa, x, y, b, i0, i1);
    const kernels::Conv2dGeometry& g = g_;
    const size_t plane = size_t(g.out_h) * g.out_w, og = g.group_out(), cg = g.group_in();
    const size_t prow = parts_[0]->padded_rows();
    const size_t out_bytes = inv_out_ > 0 ? 1 : 4;
    // scratch: the patches of a tile (+ the kernels' pad + the copies' slack), the tile's scales, its outputs
    const size_t patch_bytes = (kTile * kp_ + kernels::kInt8ActPad + kCopySlack + 63) / 64 * 64;
    uint8_t* base = reinterpret_cast<uint8_t*>(kernels::thread_scratch(
        (patch_bytes + kTile * sizeof(float) + kTile * og * out_bytes) / 4 + 16, kernels::Scratch::kInt8));
    int8_t* patches = reinterpret_cast<int8_t*>(base);
    float* xs = reinterpret_cast<float*>(base + patch_bytes);
    uint8_t* ytile = reinterpret_cast<uint8_t*>(xs + kTile);
    std::fill(xs, xs + kTile, x.scale);
    for (size_t item = i0; item < i1; ++item) {
      const size_t grp = item / tiles_, p0 = (item % tiles_) * kTile;
      const size_t n = std::min(kTile, plane - p0);
      const int8_t* src = x.q + grp * hp_ * wp_ * cg;
      const int8_t* act = src + p0 * cg;
      if (!in_place_) {
        size_t oy = p0 / g.out_w, ox = p0 % g.out_w;
        patch_rows(src, oy, ox, n, patches);
        std::memset(patches + n * kp_, 0, kernels::kInt8ActPad);
        act = patches;
      }
      const kernels::Int8Epilogue ep{parts_[grp]->wscale(), has_bias_ ? bias_.data() + grp * prow : nullptr, lo_,
                                     hi_, inv_out_};
      parts_[grp]->gemm(isa, kernels::Int8Act{act, xs, n, kp_}, ep, 0, uint32_t(og), ytile, og);
      const size_t y0 = b * g.out_size() + grp * og * plane + p0;
      if (out_bytes == 1) {
        transpose_tile(reinterpret_cast<const int8_t*>(ytile), static_cast<int8_t*>(y) + y0, n, og, plane);
      } else {
        kernels::transpose_to_planes(isa, reinterpret_cast<const float*>(ytile), n, og, static_cast<float*>(y) + y0,
                                     plane);
      }
    }
  }

  // [n positions x og channels] -> og planes of `plane` elements, starting at the tile's first position; in
  // blocks of 16 x 16, so that the strided reads stay within 16 cache lines.
  template <typename T>
  static void transpose_tile(const T* tile, T* y, size_t n, size_t og, size_t plane) {
    constexpr size_t kB = 16;
    for (size_t o0 = 0; o0 < og; o0 += kB) {
      const size_t o1 = std::min(og, o0 + kB);
      for (size_t i0 = 0; i0 < n; i0 += kB) {
        const size_t i1 = std::min(n, i0 + kB);
        for (size_t o = o0; o < o1; ++o)
          for (size_t i = i0; i < i1; ++i) y[o * plane + i] = tile[i * og + o];
      }
    }
  }

  kernels::Conv2dGeometry g_;
  bool dense_ = false;                                       // an int8 weight: kernels::int8_conv_tile
  std::vector<int8_t> wrows_;                                // dense: rows of kp_, channels-last columns
  bool planar_ = false;        // dense 1x1, stride 1, no padding, cg % 4 == 0: tile blocks from the planes
  std::vector<int32_t> taps_;  // dense, cg % 4 == 0, not in place: each tap's byte offset in the input
  std::vector<int8_t> w64_;                                  // dense on an AMX CPU: wrows_ as A tiles want it
  std::vector<size_t> w64_at_;                               // per group: its block in w64_
  std::vector<int32_t> wsum_;                                // dense: per row, the sum of its weights
  std::vector<float> wscale_;                                // dense: per row
  std::vector<std::unique_ptr<kernels::Int8Weight>> parts_;  // csr+int8, per group: its output channels
  AlignedArray<float> bias_;  // per group (csr+int8: padded to its rows' multiple of 16)
  bool has_bias_ = false;
  bool static_;
  float in_scale_;           // static: the input's scale
  float lo_, hi_, inv_out_;  // the epilogue's clamp and 1 / output_scale (0: f32 output)
  uint64_t work_ = 0, macs_ = 0;  // Model.work's share (work() above); the stored weights' multiply-adds
  size_t hp_ = 0, wp_ = 0;   // the padded channels-last input's rows and columns
  size_t kp_ = 0;            // a patch row's bytes (the weight's kp)
  size_t tiles_ = 0;         // tiles of kTile positions per group
  bool in_place_ = false;    // 1x1, stride 1, no padding, Cg = kp: the channels-last input is the patches
};

std::unique_ptr<Step> make_int8_conv(const BuildContext& ctx, LayerInfo& li, bool is_static, const QLinearAttrs& a) {
  if (ops::conv_geometry(ctx).group_in() == 1) return ops::make_int8_depthwise(ctx, li, is_static, a);
  return std::make_unique<Int8ConvStep>(ctx, li, is_static, a);
}

}  // namespace

StepSpec build_conv2d_int8(const BuildContext& ctx) {
  StepSpec s;
  ops::describe_weight(ctx, s.layer);
  s.step = make_int8_conv(ctx, s.layer, false, QLinearAttrs{0, 0, 0, 0});
  s.takes = {ValueType::f32()};
  s.gives = ValueType::f32();
  return s;
}

StepSpec build_qconv2d(const BuildContext& ctx) {
  const QLinearAttrs a = qconv2d_quant_attrs(ctx.node.attrs);
  StepSpec s;
  ops::describe_weight(ctx, s.layer);
  s.step = make_int8_conv(ctx, s.layer, true, a);
  s.takes = {ValueType::i8(a.input_scale)};
  s.gives = a.output_scale > 0 ? ValueType::i8(a.output_scale) : ValueType::f32();
  return s;
}

}  // namespace pyrt::runtime
