/*
 * micro_plan.c -- the op table, the shape and attribute rules of the ops the bare-metal runtime runs
 * (FORMAT.md 2.1 to 2.4, as csrc/common/model_def.cpp's NodeChecker), and the activation plan.
 *
 * The plan: flatten and reshape are views of their input's buffer; relu, clamp, softmax and add write over
 * their (first) input when nothing reads that buffer later. Every other value gets a buffer placed first-fit
 * (lowest offset) among the buffers live while its node runs, a buffer living from the node that writes it to
 * the last node that reads it or any of its views (the graph output: to the end). The graph input is read in
 * place from the caller's array. Batch 1.
 */
#include "micro_internal.h"

typedef struct op_info {
  const char* name;
  uint8_t version, min_in, max_in, min_t, max_t, attr_words;
} op_info;

static const op_info ops[MICRO_OP_COUNT] = {
    {"linear", 1, 1, 1, 1, 2, 0},        {"relu", 1, 1, 1, 0, 0, 0},
    {"softmax", 1, 1, 1, 0, 0, 0},       {"flatten", 1, 1, 1, 0, 0, 0},
    {"conv2d", 2, 1, 1, 1, 2, 9},        {"max_pool2d", 2, 1, 1, 0, 0, 9},
    {"avg_pool2d", 2, 1, 1, 0, 0, 10},   {"global_avg_pool", 2, 1, 1, 0, 0, 0},
    {"add", 2, 1, 2, 0, 1, 0},           {"concat", 2, 2, 16, 0, 0, 1},
    {"reshape", 2, 1, 1, 0, 0, 4},       {"clamp", 2, 1, 1, 0, 0, 2},
    {"qlinear", 3, 1, 1, 1, 2, 4},       {"qconv2d", 3, 1, 1, 1, 2, 13},
    {"sign", 4, 1, 1, 0, 0, 2},          {"blinear", 4, 1, 1, 1, 2, 2},
    {"bconv2d", 4, 1, 1, 1, 2, 11},      {"layer_norm", 5, 1, 1, 0, 2, 1},
    {"gelu", 5, 1, 1, 0, 0, 1},          {"silu", 5, 1, 1, 0, 0, 0},
    {"sigmoid", 5, 1, 1, 0, 0, 0},       {"tanh", 5, 1, 1, 0, 0, 0},
    {"leaky_relu", 5, 1, 1, 0, 0, 1},    {"softmax_axis", 5, 1, 1, 0, 0, 1},
    {"sub", 5, 1, 2, 0, 1, 0},           {"mul", 5, 1, 2, 0, 1, 0},
    {"div", 5, 1, 2, 0, 1, 0},           {"matmul", 5, 2, 2, 0, 0, 0},
    {"transpose", 5, 1, 1, 0, 0, 4},     {"slice", 5, 1, 1, 0, 0, 4},
    {"embedding", 5, 1, 1, 1, 1, 0},     {"upsample_nearest", 5, 1, 1, 0, 0, 2},
    {"adaptive_avg_pool2d", 5, 1, 1, 0, 0, 2},
};

#define MICRO_MAX_WINDOW (1u << 16)
#define MICRO_MAX_FLOATS (1ull << 31)
#define SUPPORTED_OPS "linear, conv2d, qlinear, qconv2d, relu, clamp, softmax, flatten, reshape, concat, " \
                      "max_pool2d, avg_pool2d, global_avg_pool and add"
#define MICRO_MAX_INT8_COLS 133144u /* (2^31 - 1) / 127^2: an int32 sum of int8 products holds (FORMAT.md 2.1) */

const char* micro_op_name(uint32_t op) { return op >= 1 && op <= MICRO_OP_COUNT ? ops[op - 1].name : "unknown"; }
uint32_t micro_op_version(uint32_t op) { return ops[op - 1].version; }

void micro_op_arity(uint32_t op, uint32_t* min_in, uint32_t* max_in, uint32_t* min_t, uint32_t* max_t,
                    uint32_t* attr_words) {
  const op_info* o = &ops[op - 1];
  *min_in = o->min_in;
  *max_in = o->max_in;
  *min_t = o->min_t;
  *max_t = o->max_t;
  *attr_words = o->attr_words;
}

static uint32_t rank_of(const uint32_t* d) {
  uint32_t r = 0;
  while (r < 4 && d[r]) ++r;
  return r;
}

/* Output length along one axis of a window sweep (csrc/common/model_def.cpp sweep_out); 0: does not fit. */
static uint32_t sweep_out(uint64_t in, uint64_t lo, uint64_t hi, uint64_t window, uint64_t stride, int ceil_mode) {
  const uint64_t span = in + lo + hi;
  uint64_t out;
  if (window == 0 || stride == 0 || span < window) return 0;
  out = (span - window + (ceil_mode ? stride - 1 : 0)) / stride + 1;
  if (ceil_mode && (out - 1) * stride >= in + lo) --out;
  return out > 0xFFFFFFFFull ? 0 : (uint32_t)out;
}

static pyrt_status window_attr(const char* who, const char* what, uint32_t v, uint32_t min) {
  if (v < min || v > MICRO_MAX_WINDOW)
    return micro_fail(PYRT_BAD_FORMAT, "%s: %s %u not in %u..65536", who, what, v, min);
  return PYRT_OK;
}

static void tensor_of(const uint8_t* file, uint32_t index, micro_tensor_info* t) {
  const uint8_t* p;
  size_t size;
  uint32_t section;
  micro_find_tensor(file, index, &p, &size, &section);
  micro_tensor_head(p, t);
}

/* The weight of linear, conv2d, qlinear or qconv2d: an encoding this path runs; an int8 one's sums within
 * int32. */
static pyrt_status check_weight(const char* who, const micro_node* n, const micro_tensor_info* w) {
  const int is_static = n->op == MICRO_OP_QLINEAR || n->op == MICRO_OP_QCONV2D;
  if (is_static) {
    const float* q = n->qattr; /* input_scale, output_scale, min, max */
    if (!micro_is_int8(w->encoding))
      return micro_fail(PYRT_BAD_FORMAT, "%s: weight '%s' must be int8 or csr+int8", who, w->name);
    if (!micro_isfinite(q[0]) || !(q[0] > 0.0f))
      return micro_fail(PYRT_BAD_FORMAT, "%s: input_scale must be finite and > 0", who);
    if (!micro_isfinite(q[1]) || !(q[1] >= 0.0f))
      return micro_fail(PYRT_BAD_FORMAT, "%s: output_scale must be finite and >= 0 (0: a float output)", who);
    if (micro_isnan(q[2]) || micro_isnan(q[3]) || !(q[2] <= q[3]))
      return micro_fail(PYRT_BAD_FORMAT, "%s: bounds are not an interval (min <= max, neither NaN)", who);
  }
  if (w->encoding == MICRO_ENC_BINARY)
    return micro_fail(PYRT_BAD_FORMAT, "%s: weight '%s' is binary, which only blinear and bconv2d take (FORMAT.md 2.6)",
                      who, w->name);
  if (micro_is_int8(w->encoding) && w->cols > MICRO_MAX_INT8_COLS)
    return micro_fail(PYRT_BAD_FORMAT, "%s: int8 weight '%s' has %L inputs per output, more than the %u an int32 "
                      "sum of int8 products holds", who, w->name, (unsigned long long)w->cols, MICRO_MAX_INT8_COLS);
  return PYRT_OK;
}

static pyrt_status check_bias(const uint8_t* file, const char* who, const micro_node* n, uint32_t outputs) {
  micro_tensor_info b;
  if (n->n_tensors < 2) return PYRT_OK;
  tensor_of(file, n->tensor[1], &b);
  if (b.encoding != MICRO_ENC_DENSE) return micro_fail(PYRT_BAD_FORMAT, "%s: bias '%s' must be dense", who, b.name);
  if (b.rank != 1 || b.dims[0] != outputs)
    return micro_fail(PYRT_BAD_FORMAT, "%s: bias '%s' does not match %u outputs", who, b.name, outputs);
  return PYRT_OK;
}

static pyrt_status conv_shape(const uint8_t* file, const char* who, const micro_node* n, const uint32_t* x,
                              uint32_t* out, uint32_t* scratch) {
  const uint32_t* a = n->attr; /* stride h, w; padding top, left, bottom, right; dilation h, w; groups */
  micro_tensor_info w;
  uint64_t eh, ew, padded;
  uint32_t oh, ow, i;
  pyrt_status st;
  tensor_of(file, n->tensor[0], &w);
  if ((st = check_weight(who, n, &w)) != PYRT_OK) return st;
  if (w.rank != 4)
    return micro_fail(PYRT_BAD_FORMAT, "%s: weight '%s' has rank %u, expected 4 [out_channels, in_channels / groups, "
                      "kh, kw]", who, w.name, w.rank);
  if ((st = window_attr(who, "stride", a[0], 1)) || (st = window_attr(who, "stride", a[1], 1)) ||
      (st = window_attr(who, "dilation", a[6], 1)) || (st = window_attr(who, "dilation", a[7], 1)))
    return st;
  for (i = 2; i < 6; ++i)
    if ((st = window_attr(who, "padding", a[i], 0)) != PYRT_OK) return st;
  if (a[8] < 1 || x[0] % a[8] != 0 || w.dims[0] % a[8] != 0)
    return micro_fail(PYRT_BAD_FORMAT, "%s: groups %u must divide the %u input and %u output channels", who, a[8], x[0],
                      w.dims[0]);
  if ((uint64_t)w.dims[1] * a[8] != x[0])
    return micro_fail(PYRT_BAD_FORMAT, "%s: weight '%s' expects %L input channels (groups %u), the input has %u", who,
                      w.name, (unsigned long long)w.dims[1] * a[8], a[8], x[0]);
  if ((st = window_attr(who, "kernel", w.dims[2], 1)) || (st = window_attr(who, "kernel", w.dims[3], 1))) return st;
  eh = (uint64_t)(w.dims[2] - 1) * a[6] + 1;
  ew = (uint64_t)(w.dims[3] - 1) * a[7] + 1;
  oh = sweep_out(x[1], a[2], a[4], eh, a[0], 0);
  ow = sweep_out(x[2], a[3], a[5], ew, a[1], 0);
  if (oh < 1 || ow < 1)
    return micro_fail(PYRT_BAD_FORMAT, "%s: a %Lx%L window (kernel dilated) does not fit the %ux%u input with padding",
                      who, (unsigned long long)eh, (unsigned long long)ew, x[1], x[2]);
  if (w.rows * w.cols > MICRO_MAX_FLOATS)
    return micro_fail(PYRT_BAD_FORMAT, "%s: weight '%s' has more than 2^31 elements", who, w.name);
  padded = (uint64_t)x[0] * ((uint64_t)x[1] + a[2] + a[4]) * ((uint64_t)x[2] + a[3] + a[5] + a[1]);
  if (padded > MICRO_MAX_FLOATS)
    return micro_fail(PYRT_BAD_FORMAT, "%s: the padded input (%L floats, counting a stride of columns) is larger "
                      "than 2^31", who, (unsigned long long)padded);
  if ((st = check_bias(file, who, n, w.dims[0])) != PYRT_OK) return st;
  out[0] = w.dims[0];
  out[1] = oh;
  out[2] = ow;
  if (micro_is_int8(w.encoding)) { /* the quantized input and one patch (micro_ops_int8.c) */
    *scratch = (uint32_t)micro_int8_conv_scratch(&w, x); /* below 2^30: the input is at most 2^31 values */
    return PYRT_OK;
  }
  /* the nonzero taps of one output channel: value, input offset and (ky, kx), a word each (micro_ops.c) */
  if (3u * (uint64_t)w.cols > 0xFFFFFFFFull)
    return micro_fail(PYRT_UNSUPPORTED, "%s: weight '%s' has rows of %L columns, more than this path's scratch "
                      "holds", who, w.name, (unsigned long long)w.cols);
  *scratch = 3u * (uint32_t)w.cols;
  return PYRT_OK;
}

static pyrt_status pool_shape(const char* who, const micro_node* n, const uint32_t* x, uint32_t* out) {
  const uint32_t* a = n->attr; /* kernel h, w; stride h, w; padding top, left, bottom, right; ceil; [count_pad] */
  const uint32_t count_pad = n->op == MICRO_OP_AVG_POOL2D ? a[9] : 0;
  uint32_t oh, ow;
  pyrt_status st;
  if ((st = window_attr(who, "kernel", a[0], 1)) || (st = window_attr(who, "kernel", a[1], 1)) ||
      (st = window_attr(who, "stride", a[2], 1)) || (st = window_attr(who, "stride", a[3], 1)))
    return st;
  if (a[4] >= a[0] || a[6] >= a[0] || a[5] >= a[1] || a[7] >= a[1])
    return micro_fail(PYRT_BAD_FORMAT, "%s: padding [%u, %u, %u, %u] must be smaller than the %ux%u kernel on each "
                      "side", who, a[4], a[5], a[6], a[7], a[0], a[1]);
  if (a[8] > 1 || count_pad > 1)
    return micro_fail(PYRT_BAD_FORMAT, "%s: ceil_mode and count_include_pad are 0 or 1", who);
  oh = sweep_out(x[1], a[4], a[6], a[0], a[2], (int)a[8]);
  ow = sweep_out(x[2], a[5], a[7], a[1], a[3], (int)a[8]);
  if (oh < 1 || ow < 1)
    return micro_fail(PYRT_BAD_FORMAT, "%s: a %ux%u window does not fit the %ux%u input with padding", who, a[0], a[1],
                      x[1], x[2]);
  out[0] = x[0];
  out[1] = oh;
  out[2] = ow;
  return PYRT_OK;
}

pyrt_status micro_node_shape(const uint8_t* file, uint32_t version, uint32_t index, const micro_node* n,
                             micro_graph_scratch* g, uint32_t* scratch) {
  char who[48];
  const uint32_t* x = g->dims[n->in0];
  uint32_t* out = g->dims[index + 1];
  const uint32_t rank = rank_of(x);
  uint32_t i;
  pyrt_status st;
  micro_format(who, sizeof who, "node %u (%s)", index, micro_op_name(n->op));
  memset(out, 0, 4 * sizeof *out);
  *scratch = 0;
  switch (n->op) {
    case MICRO_OP_RELU:
    case MICRO_OP_SOFTMAX:
      memcpy(out, x, 4 * sizeof *out);
      return PYRT_OK;
    case MICRO_OP_CLAMP: {
      const float lo = micro_f32((const uint8_t*)&n->attr[0]), hi = micro_f32((const uint8_t*)&n->attr[1]);
      if (micro_isnan(lo) || micro_isnan(hi) || !(lo <= hi))
        return micro_fail(PYRT_BAD_FORMAT, "%s: bounds are not an interval (min <= max, neither NaN)", who);
      memcpy(out, x, 4 * sizeof *out);
      return PYRT_OK;
    }
    case MICRO_OP_FLATTEN:
      out[0] = (uint32_t)micro_numel(x); /* at most 2^31: every value is */
      return PYRT_OK;
    case MICRO_OP_RESHAPE: {
      uint32_t r = 0;
      while (r < 4 && n->attr[r]) ++r;
      if (r == 0) return micro_fail(PYRT_BAD_FORMAT, "%s: target shape is empty", who);
      for (i = r; i < 4; ++i)
        if (n->attr[i]) return micro_fail(PYRT_BAD_FORMAT, "%s: target shape has a zero before dimension %u", who, i);
      memcpy(out, n->attr, 4 * sizeof *out);
      if (micro_numel(out) != micro_numel(x))
        return micro_fail(PYRT_BAD_FORMAT, "%s: cannot reshape %L elements to %L", who,
                          (unsigned long long)micro_numel(x), (unsigned long long)micro_numel(out));
      return PYRT_OK;
    }
    case MICRO_OP_LINEAR:
    case MICRO_OP_QLINEAR: {
      micro_tensor_info w;
      tensor_of(file, n->tensor[0], &w);
      if ((st = check_weight(who, n, &w)) != PYRT_OK) return st;
      if (w.rank != 2)
        return micro_fail(PYRT_BAD_FORMAT, "%s: weight '%s' has rank %u, expected 2", who, w.name, w.rank);
      if (w.dims[1] != x[rank - 1])
        return micro_fail(PYRT_BAD_FORMAT, "%s: weight '%s' expects %u input features, the input has %u", who, w.name,
                          w.dims[1], x[rank - 1]);
      if ((st = check_bias(file, who, n, w.dims[0])) != PYRT_OK) return st;
      if (rank > 1 && version < 5)
        return micro_fail(PYRT_BAD_FORMAT, "graph: needs format version 5 (a linear over more than one axis), the "
                          "file says %u", version);
      memcpy(out, x, 4 * sizeof *out);
      out[rank - 1] = w.dims[0];
      if (micro_is_int8(w.encoding)) *scratch = (uint32_t)micro_int8_linear_scratch(&w); /* cols <= 133144 */
      return PYRT_OK;
    }
    case MICRO_OP_CONV2D:
    case MICRO_OP_QCONV2D:
    case MICRO_OP_MAX_POOL2D:
    case MICRO_OP_AVG_POOL2D:
    case MICRO_OP_GLOBAL_AVG_POOL:
      if (rank != 3) return micro_fail(PYRT_BAD_FORMAT, "%s: input is not [channels, height, width]", who);
      if (n->op == MICRO_OP_CONV2D || n->op == MICRO_OP_QCONV2D) return conv_shape(file, who, n, x, out, scratch);
      if (n->op == MICRO_OP_GLOBAL_AVG_POOL) {
        out[0] = x[0];
        out[1] = out[2] = 1;
        return PYRT_OK;
      }
      return pool_shape(who, n, x, out);
    case MICRO_OP_ADD: {
      const uint32_t* b;
      uint32_t rb;
      int same = 1, fits = 1;
      if (n->n_inputs + n->n_tensors != 2)
        return micro_fail(PYRT_BAD_FORMAT, "%s: takes two operands (two values, or a value and a tensor), has %u "
                          "values and %u tensors", who, n->n_inputs, n->n_tensors);
      if (n->n_tensors) {
        if (version < 5)
          return micro_fail(PYRT_BAD_FORMAT,
                            "graph: needs format version 5 (a tensor operand of add), the file says %u", version);
        return micro_fail(PYRT_UNSUPPORTED, "%s: a tensor operand of add is not supported by the micro runtime", who);
      }
      b = g->dims[n->in1];
      rb = rank_of(b);
      for (i = 0; i < 4; ++i) same = same && x[i] == b[i];
      if (same) {
        memcpy(out, x, 4 * sizeof *out);
        return PYRT_OK;
      }
      for (i = 0; i < rank && i < rb; ++i) {
        const uint32_t da = x[rank - 1 - i], db = b[rb - 1 - i];
        fits = fits && (da == db || da == 1 || db == 1);
      }
      if (!fits) return micro_fail(PYRT_BAD_FORMAT, "%s: the shapes of its inputs do not broadcast", who);
      if (version < 5)
        return micro_fail(PYRT_BAD_FORMAT, "graph: needs format version 5 (a broadcast add), the file says %u",
                          version);
      return micro_fail(PYRT_UNSUPPORTED,
                        "%s: a broadcast add is not supported by the micro runtime (same shapes only)", who);
    }
    case MICRO_OP_CONCAT: {
      const uint32_t axis = n->attr[0];
      uint64_t total = 0;
      uint32_t k;
      if (axis >= rank)
        return micro_fail(PYRT_BAD_FORMAT, "%s: axis %u is not an axis of the rank-%u input", who, axis, rank);
      for (k = 0; k < n->n_inputs; ++k) {
        const uint32_t* d = g->dims[n->inputs[k]];
        int same = rank_of(d) == rank;
        for (i = 0; same && i < rank; ++i) same = i == axis || d[i] == x[i];
        if (!same)
          return micro_fail(PYRT_BAD_FORMAT, "%s: input %u does not match input 0 outside axis %u", who, k, axis);
        total += d[axis];
      }
      if (total > 0xFFFFFFFFull) return micro_fail(PYRT_BAD_FORMAT, "%s: concatenated axis too long", who);
      memcpy(out, x, 4 * sizeof *out);
      out[axis] = (uint32_t)total;
      return PYRT_OK;
    }
    default:
      return micro_fail(PYRT_UNSUPPORTED, "%s: op %s is not supported by the micro runtime (it runs " SUPPORTED_OPS ")",
                        who, micro_op_name(n->op));
  }
}

uint32_t micro_root(const micro_graph_scratch* g, uint32_t v) {
  while (g->parent[v] != v) v = g->parent[v];
  return v;
}

/* The last node that reads buffer r through any value sharing it, among values < limit. */
static uint32_t buffer_end(const micro_graph_scratch* g, uint32_t r, uint32_t limit) {
  uint32_t v, end = r == 0 ? 0 : r - 1; /* written by node r - 1 */
  for (v = 0; v < limit; ++v)
    if (g->last_read[v] != 0xFF && micro_root(g, v) == r && g->last_read[v] > end) end = g->last_read[v];
  return end;
}

static int in_place(uint32_t op) {
  return op == MICRO_OP_RELU || op == MICRO_OP_CLAMP || op == MICRO_OP_SOFTMAX || op == MICRO_OP_ADD;
}

uint64_t micro_plan(micro_graph_scratch* g) {
  const uint32_t nv = g->n_nodes + 1;
  uint32_t end[MICRO_MAX_VALUES];
  uint64_t peak = 0;
  uint32_t v, i, u;
  for (v = 0; v < nv; ++v) {
    g->parent[v] = (uint8_t)v;
    g->offset[v] = 0;
  }
  g->last_read[g->output] = (uint8_t)g->n_nodes; /* the output lives to the end */
  for (i = 0; i < g->n_nodes; ++i) {
    const uint32_t x = g->in0[i], r = micro_root(g, x);
    if (g->op[i] == MICRO_OP_FLATTEN || g->op[i] == MICRO_OP_RESHAPE) {
      g->parent[i + 1] = (uint8_t)x;
    } else if (in_place(g->op[i]) && r != 0 && buffer_end(g, r, i + 1) == i &&
               (g->in1[i] == 0xFF || micro_root(g, g->in1[i]) != r || g->in1[i] == x)) {
      g->parent[i + 1] = (uint8_t)x;
    }
  }
  for (v = 0; v < nv; ++v) end[v] = micro_root(g, v) == v ? buffer_end(g, v, nv) : 0;
  /* first fit, in node order: buffer v (written by node v - 1) avoids every buffer live at that node */
  for (v = 1; v < nv; ++v) {
    const uint64_t size = micro_numel(g->dims[v]);
    uint64_t at = 0;
    int moved = 1;
    if (micro_root(g, v) != v) continue;
    while (moved) {
      moved = 0;
      for (u = 1; u < v; ++u) {
        uint64_t lo, hi;
        if (micro_root(g, u) != u || end[u] < v - 1) continue; /* shared, or dead before node v - 1 */
        lo = g->offset[u];
        hi = lo + micro_numel(g->dims[u]);
        if (at < hi && lo < at + size) {
          at = hi;
          moved = 1;
        }
      }
    }
    g->offset[v] = (uint32_t)at; /* the activation area is checked below 2^32 floats by the caller */
    if (at + size > peak) peak = at + size;
  }
  for (v = 1; v < nv; ++v) g->offset[v] = g->offset[micro_root(g, v)];
  return peak;
}
