#include "common/model_def.h"

#include <cmath>

#include "common/error.h"

namespace pyrt {

uint64_t shape_numel(const std::vector<uint32_t>& shape) {
  uint64_t n = 1;
  for (uint32_t d : shape) n *= d;
  return n;
}

std::string shape_str(const std::vector<uint32_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

const char* elem_type_name(ElemType t) { return t == ElemType::i32 ? "i32" : "f32"; }

bool ModelDef::single_io() const {
  return inputs.size() == 1 && inputs[0].type == ElemType::f32 && outputs.size() == 1 &&
         outputs[0] == node_value(nodes.size() - 1);
}

uint32_t graph_version(const ModelDef& m, const GraphValues& values) {
  uint32_t v = 1;
  for (const NodeDef& n : m.nodes) {
    v = std::max(v, op_schema(n.op).version);
    // Version 5 forms of older ops: a broadcast or tensor operand of add, a linear over more than one axis.
    const auto& x = values.shapes[n.inputs[0]];
    if (n.op == Op::add && (n.inputs.size() == 1 || x != values.shapes[n.inputs[1]])) v = std::max(v, 5u);
    if ((n.op == Op::linear || n.op == Op::qlinear) && x.size() != 1) v = std::max(v, 5u);
  }
  for (const DecodedTensor& t : m.tensors) v = std::max(v, encoding_version(t.encoding));
  if (!m.single_io()) v = std::max(v, 5u);
  return v;
}

uint32_t sweep_out(uint64_t in, uint64_t pad_lo, uint64_t pad_hi, uint64_t window, uint64_t stride,
                   bool ceil_mode) {
  const uint64_t span = in + pad_lo + pad_hi;
  if (window == 0 || stride == 0 || span < window) return 0;
  uint64_t out = (span - window + (ceil_mode ? stride - 1 : 0)) / stride + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad_lo) --out;  // the last window would start in the padding
  return out > UINT32_MAX ? 0 : static_cast<uint32_t>(out);
}

namespace {

constexpr uint32_t kMaxWindowAttr = 1u << 16;  // kernel, stride, dilation and padding values
constexpr uint64_t kMaxValueFloats = 1ull << 31;

// Checks a node's shapes and attributes against its op and returns its output shape.
class NodeChecker {
 public:
  NodeChecker(const ModelDef& m, const GraphValues& values, size_t index, std::vector<bool>& used, pyrt_status st)
      : m_(m), n_(m.nodes[index]), shapes_(values.shapes), types_(values.types), used_(used), st_(st),
        who_("node " + std::to_string(index) + " (" + op_name(n_.op) + ")") {}

  std::vector<uint32_t> output() {
    const OpSchema& s = op_schema(n_.op);
    switch (n_.op) {
      case Op::linear:
        not_binary();
        return linear();
      case Op::qlinear: return qlinear();
      case Op::relu:
      case Op::softmax: return in(0);
      case Op::flatten: return {static_cast<uint32_t>(shape_numel(in(0)))};
      case Op::conv2d:
        not_binary();
        return conv2d();
      case Op::qconv2d: return qconv2d();
      case Op::max_pool2d:
      case Op::avg_pool2d: return pool2d();
      case Op::global_avg_pool: {
        const auto& x = chw(0);
        return {x[0], 1, 1};
      }
      case Op::add: return arithmetic();
      case Op::concat: return concat();
      case Op::reshape: return reshape();
      case Op::sign: {
        const SignAttrs a = sign_attrs(n_.attrs);
        PYRT_CHECK(std::isfinite(a.scale) && std::isfinite(a.shift), st_, who_, ": scale ", a.scale, " and shift ",
                   a.shift, " must be finite");
        return in(0);
      }
      case Op::blinear: return blinear();
      case Op::bconv2d: return bconv2d();
      case Op::clamp: {
        const ClampAttrs a = clamp_attrs(n_.attrs);
        PYRT_CHECK(!std::isnan(a.min) && !std::isnan(a.max) && a.min <= a.max, st_, who_, ": bounds [", a.min, ", ",
                   a.max, "] are not an interval");
        return in(0);
      }
      case Op::layer_norm: return layer_norm();
      case Op::gelu:
        PYRT_CHECK(n_.attrs[0] <= 1, st_, who_, ": approximate ", n_.attrs[0], " is not 0 (erf) or 1 (tanh)");
        return in(0);
      case Op::silu:
      case Op::sigmoid:
      case Op::tanh: return in(0);
      case Op::leaky_relu:
        PYRT_CHECK(std::isfinite(f32_attr(n_.attrs, 0)), st_, who_, ": slope ", f32_attr(n_.attrs, 0),
                   " is not finite");
        return in(0);
      case Op::softmax_axis:
        PYRT_CHECK(n_.attrs[0] < in(0).size(), st_, who_, ": axis ", n_.attrs[0], " is not an axis of ",
                   shape_str(in(0)));
        return in(0);
      case Op::sub:
      case Op::mul:
      case Op::div: return arithmetic();
      case Op::matmul: return matmul();
      case Op::transpose: return transpose();
      case Op::slice: return slice();
      case Op::embedding: return embedding();
      case Op::upsample_nearest: {
        const auto& x = chw(0);
        window_attr("scale", n_.attrs[0], 1);
        window_attr("scale", n_.attrs[1], 1);
        return {x[0], grow(x[1], n_.attrs[0]), grow(x[2], n_.attrs[1])};
      }
      case Op::adaptive_avg_pool2d: {
        const auto& x = chw(0);
        window_attr("output_size", n_.attrs[0], 1);
        window_attr("output_size", n_.attrs[1], 1);
        return {x[0], n_.attrs[0], n_.attrs[1]};
      }
    }
    fail(st_, who_, ": op ", s.name, " has no shape rule");
  }

 private:
  const std::vector<uint32_t>& in(size_t k) const { return shapes_[n_.inputs[k]]; }

  const std::vector<uint32_t>& chw(size_t k) const {
    PYRT_CHECK(in(k).size() == 3, st_, who_, ": input shape ", shape_str(in(k)),
               " is not [channels, height, width]");
    return in(k);
  }

  const DecodedTensor& tensor(size_t k) {
    used_[n_.tensors[k]] = true;
    return m_.tensors[n_.tensors[k]];
  }

  void bias(uint32_t outputs) {
    if (n_.tensors.size() < 2) return;
    const DecodedTensor& b = tensor(1);
    PYRT_CHECK(b.encoding == Encoding::dense_f32, st_, who_, ": bias '", b.name, "' must be dense, is ",
               encoding_name(b.encoding));
    PYRT_CHECK(b.shape.size() == 1 && b.shape[0] == outputs, st_, who_, ": bias '", b.name, "' ", shape_str(b.shape),
               " does not match ", outputs, " outputs");
  }

  void window_attr(const char* what, uint32_t v, uint32_t min) const {
    PYRT_CHECK(v >= min && v <= kMaxWindowAttr, st_, who_, ": ", what, " ", v, " not in ", min, "..",
               kMaxWindowAttr);
  }

  std::vector<uint32_t> linear() {
    const DecodedTensor& w = tensor(0);
    PYRT_CHECK(w.shape.size() == 2, st_, who_, ": weight '", w.name, "' has rank ", w.shape.size(), ", expected 2");
    // linear and qlinear apply to the last axis of any rank (format version 5), the binary layers to flat input
    const bool any_rank = n_.op == Op::linear || n_.op == Op::qlinear;
    PYRT_CHECK(any_rank || in(0).size() == 1, st_, who_, ": input shape ", shape_str(in(0)),
               " is not flat (add a flatten)");
    PYRT_CHECK(w.shape[1] == in(0).back(), st_, who_, ": weight '", w.name, "' ", shape_str(w.shape), " expects ",
               w.shape[1], " input features, the input has ", in(0).back());
    PYRT_CHECK(!is_int8(w.encoding) || w.shape[1] <= kMaxInt8Inputs, st_, who_, ": int8 weight '", w.name, "' has ",
               w.shape[1], " inputs, more than the ", kMaxInt8Inputs, " an int32 sum of int8 products holds");
    bias(w.shape[0]);
    std::vector<uint32_t> out = in(0);
    out.back() = w.shape[0];
    return out;
  }

  // An int8 layer's sum of up to K products of two int8 in -127..127 stays in int32 (RUNTIME.md).
  static constexpr uint64_t kMaxInt8Inputs = ((uint64_t(1) << 31) - 1) / (127 * 127);  // 133,144

  std::vector<uint32_t> qlinear() {
    static_int8(qlinear_attrs(n_.attrs));
    return linear();
  }

  std::vector<uint32_t> qconv2d() {
    static_int8(qconv2d_quant_attrs(n_.attrs));
    return conv2d();
  }

  // qlinear, qconv2d: an int8 weight and static scales (FORMAT.md 2.2).
  void static_int8(const QLinearAttrs& a) {
    const DecodedTensor& w = tensor(0);
    PYRT_CHECK(is_int8(w.encoding), st_, who_, ": weight '", w.name, "' must be int8 or csr+int8, is ",
               encoding_name(w.encoding));
    PYRT_CHECK(std::isfinite(a.input_scale) && a.input_scale > 0, st_, who_, ": input_scale ", a.input_scale,
               " must be finite and > 0");
    PYRT_CHECK(std::isfinite(a.output_scale) && a.output_scale >= 0, st_, who_, ": output_scale ", a.output_scale,
               " must be finite and >= 0 (0: a float output)");
    PYRT_CHECK(!std::isnan(a.min) && !std::isnan(a.max) && a.min <= a.max, st_, who_, ": bounds [", a.min, ", ",
               a.max, "] are not an interval");
  }

  void not_binary() {
    const DecodedTensor& w = tensor(0);
    PYRT_CHECK(w.encoding != Encoding::binary, st_, who_, ": weight '", w.name,
               "' is binary, which only blinear and bconv2d take (FORMAT.md 2.6)");
  }

  std::vector<uint32_t> blinear() {
    binary_layer(blinear_attrs(n_.attrs), 1.0);
    return linear();  // shapes, and the second tensor as a dense [out] vector
  }

  std::vector<uint32_t> bconv2d() {
    binary_layer(bconv2d_binary_attrs(n_.attrs), 2.0);  // half-integer thresholds (FORMAT.md 2.6)
    PYRT_CHECK(conv2d_attrs(n_.attrs).groups == 1, st_, who_, ": groups ", conv2d_attrs(n_.attrs).groups,
               " (a binary convolution has groups 1)");
    return conv2d();
  }

  // blinear, bconv2d (FORMAT.md 2.6): a binary weight; output 1 (thresholds) needs input 0 and thresholds in
  // 0..K+1 that are whole multiples of 1 / steps (blinear: integers; bconv2d: halves).
  void binary_layer(const BLinearAttrs& a, double steps) {
    const DecodedTensor& w = tensor(0);
    PYRT_CHECK(w.encoding == Encoding::binary, st_, who_, ": weight '", w.name, "' must be binary, is ",
               encoding_name(w.encoding));
    PYRT_CHECK(a.input <= 1 && a.output <= 1, st_, who_, ": input ", a.input, " and output ", a.output,
               " must be 0 or 1");
    PYRT_CHECK(a.output == 0 || a.input == 0, st_, who_,
               ": a thresholded (output 1) layer takes the sign of its input (input 0), not real values");
    PYRT_CHECK(a.output == 0 || n_.tensors.size() == 2, st_, who_, ": output 1 needs a thresholds tensor");
    if (a.output == 1) {
      const DecodedTensor& t = tensor(1);
      PYRT_CHECK(t.encoding == Encoding::dense_f32 && t.shape.size() == 1 && t.shape[0] == w.shape[0], st_, who_,
                 ": thresholds '", t.name, "' must be dense [", w.shape[0], "]");
      const float* v = t.value_data();
      const double k = double(w.cols());
      for (uint64_t r = 0; r < t.numel(); ++r)
        PYRT_CHECK(v[r] >= 0 && v[r] <= k + 1 && v[r] * steps == std::floor(v[r] * steps), st_, who_, ": threshold ",
                   v[r], " of row ", r, " in '", t.name, "' is not ", steps == 1 ? "an integer" : "a multiple of 1/2",
                   " in 0..", w.cols() + 1);
    }
  }

  std::vector<uint32_t> conv2d() {
    const auto& x = chw(0);
    const Conv2dAttrs a = conv2d_attrs(n_.attrs);
    const DecodedTensor& w = tensor(0);
    PYRT_CHECK(!is_int8(w.encoding) || w.cols() <= kMaxInt8Inputs, st_, who_, ": int8 weight '", w.name, "' has ",
               w.cols(), " inputs per output (C / groups * kh * kw), more than the ", kMaxInt8Inputs,
               " an int32 sum of int8 products holds");
    PYRT_CHECK(w.shape.size() == 4, st_, who_, ": weight '", w.name, "' has rank ", w.shape.size(),
               ", expected 4 [out_channels, in_channels / groups, kh, kw]");
    window_attr("stride", a.stride_h, 1);
    window_attr("stride", a.stride_w, 1);
    window_attr("dilation", a.dilation_h, 1);
    window_attr("dilation", a.dilation_w, 1);
    for (uint32_t p : {a.pad_top, a.pad_left, a.pad_bottom, a.pad_right}) window_attr("padding", p, 0);
    PYRT_CHECK(a.groups >= 1 && x[0] % a.groups == 0 && w.shape[0] % a.groups == 0, st_, who_, ": groups ", a.groups,
               " must divide the ", x[0], " input and ", w.shape[0], " output channels");
    PYRT_CHECK(w.shape[1] * a.groups == x[0], st_, who_, ": weight '", w.name, "' ", shape_str(w.shape), " expects ",
               uint64_t(w.shape[1]) * a.groups, " input channels (groups ", a.groups, "), the input has ", x[0]);
    window_attr("kernel", w.shape[2], 1);
    window_attr("kernel", w.shape[3], 1);
    const uint64_t eh = uint64_t(w.shape[2] - 1) * a.dilation_h + 1, ew = uint64_t(w.shape[3] - 1) * a.dilation_w + 1;
    const uint32_t oh = sweep_out(x[1], a.pad_top, a.pad_bottom, eh, a.stride_h, false);
    const uint32_t ow = sweep_out(x[2], a.pad_left, a.pad_right, ew, a.stride_w, false);
    PYRT_CHECK(oh >= 1 && ow >= 1, st_, who_, ": a ", eh, "x", ew, " window (kernel dilated) does not fit the ",
               x[1], "x", x[2], " input with padding");
    // What the kernels index with 32-bit offsets (FORMAT.md 2.3): the weight and the padded input.
    PYRT_CHECK(w.numel() <= kMaxValueFloats, st_, who_, ": weight '", w.name, "' has ", w.numel(),
               " elements, more than 2^31");
    const uint64_t padded = uint64_t(x[0]) * (uint64_t(x[1]) + a.pad_top + a.pad_bottom) *
                            (uint64_t(x[2]) + a.pad_left + a.pad_right + a.stride_w);
    PYRT_CHECK(padded <= kMaxValueFloats, st_, who_, ": the padded input (", padded,
               " floats, counting a stride of columns) is larger than 2^31");
    bias(w.shape[0]);
    return {w.shape[0], oh, ow};
  }

  std::vector<uint32_t> pool2d() {
    const auto& x = chw(0);
    const Pool2dAttrs a = pool2d_attrs(n_.op, n_.attrs);
    window_attr("kernel", a.kernel_h, 1);
    window_attr("kernel", a.kernel_w, 1);
    window_attr("stride", a.stride_h, 1);
    window_attr("stride", a.stride_w, 1);
    PYRT_CHECK(a.pad_top < a.kernel_h && a.pad_bottom < a.kernel_h && a.pad_left < a.kernel_w &&
                   a.pad_right < a.kernel_w,
               st_, who_, ": padding [", a.pad_top, ", ", a.pad_left, ", ", a.pad_bottom, ", ", a.pad_right,
               "] must be smaller than the ", a.kernel_h, "x", a.kernel_w, " kernel on each side");
    PYRT_CHECK(a.ceil_mode <= 1 && a.count_include_pad <= 1, st_, who_, ": ceil_mode and count_include_pad are 0 or 1");
    const uint32_t oh = sweep_out(x[1], a.pad_top, a.pad_bottom, a.kernel_h, a.stride_h, a.ceil_mode);
    const uint32_t ow = sweep_out(x[2], a.pad_left, a.pad_right, a.kernel_w, a.stride_w, a.ceil_mode);
    PYRT_CHECK(oh >= 1 && ow >= 1, st_, who_, ": a ", a.kernel_h, "x", a.kernel_w, " window does not fit the ", x[1],
               "x", x[2], " input with padding");
    return {x[0], oh, ow};
  }

  std::vector<uint32_t> concat() {
    const uint32_t axis = concat_attrs(n_.attrs);
    const auto& first = in(0);
    PYRT_CHECK(axis < first.size(), st_, who_, ": axis ", axis, " is not an axis of ", shape_str(first));
    std::vector<uint32_t> out = first;
    uint64_t total = 0;
    for (size_t k = 0; k < n_.inputs.size(); ++k) {
      const auto& s = in(k);
      bool same = s.size() == first.size();
      for (size_t d = 0; same && d < s.size(); ++d) same = d == axis || s[d] == first[d];
      PYRT_CHECK(same, st_, who_, ": input ", k, " ", shape_str(s), " does not match ", shape_str(first),
                 " outside axis ", axis);
      total += s[axis];
    }
    PYRT_CHECK(total <= UINT32_MAX, st_, who_, ": concatenated axis too long");
    out[axis] = static_cast<uint32_t>(total);
    return out;
  }

  uint32_t grow(uint32_t dim, uint32_t scale) const {
    const uint64_t d = uint64_t(dim) * scale;
    PYRT_CHECK(d <= kMaxValueFloats, st_, who_, ": dimension ", dim, " times ", scale, " is too large");
    return static_cast<uint32_t>(d);
  }

  // Numpy broadcasting of two shapes (right-aligned; each pair of dims equal or one of them 1).
  std::vector<uint32_t> broadcast(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) const {
    std::vector<uint32_t> out(std::max(a.size(), b.size()));
    for (size_t i = 0; i < out.size(); ++i) {
      const uint32_t da = i < a.size() ? a[a.size() - 1 - i] : 1, db = i < b.size() ? b[b.size() - 1 - i] : 1;
      PYRT_CHECK(da == db || da == 1 || db == 1, st_, who_, ": shapes ", shape_str(a), " and ", shape_str(b),
                 " do not broadcast");
      out[out.size() - 1 - i] = std::max(da, db);
    }
    PYRT_CHECK(out.size() <= 4, st_, who_, ": the result of ", shape_str(a), " and ", shape_str(b), " has rank ",
               out.size(), ", more than 4");
    return out;
  }

  // add, sub, mul, div: two values, or one value and a dense tensor (the right operand), broadcast.
  std::vector<uint32_t> arithmetic() {
    PYRT_CHECK(n_.inputs.size() + n_.tensors.size() == 2, st_, who_, ": takes two operands (two values, or a value "
               "and a tensor), has ", n_.inputs.size(), " values and ", n_.tensors.size(), " tensors");
    if (n_.inputs.size() == 2) return broadcast(in(0), in(1));
    const DecodedTensor& t = tensor(0);
    PYRT_CHECK(t.encoding == Encoding::dense_f32, st_, who_, ": operand '", t.name, "' must be dense, is ",
               encoding_name(t.encoding));
    PYRT_CHECK(!t.shape.empty() && t.shape.size() <= 4, st_, who_, ": operand '", t.name, "' has rank ",
               t.shape.size(), ", expected 1..4");
    std::vector<uint32_t> out = broadcast(in(0), t.shape);
    return out;
  }

  std::vector<uint32_t> layer_norm() {
    const float eps = f32_attr(n_.attrs, 0);
    PYRT_CHECK(std::isfinite(eps) && eps >= 0, st_, who_, ": eps ", eps, " must be finite and >= 0");
    for (size_t k = 0; k < n_.tensors.size(); ++k) {
      const DecodedTensor& t = tensor(k);
      PYRT_CHECK(t.encoding == Encoding::dense_f32 && t.shape.size() == 1 && t.shape[0] == in(0).back(), st_, who_,
                 ": ", k ? "bias '" : "weight '", t.name, "' must be dense [", in(0).back(), "], is ",
                 encoding_name(t.encoding), " ", shape_str(t.shape));
    }
    return in(0);
  }

  std::vector<uint32_t> matmul() {
    const auto& a = in(0);
    const auto& b = in(1);
    PYRT_CHECK(a.size() >= 2 && b.size() >= 2, st_, who_, ": operands ", shape_str(a), " and ", shape_str(b),
               " must have rank 2 or more ([..., M, K] and [..., K, N])");
    PYRT_CHECK(a.back() == b[b.size() - 2], st_, who_, ": ", shape_str(a), " @ ", shape_str(b),
               ": the inner dimensions differ");
    std::vector<uint32_t> out =
        broadcast(std::vector<uint32_t>(a.begin(), a.end() - 2), std::vector<uint32_t>(b.begin(), b.end() - 2));
    out.push_back(a[a.size() - 2]);
    out.push_back(b.back());
    PYRT_CHECK(out.size() <= 4, st_, who_, ": the result has rank ", out.size(), ", more than 4");
    return out;
  }

  std::vector<uint32_t> transpose() {
    const auto& x = in(0);
    std::vector<uint32_t> out;
    std::vector<bool> seen(x.size(), false);
    for (size_t i = 0; i < 4; ++i) {
      const uint32_t p = n_.attrs[i];
      if (i >= x.size()) {
        PYRT_CHECK(p == 0, st_, who_, ": perm word ", i, " is ", p, ", expected 0 past the input's rank ", x.size());
        continue;
      }
      PYRT_CHECK(p < x.size() && !seen[p], st_, who_, ": perm [", n_.attrs[0], ", ", n_.attrs[1], ", ", n_.attrs[2],
                 ", ", n_.attrs[3], "] is not a permutation of the ", x.size(), " axes of ", shape_str(x));
      seen[p] = true;
      out.push_back(x[p]);
    }
    return out;
  }

  std::vector<uint32_t> slice() {
    const auto& x = in(0);
    const SliceAttrs a = slice_attrs(n_.attrs);
    PYRT_CHECK(a.axis < x.size(), st_, who_, ": axis ", a.axis, " is not an axis of ", shape_str(x));
    PYRT_CHECK(a.step >= 1 && a.start < a.end && a.end <= x[a.axis], st_, who_, ": ", a.start, ":", a.end, ":",
               a.step, " is not a non-empty slice of ", x[a.axis], " elements (0 <= start < end <= ", x[a.axis],
               ", step >= 1)");
    std::vector<uint32_t> out = x;
    out[a.axis] = (a.end - a.start + a.step - 1) / a.step;
    return out;
  }

  std::vector<uint32_t> embedding() {
    PYRT_CHECK(types_[n_.inputs[0]] == ElemType::i32, st_, who_, ": the ids must be an integer value (an i32 graph "
               "input), value ", n_.inputs[0], " is f32");
    const DecodedTensor& t = tensor(0);
    PYRT_CHECK(t.shape.size() == 2, st_, who_, ": table '", t.name, "' has rank ", t.shape.size(),
               ", expected 2 [rows, dim]");
    PYRT_CHECK(t.encoding != Encoding::binary, st_, who_, ": table '", t.name, "' is binary (FORMAT.md 2.6)");
    std::vector<uint32_t> out = in(0);
    out.push_back(t.shape[1]);
    PYRT_CHECK(out.size() <= 4, st_, who_, ": ids ", shape_str(in(0)), " give a result of rank 5");
    return out;
  }

  std::vector<uint32_t> reshape() {
    const std::vector<uint32_t> shape = reshape_attrs(n_.attrs);
    PYRT_CHECK(!shape.empty(), st_, who_, ": target shape is empty");
    for (size_t i = shape.size(); i < 4; ++i)
      PYRT_CHECK(n_.attrs[i] == 0, st_, who_, ": target shape has a zero before dimension ", i);
    PYRT_CHECK(shape_numel(shape) == shape_numel(in(0)), st_, who_, ": cannot reshape ", shape_str(in(0)), " (",
               shape_numel(in(0)), " elements) to ", shape_str(shape));
    return shape;
  }

  const ModelDef& m_;
  const NodeDef& n_;
  const std::vector<std::vector<uint32_t>>& shapes_;
  const std::vector<ElemType>& types_;
  std::vector<bool>& used_;
  pyrt_status st_;
  std::string who_;
};

}  // namespace

GraphValues check_graph(const ModelDef& m, pyrt_status st) {
  PYRT_CHECK(!m.inputs.empty() && m.inputs.size() <= kMaxGraphInputs, st, "graph: ", m.inputs.size(),
             " inputs, expected 1..", kMaxGraphInputs);
  GraphValues values;
  for (size_t k = 0; k < m.inputs.size(); ++k) {
    const InputDef& in = m.inputs[k];
    PYRT_CHECK(!in.shape.empty() && in.shape.size() <= 4, st, "graph: input rank ", in.shape.size(),
               " not in 1..4 (input ", k, ")");
    for (uint32_t d : in.shape) PYRT_CHECK(d > 0, st, "graph: input ", k, " shape ", shape_str(in.shape), " has a zero");
    PYRT_CHECK(shape_numel(in.shape) <= kMaxValueFloats, st, "graph: input ", k, " is too large");
    PYRT_CHECK(in.type == ElemType::f32 || in.type == ElemType::i32, st, "graph: input ", k, " has unknown type ",
               static_cast<uint32_t>(in.type));
    values.shapes.push_back(in.shape);
    values.types.push_back(in.type);
  }
  PYRT_CHECK(!m.nodes.empty(), st, "graph: no nodes");
  std::vector<bool> used(m.tensors.size(), false);
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    const NodeDef& n = m.nodes[i];
    const OpSchema* s = op_schema(static_cast<uint16_t>(n.op));
    PYRT_CHECK(s != nullptr, st, "node ", i, ": unknown op ", static_cast<int>(n.op));
    const std::string who = "node " + std::to_string(i) + " (" + s->name + ")";
    PYRT_CHECK(n.inputs.size() >= s->min_inputs && n.inputs.size() <= s->max_inputs, st, who, ": expects ",
               int(s->min_inputs), s->max_inputs > s->min_inputs ? ".." + std::to_string(s->max_inputs) : "",
               s->max_inputs == 1 ? " input" : " inputs", ", has ", n.inputs.size());
    for (uint32_t v : n.inputs)
      PYRT_CHECK(v < m.node_value(i), st, who, ": reads value ", v, ", which is not defined before it");
    // ids (i32) are read by the shape ops, an embedding and the ops that take f32 (as numbers); not by the
    // int8 and binary layers, whose inputs are quantized or bit-packed
    const bool takes_ids = !(n.op == Op::qlinear || n.op == Op::qconv2d || n.op == Op::blinear || n.op == Op::bconv2d);
    for (uint32_t v : n.inputs)
      PYRT_CHECK(takes_ids || values.types[v] != ElemType::i32, st, who, ": reads value ", v,
                 ", token ids (i32), which an int8 or binary layer does not take");
    PYRT_CHECK(n.tensors.size() >= s->min_tensors && n.tensors.size() <= s->max_tensors, st, who,
               s->max_tensors == 0                         ? ": takes no tensors, has "
               : s->min_tensors == 1 && s->max_tensors == 2 ? ": expects weight and optional bias, has "
                                                            : (": takes " + std::to_string(s->min_tensors) + ".." +
                                                               std::to_string(s->max_tensors) + " tensors, has "),
               n.tensors.size(), " tensors");
    for (uint32_t t : n.tensors)
      PYRT_CHECK(t < m.tensors.size(), st, who, ": references tensor ", t, " but the file has ", m.tensors.size());
    PYRT_CHECK(n.attrs.size() == s->attr_words(), st, who, ": has ", n.attrs.size() * 4, " attribute bytes, the op takes ",
               s->attr_words() * 4);
    std::vector<uint32_t> out = NodeChecker(m, values, i, used, st).output();
    PYRT_CHECK(!out.empty() && out.size() <= 4, st, who, ": output shape ", shape_str(out), " has rank ", out.size());
    PYRT_CHECK(shape_numel(out) >= 1 && shape_numel(out) <= kMaxValueFloats, st, who, ": output shape ",
               shape_str(out), " is too large (at most 2^31 values per sample)");
    // Shape ops keep i32 ids i32; every other op gives f32 (and takes f32: the runtime converts ids).
    bool ids = n.op == Op::flatten || n.op == Op::reshape || n.op == Op::slice || n.op == Op::transpose ||
               n.op == Op::concat;
    for (uint32_t v : n.inputs) ids = ids && values.types[v] == ElemType::i32;
    values.shapes.push_back(std::move(out));
    values.types.push_back(ids ? ElemType::i32 : ElemType::f32);
  }
  PYRT_CHECK(!m.outputs.empty() && m.outputs.size() <= kMaxGraphOutputs, st, "graph: ", m.outputs.size(),
             " outputs, expected 1..", kMaxGraphOutputs);
  for (uint32_t v : m.outputs)
    PYRT_CHECK(v < values.shapes.size(), st, "graph: output value ", v, " does not exist (the graph has ",
               values.shapes.size(), " values)");
  return values;
}

}  // namespace pyrt
