// pyruntime: the table of graph ops. One entry per op gives its code in the file, its name (in Python
// dicts and messages), the first format version that has it, how many inputs and tensors it takes and
// its attribute fields. The file stores attributes as 32-bit words in field order (floats as their
// IEEE-754 bits); the bindings map them to and from dicts by field name. docs/FORMAT.md section 2 is the
// same table in prose.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pyrt {

enum class Op : uint16_t {
  linear = 1,           // x [in] -> [out]; tensors: weight [out, in], optional bias [out]
  relu = 2,             // elementwise max(x, 0)
  softmax = 3,          // over all elements of a sample
  flatten = 4,          // [d0, d1, ...] -> [d0 * d1 * ...] (an alias: no data moves)
  conv2d = 5,           // x [C, H, W] -> [O, OH, OW]; tensors: weight [O, C / groups, kh, kw], optional bias [O]
  max_pool2d = 6,       // [C, H, W] -> [C, OH, OW]
  avg_pool2d = 7,       // [C, H, W] -> [C, OH, OW]
  global_avg_pool = 8,  // [C, H, W] -> [C, 1, 1]
  add = 9,              // a + b: two values of the same shape; from version 5 also broadcast (numpy rules over the
                        // per-sample dims) or one value and a dense tensor operand b
  concat = 10,          // along one per-sample axis
  reshape = 11,         // same elements, new per-sample shape (an alias)
  clamp = 12,           // elementwise min(max(x, lo), hi): relu6, hardtanh
  qlinear = 13,         // int8 linear with static activation scales (format version 3); tensors: int8 or
                        // csr+int8 weight [out, in], optional bias [out]
  qconv2d = 14,         // int8 conv2d with static activation scales (format version 3): conv2d's attributes and
                        // tensors (int8 or csr+int8 weight), then qlinear's four
  sign = 15,            // +1 where x * scale + shift >= 0, else -1 (format version 4)
  blinear = 16,         // binary linear (format version 4); tensors: binary weight [out, in], optional bias or
                        // thresholds [out]; attributes input (0: sign of x, 1: x), output (0: real, 1: sign)
  bconv2d = 17,         // binary conv2d (format version 4): conv2d's attributes (groups 1), then blinear's two;
                        // a tap in the zero padding contributes 0
  // ---- format version 5: transformers (values of any rank up to 4, several typed graph inputs and outputs) ----
  layer_norm = 18,         // over the last axis; tensors: optional weight [N], optional bias [N]; attribute eps
  gelu = 19,               // attribute approximate (0: erf, 1: tanh)
  silu = 20,               // x * sigmoid(x)
  sigmoid = 21,
  tanh = 22,
  leaky_relu = 23,         // x >= 0 ? x : slope * x; attribute slope
  softmax_axis = 24,       // softmax along one per-sample axis; attribute axis
  sub = 25,                // a - b: as add (broadcast; b may be a dense tensor)
  mul = 26,                // a * b: as add
  div = 27,                // a / b: as add
  matmul = 28,             // a [..., M, K] @ b [..., K, N] -> [..., M, N], leading dims broadcast
  transpose = 29,          // per-sample axes permuted; attribute perm[4]
  slice = 30,              // one axis, start:end:step; attributes axis, start, end, step
  embedding = 31,          // i32 ids [...] -> [..., D]; tensor: table [V, D] (any encoding but binary)
  upsample_nearest = 32,   // [C, H, W] -> [C, H * sh, W * sw]; attribute scale[2]
  adaptive_avg_pool2d = 33,  // [C, H, W] -> [C, oh, ow], torch's windows; attribute output_size[2]
};

struct AttrField {
  const char* name;
  uint8_t count;  // words
  bool is_float;  // f32 bits, else u32
};

struct OpSchema {
  Op op;
  const char* name;
  uint32_t version;  // first format version with this op
  uint8_t min_inputs, max_inputs;
  uint8_t min_tensors, max_tensors;
  std::vector<AttrField> attrs;
  uint32_t attr_words() const;
};

// All ops, in code order.
const std::vector<OpSchema>& op_schemas();
// The schema of a code / name, or null when there is none.
const OpSchema* op_schema(uint16_t code);
const OpSchema* op_schema(const std::string& name);
const OpSchema& op_schema(Op op);

const char* op_name(Op op);
bool op_from_name(const std::string& name, Op* out);
// "linear, relu, ..." for messages.
std::string op_names();

// ---- typed views of the attribute words (the node's attrs were checked against the schema) ----

struct Conv2dAttrs {  // stride[2], padding[4] (top, left, bottom, right), dilation[2], groups
  uint32_t stride_h, stride_w, pad_top, pad_left, pad_bottom, pad_right, dilation_h, dilation_w, groups;
};
struct Pool2dAttrs {  // kernel[2], stride[2], padding[4], ceil_mode, then count_include_pad (avg only)
  uint32_t kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, pad_bottom, pad_right, ceil_mode;
  uint32_t count_include_pad;  // 0 for max_pool2d
};
struct ClampAttrs {
  float min, max;
};

Conv2dAttrs conv2d_attrs(const std::vector<uint32_t>& words);
Pool2dAttrs pool2d_attrs(Op op, const std::vector<uint32_t>& words);
ClampAttrs clamp_attrs(const std::vector<uint32_t>& words);
struct QLinearAttrs {  // input_scale, output_scale (0: f32 output), min, max (a clamp before the output)
  float input_scale, output_scale, min, max;
};
QLinearAttrs qlinear_attrs(const std::vector<uint32_t>& words);
// qconv2d: conv2d_attrs() of its first 9 words, and these of the last 4.
QLinearAttrs qconv2d_quant_attrs(const std::vector<uint32_t>& words);
struct SignAttrs {
  float scale, shift;
};
SignAttrs sign_attrs(const std::vector<uint32_t>& words);
struct BLinearAttrs {  // input: 0 = the sign of x (XNOR-popcount), 1 = x (real); output: 0 = real, 1 = sign
  uint32_t input, output;
};
BLinearAttrs blinear_attrs(const std::vector<uint32_t>& words);
// bconv2d: conv2d_attrs() of its first 9 words, and these of the last 2.
BLinearAttrs bconv2d_binary_attrs(const std::vector<uint32_t>& words);
struct SliceAttrs {  // along `axis`: elements start, start + step, ... < end
  uint32_t axis, start, end, step;
};
SliceAttrs slice_attrs(const std::vector<uint32_t>& words);
// One f32 attribute word (layer_norm's eps, leaky_relu's slope).
float f32_attr(const std::vector<uint32_t>& words, size_t index);
// reshape: shape[4] = rank-many positive dims then zeros; concat: axis.
std::vector<uint32_t> reshape_attrs(const std::vector<uint32_t>& words);
uint32_t concat_attrs(const std::vector<uint32_t>& words);

}  // namespace pyrt
