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

uint32_t graph_version(const ModelDef& m) {
  uint32_t v = 1;
  for (const NodeDef& n : m.nodes) v = std::max(v, op_schema(n.op).version);
  for (const DecodedTensor& t : m.tensors) v = std::max(v, encoding_version(t.encoding));
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
  NodeChecker(const ModelDef& m, const std::vector<std::vector<uint32_t>>& shapes, size_t index,
              std::vector<bool>& used, pyrt_status st)
      : m_(m), n_(m.nodes[index]), shapes_(shapes), used_(used), st_(st),
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
      case Op::add:
        PYRT_CHECK(in(0) == in(1), st_, who_, ": inputs have different shapes ", shape_str(in(0)), " and ",
                   shape_str(in(1)));
        return in(0);
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
    PYRT_CHECK(in(0).size() == 1, st_, who_, ": input shape ", shape_str(in(0)), " is not flat (add a flatten)");
    PYRT_CHECK(w.shape[1] == in(0)[0], st_, who_, ": weight '", w.name, "' ", shape_str(w.shape), " expects ",
               w.shape[1], " input features, the input has ", in(0)[0]);
    PYRT_CHECK(!is_int8(w.encoding) || w.shape[1] <= kMaxInt8Inputs, st_, who_, ": int8 weight '", w.name, "' has ",
               w.shape[1], " inputs, more than the ", kMaxInt8Inputs, " an int32 sum of int8 products holds");
    bias(w.shape[0]);
    return {w.shape[0]};
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
  std::vector<bool>& used_;
  pyrt_status st_;
  std::string who_;
};

}  // namespace

std::vector<std::vector<uint32_t>> check_graph(const ModelDef& m, pyrt_status st) {
  PYRT_CHECK(!m.input_shape.empty() && m.input_shape.size() <= 4, st, "graph: input rank ", m.input_shape.size(),
             " not in 1..4");
  for (uint32_t d : m.input_shape) PYRT_CHECK(d > 0, st, "graph: input shape ", shape_str(m.input_shape), " has a zero");
  PYRT_CHECK(shape_numel(m.input_shape) <= kMaxValueFloats, st, "graph: input too large");
  PYRT_CHECK(!m.nodes.empty(), st, "graph: no nodes");
  std::vector<std::vector<uint32_t>> shapes{m.input_shape};
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
      PYRT_CHECK(v <= i, st, who, ": reads value ", v, ", which is not defined before it");
    PYRT_CHECK(n.tensors.size() >= s->min_tensors && n.tensors.size() <= s->max_tensors, st, who,
               s->max_tensors == 0 ? ": takes no tensors, has " : ": expects weight and optional bias, has ",
               n.tensors.size(), " tensors");
    for (uint32_t t : n.tensors)
      PYRT_CHECK(t < m.tensors.size(), st, who, ": references tensor ", t, " but the file has ", m.tensors.size());
    PYRT_CHECK(n.attrs.size() == s->attr_words(), st, who, ": has ", n.attrs.size() * 4, " attribute bytes, the op takes ",
               s->attr_words() * 4);
    std::vector<uint32_t> out = NodeChecker(m, shapes, i, used, st).output();
    PYRT_CHECK(shape_numel(out) >= 1 && shape_numel(out) <= kMaxValueFloats, st, who, ": output shape ",
               shape_str(out), " is too large (at most 2^31 values per sample)");
    shapes.push_back(std::move(out));
  }
  return shapes;
}

}  // namespace pyrt
