/*
 * micro_ops_int8.c -- the int8 layers of the bare-metal runtime (FORMAT.md 2.5): linear and conv2d with an
 * int8 or csr+int8 weight (dynamic: the input quantized with a scale per sample, max |x| / 127) and qlinear
 * and qconv2d (static: the input scale, the clamp and the output scale of the file).
 *
 * Values between layers stay f32 here: a static layer's int8 output is kept as output_scale * q, which the
 * next static layer quantizes back to q (FORMAT.md 2.5), so the results are the host's, bit for bit. Each
 * layer quantizes its input once into the scratch: a linear's row of features as int16 (in micro_i8_slot
 * order for a dense weight, the order micro_i8_dot reads); a convolution's whole input as int8, then one
 * output position's patch (its K = C / groups * kh * kw inputs in column order, 0 in the padding) as int16,
 * against which every output channel of the group runs its row. Per output, in this order and rounded
 * apart: s = xs * scales[r]; v = fmaf(float(acc), s, bias[r]); static: the clamp, then the output rule.
 */
#include <math.h>

#include "micro_internal.h"

typedef struct int8_layer {
  int is_static;
  float out_scale, inv_out; /* static with output_scale > 0: the output quantized with it */
} int8_layer;

static void layer_of(const micro_node* n, int8_layer* L) {
  L->is_static = n->op == MICRO_OP_QLINEAR || n->op == MICRO_OP_QCONV2D;
  L->out_scale = L->is_static ? n->qattr[1] : 0.0f;
  L->inv_out = L->out_scale > 0.0f ? 1.0f / L->out_scale : 0.0f;
}

/* The input scale and its reciprocal: static, the file's (1 / input_scale an f32 division); dynamic, the
 * sample's. Returns 0 when every qx is 0. */
static int input_scale(const micro_node* n, const int8_layer* L, const float* x, uint32_t count, float* xs,
                       float* inv) {
  if (L->is_static) {
    *xs = n->qattr[0];
    *inv = 1.0f / n->qattr[0];
    return 1;
  }
  return micro_i8_dynamic_scale(x, count, xs, inv);
}

static float output(const micro_node* n, const int8_layer* L, int32_t acc, float xs, uint32_t r) {
  const float s = xs * micro_f32(n->w.scales + 4u * r);
  float v = fmaf((float)acc, s, n->bias ? micro_f32(n->bias + 4u * r) : 0.0f);
  if (!L->is_static) return v;
  v = n->qattr[2] > v ? n->qattr[2] : v; /* a NaN stays NaN */
  v = n->qattr[3] < v ? n->qattr[3] : v;
  return L->out_scale > 0.0f ? L->out_scale * (float)micro_quantize(v, L->inv_out) : v;
}

/* Row r of a csr+int8 weight against activations in column order. */
static int32_t csr_dot(const micro_weight* w, uint32_t r, const int16_t* x) {
  uint32_t j, j1 = micro_rowptr(w, r + 1);
  int32_t acc = 0;
  for (j = micro_rowptr(w, r); j < j1; ++j) acc += (int32_t)w->q[j] * x[micro_col(w, j)];
  return acc;
}

uint64_t micro_int8_linear_scratch(const micro_tensor_info* w) {
  return micro_i8_kp((uint32_t)w->cols) / 2u; /* int16 per feature */
}

uint64_t micro_int8_conv_scratch(const micro_tensor_info* w, const uint32_t* x) {
  const uint64_t input = (uint64_t)x[0] * x[1] * x[2];
  return micro_i8_kp((uint32_t)w->cols) / 2u + (input + 3u) / 4u; /* the int16 patch, then the int8 input */
}

void micro_int8_linear(const micro_node* n, const float* x, uint32_t rows_x, float* y, float* scratch) {
  const micro_weight* w = &n->w;
  const uint32_t cols = w->cols, kp = micro_i8_kp(cols), dense = w->encoding == MICRO_ENC_INT8;
  int16_t* q = (int16_t*)(void*)scratch;
  int8_layer L;
  uint32_t b, r;
  layer_of(n, &L);
  for (b = 0; b < rows_x; ++b, x += cols, y += w->rows) { /* over more axes: each row is a sample */
    float xs, inv;
    const int any = input_scale(n, &L, x, cols, &xs, &inv);
    micro_i8_quantize16(x, cols, inv, any, (int)dense, q);
    for (r = 0; r < w->rows; ++r) {
      const int32_t acc = dense ? micro_i8_dot(w->q + (size_t)r * kp, q, kp) : csr_dot(w, r, q);
      y[r] = output(n, &L, acc, xs, r);
    }
  }
}

/* attr as conv2d's (micro_ops.c); attr[9] the kernel width. */
void micro_int8_conv2d(const micro_node* n, const micro_value* xv, const micro_value* yv, const float* x, float* y,
                       float* scratch) {
  const micro_weight* w = &n->w;
  const uint32_t* a = n->attr;
  const uint32_t C = xv->dims[0], H = xv->dims[1], W = xv->dims[2];
  const uint32_t O = yv->dims[0], OH = yv->dims[1], OW = yv->dims[2];
  const uint32_t cg = C / a[8], og = O / a[8], kw = a[9], K = w->cols, kh = K / cg / kw, kp = micro_i8_kp(K);
  const uint32_t dense = w->encoding == MICRO_ENC_INT8;
  int16_t* patch = (int16_t*)(void*)scratch;
  int8_t* qx = (int8_t*)(void*)(scratch + kp / 2u);
  int8_layer L;
  float xs, inv;
  int any;
  uint32_t g, oy, ox, c, ky, kx, o, col;
  layer_of(n, &L);
  any = input_scale(n, &L, x, xv->numel, &xs, &inv); /* one scale for the whole sample */
  micro_i8_quantize8(x, xv->numel, inv, any, qx);
  memset(patch, 0, (size_t)kp * 2u); /* the slots past column K - 1 stay 0 */
  for (g = 0; g < a[8]; ++g) {
    const int8_t* xg = qx + (size_t)g * cg * H * W;
    for (oy = 0; oy < OH; ++oy) {
      const int32_t iy0 = (int32_t)(oy * a[0]) - (int32_t)a[2]; /* |.| below 2^31: micro_plan.c */
      for (ox = 0; ox < OW; ++ox) {
        const int32_t ix0 = (int32_t)(ox * a[1]) - (int32_t)a[3];
        const size_t at = (size_t)oy * OW + ox;
        for (c = 0, col = 0; c < cg; ++c) { /* the patch, column (c * kh + ky) * kw + kx */
          const int8_t* xc = xg + (size_t)c * H * W;
          for (ky = 0; ky < kh; ++ky) {
            const int32_t iy = iy0 + (int32_t)(ky * a[6]);
            const int row_in = iy >= 0 && iy < (int32_t)H;
            for (kx = 0; kx < kw; ++kx, ++col) {
              const int32_t ix = ix0 + (int32_t)(kx * a[7]);
              const int16_t v = row_in && ix >= 0 && ix < (int32_t)W ? xc[(size_t)iy * W + (uint32_t)ix] : 0;
              patch[dense ? micro_i8_slot(col) : col] = v;
            }
          }
        }
        for (o = g * og; o < (g + 1) * og; ++o) {
          const int32_t acc = dense ? micro_i8_dot(w->q + (size_t)o * kp, patch, kp) : csr_dot(w, o, patch);
          y[(size_t)o * OH * OW + at] = output(n, &L, acc, xs, o);
        }
      }
    }
  }
}
