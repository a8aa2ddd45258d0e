#include "common/op_schema.h"

#include <cstring>

namespace pyrt {

uint32_t OpSchema::attr_words() const {
  uint32_t n = 0;
  for (const AttrField& f : attrs) n += f.count;
  return n;
}

const std::vector<OpSchema>& op_schemas() {
  static const std::vector<OpSchema> table = {
      {Op::linear, "linear", 1, 1, 1, 1, 2, {}},
      {Op::relu, "relu", 1, 1, 1, 0, 0, {}},
      {Op::softmax, "softmax", 1, 1, 1, 0, 0, {}},
      {Op::flatten, "flatten", 1, 1, 1, 0, 0, {}},
      {Op::conv2d, "conv2d", 2, 1, 1, 1, 2,
       {{"stride", 2, false}, {"padding", 4, false}, {"dilation", 2, false}, {"groups", 1, false}}},
      {Op::max_pool2d, "max_pool2d", 2, 1, 1, 0, 0,
       {{"kernel", 2, false}, {"stride", 2, false}, {"padding", 4, false}, {"ceil_mode", 1, false}}},
      {Op::avg_pool2d, "avg_pool2d", 2, 1, 1, 0, 0,
       {{"kernel", 2, false},
        {"stride", 2, false},
        {"padding", 4, false},
        {"ceil_mode", 1, false},
        {"count_include_pad", 1, false}}},
      {Op::global_avg_pool, "global_avg_pool", 2, 1, 1, 0, 0, {}},
      {Op::add, "add", 2, 1, 2, 0, 1, {}},
      {Op::concat, "concat", 2, 2, 16, 0, 0, {{"axis", 1, false}}},
      {Op::reshape, "reshape", 2, 1, 1, 0, 0, {{"shape", 4, false}}},
      {Op::clamp, "clamp", 2, 1, 1, 0, 0, {{"min", 1, true}, {"max", 1, true}}},
      {Op::qlinear, "qlinear", 3, 1, 1, 1, 2,
       {{"input_scale", 1, true}, {"output_scale", 1, true}, {"min", 1, true}, {"max", 1, true}}},
      {Op::qconv2d, "qconv2d", 3, 1, 1, 1, 2,
       {{"stride", 2, false},
        {"padding", 4, false},
        {"dilation", 2, false},
        {"groups", 1, false},
        {"input_scale", 1, true},
        {"output_scale", 1, true},
        {"min", 1, true},
        {"max", 1, true}}},
      {Op::sign, "sign", 4, 1, 1, 0, 0, {{"scale", 1, true}, {"shift", 1, true}}},
      {Op::blinear, "blinear", 4, 1, 1, 1, 2, {{"input", 1, false}, {"output", 1, false}}},
      {Op::bconv2d, "bconv2d", 4, 1, 1, 1, 2,
       {{"stride", 2, false},
        {"padding", 4, false},
        {"dilation", 2, false},
        {"groups", 1, false},
        {"input", 1, false},
        {"output", 1, false}}},
      {Op::layer_norm, "layer_norm", 5, 1, 1, 0, 2, {{"eps", 1, true}}},
      {Op::gelu, "gelu", 5, 1, 1, 0, 0, {{"approximate", 1, false}}},
      {Op::silu, "silu", 5, 1, 1, 0, 0, {}},
      {Op::sigmoid, "sigmoid", 5, 1, 1, 0, 0, {}},
      {Op::tanh, "tanh", 5, 1, 1, 0, 0, {}},
      {Op::leaky_relu, "leaky_relu", 5, 1, 1, 0, 0, {{"slope", 1, true}}},
      {Op::softmax_axis, "softmax_axis", 5, 1, 1, 0, 0, {{"axis", 1, false}}},
      {Op::sub, "sub", 5, 1, 2, 0, 1, {}},
      {Op::mul, "mul", 5, 1, 2, 0, 1, {}},
      {Op::div, "div", 5, 1, 2, 0, 1, {}},
      {Op::matmul, "matmul", 5, 2, 2, 0, 0, {}},
      {Op::transpose, "transpose", 5, 1, 1, 0, 0, {{"perm", 4, false}}},
      {Op::slice, "slice", 5, 1, 1, 0, 0,
       {{"axis", 1, false}, {"start", 1, false}, {"end", 1, false}, {"step", 1, false}}},
      {Op::embedding, "embedding", 5, 1, 1, 1, 1, {}},
      {Op::upsample_nearest, "upsample_nearest", 5, 1, 1, 0, 0, {{"scale", 2, false}}},
      {Op::adaptive_avg_pool2d, "adaptive_avg_pool2d", 5, 1, 1, 0, 0, {{"output_size", 2, false}}},
  };
  return table;
}

const OpSchema* op_schema(uint16_t code) {
  const auto& t = op_schemas();
  return code >= 1 && code <= t.size() ? &t[code - 1] : nullptr;
}

const OpSchema* op_schema(const std::string& name) {
  for (const OpSchema& s : op_schemas())
    if (name == s.name) return &s;
  return nullptr;
}

const OpSchema& op_schema(Op op) { return *op_schema(static_cast<uint16_t>(op)); }

const char* op_name(Op op) {
  const OpSchema* s = op_schema(static_cast<uint16_t>(op));
  return s ? s->name : "unknown";
}

bool op_from_name(const std::string& name, Op* out) {
  const OpSchema* s = op_schema(name);
  if (s) *out = s->op;
  return s != nullptr;
}

std::string op_names() {
  std::string out;
  for (const OpSchema& s : op_schemas()) out += (out.empty() ? "" : ", ") + std::string(s.name);
  return out;
}

Conv2dAttrs conv2d_attrs(const std::vector<uint32_t>& w) {
  return {w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8]};
}

Pool2dAttrs pool2d_attrs(Op op, const std::vector<uint32_t>& w) {
  return {w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], op == Op::avg_pool2d ? w[9] : 0u};
}

namespace {
QLinearAttrs quant_attrs(const uint32_t* w) {
  QLinearAttrs a;
  std::memcpy(&a.input_scale, &w[0], 4);
  std::memcpy(&a.output_scale, &w[1], 4);
  std::memcpy(&a.min, &w[2], 4);
  std::memcpy(&a.max, &w[3], 4);
  return a;
}
}  // namespace

QLinearAttrs qlinear_attrs(const std::vector<uint32_t>& w) { return quant_attrs(w.data()); }
QLinearAttrs qconv2d_quant_attrs(const std::vector<uint32_t>& w) { return quant_attrs(w.data() + 9); }

ClampAttrs clamp_attrs(const std::vector<uint32_t>& w) {
  ClampAttrs a;
  std::memcpy(&a.min, &w[0], 4);
  std::memcpy(&a.max, &w[1], 4);
  return a;
}

std::vector<uint32_t> reshape_attrs(const std::vector<uint32_t>& w) {
  std::vector<uint32_t> shape;
  for (size_t i = 0; i < 4 && w[i] != 0; ++i) shape.push_back(w[i]);
  return shape;
}

uint32_t concat_attrs(const std::vector<uint32_t>& w) { return w[0]; }

SliceAttrs slice_attrs(const std::vector<uint32_t>& w) { return {w[0], w[1], w[2], w[3]}; }

float f32_attr(const std::vector<uint32_t>& w, size_t index) {
  float f;
  std::memcpy(&f, &w[index], 4);
  return f;
}

SignAttrs sign_attrs(const std::vector<uint32_t>& w) {
  SignAttrs a;
  std::memcpy(&a.scale, &w[0], 4);
  std::memcpy(&a.shift, &w[1], 4);
  return a;
}

BLinearAttrs blinear_attrs(const std::vector<uint32_t>& w) { return {w[0], w[1]}; }
BLinearAttrs bconv2d_binary_attrs(const std::vector<uint32_t>& w) { return {w[9], w[10]}; }

}  // namespace pyrt
