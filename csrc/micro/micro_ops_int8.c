/*
 * micro_ops_int8.c -- the int8 layers of the bare-metal runtime (FORMAT.md 2.5): linear and conv2d with an
 * int8 or csr+int8 weight (dynamic: the input quantized with a scale per sample, max |x| / 127) and qlinear
 * and qconv2d (static: the input scale, the clamp and the output scale of the file).
 *
 * Values between layers stay f32 here: a static layer's int8 output is kept as output_scale * q, which the
 * next static layer quantizes back to q (FORMAT.md 2.5), so the results are the host's, bit for bit. Each
 * layer quantizes its input once into the scratch: a linear's row of features as int16 (in micro_i8_slot
 * order for a dense weight, the order micro_i8_dot reads); a convolution's whole input as int8. A dense
 * convolution then builds one output position's patch (its K = C / groups * kh * kw inputs in column order,
 * 0 in the padding) as int16, against which every output channel of the group runs its row; a csr+int8 one
 * lists each channel's kept taps and sweeps them over the plane. Per output, in this order and rounded
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
  float v = micro_fmaf((float)acc, s, n->bias ? micro_f32(n->bias + 4u * r) : 0.0f);
  if (!L->is_static) return v;
  v = n->qattr[2] > v ? n->qattr[2] : v; /* a NaN stays NaN */
  v = n->qattr[3] < v ? n->qattr[3] : v;
  return L->out_scale > 0.0f ? L->out_scale * (float)micro_quantize(v, L->inv_out) : v;
}

/* Row r of a csr+int8 weight against activations in column order (a loop per column width). */
static int32_t csr_dot(const micro_weight* w, uint32_t r, const int16_t* x) {
  const uint32_t j0 = micro_rowptr(w, r), j1 = micro_rowptr(w, r + 1);
  const int8_t* q = w->q;
  int32_t acc = 0;
  uint32_t j;
  if (w->col_bytes == 1) {
    const uint8_t* col = (const uint8_t*)w->col;
    for (j = j0; j < j1; ++j) acc += (int32_t)q[j] * x[col[j]];
  } else if (w->col_bytes == 2) {
    const uint16_t* col = (const uint16_t*)w->col;
    for (j = j0; j < j1; ++j) acc += (int32_t)q[j] * x[col[j]];
  } else {
    for (j = j0; j < j1; ++j) acc += (int32_t)q[j] * x[micro_col(w, j)];
  }
  return acc;
}

uint64_t micro_int8_linear_scratch(const micro_tensor_info* w) {
  return micro_i8_kp((uint32_t)w->cols) / 2u; /* int16 per feature */
}

uint64_t micro_int8_conv_scratch(const micro_tensor_info* w, const uint32_t* x) {
  const uint64_t input = (uint64_t)x[0] * x[1] * x[2];
  /* dense: the int16 patch; csr: one channel's taps, 3 words each; then the int8 input */
  return (w->encoding == MICRO_ENC_INT8 ? micro_i8_kp((uint32_t)w->cols) / 2u : 3u * w->cols) + (input + 3u) / 4u;
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

/* The geometry of a convolution (attr as conv2d's, micro_ops.c; attr[9] the kernel width). */
typedef struct conv_geom {
  uint32_t C, H, W, O, OH, OW, cg, og, kh, kw, K;
} conv_geom;

/* A dense int8 convolution: per output position, its patch (int16, micro_i8_slot order, 0 in the padding)
 * against each output channel's row of the group (micro_i8_dot: SMLAD where there is DSP). */
static void conv_dense(const micro_node* n, const conv_geom* G, const int8_layer* L, const int8_t* qx, float xs,
                       int16_t* patch, float* y) {
  const uint32_t* a = n->attr;
  const uint32_t kp = micro_i8_kp(G->K);
  uint32_t g, oy, ox, c, ky, kx, o, col;
  memset(patch, 0, (size_t)kp * 2u); /* the slots past column K - 1 stay 0 */
  for (g = 0; g < a[8]; ++g) {
    const int8_t* xg = qx + (size_t)g * G->cg * G->H * G->W;
    for (oy = 0; oy < G->OH; ++oy) {
      const int32_t iy0 = (int32_t)(oy * a[0]) - (int32_t)a[2]; /* |.| below 2^31: micro_plan.c */
      for (ox = 0; ox < G->OW; ++ox) {
        const int32_t ix0 = (int32_t)(ox * a[1]) - (int32_t)a[3];
        const size_t at = (size_t)oy * G->OW + ox;
        for (c = 0, col = 0; c < G->cg; ++c) { /* column (c * kh + ky) * kw + kx */
          const int8_t* xc = xg + (size_t)c * G->H * G->W;
          for (ky = 0; ky < G->kh; ++ky) {
            const int32_t iy = iy0 + (int32_t)(ky * a[6]);
            const int row_in = iy >= 0 && iy < (int32_t)G->H;
            for (kx = 0; kx < G->kw; ++kx, ++col) {
              const int32_t ix = ix0 + (int32_t)(kx * a[7]);
              patch[micro_i8_slot(col)] =
                  row_in && ix >= 0 && ix < (int32_t)G->W ? xc[(size_t)iy * G->W + (uint32_t)ix] : 0;
            }
          }
        }
        for (o = g * G->og; o < (g + 1) * G->og; ++o) {
          const int32_t acc = micro_i8_dot(n->w.q + (size_t)o * kp, patch, kp);
          y[(size_t)o * G->OH * G->OW + at] = output(n, L, acc, xs, o);
        }
      }
    }
  }
}

/* A csr+int8 convolution: per output channel, its kept taps listed once (value, input offset, ky << 16 | kx)
 * and swept over the output plane as the float convolution does (micro_ops.c): no bounds test where the
 * window lies inside the input, the taps inside it at a border. */
static void conv_csr(const micro_node* n, const conv_geom* G, const int8_layer* L, const int8_t* qx, float xs,
                     int32_t* val, float* y) {
  const uint32_t* a = n->attr;
  const micro_weight* w = &n->w;
  const uint32_t khw = G->kh * G->kw, HW = G->H * G->W;
  uint32_t* off = (uint32_t*)(val + G->K);
  uint32_t* kyx = off + G->K;
  uint32_t oy_lo, oy_hi, ox_lo, ox_hi, o, oy, ox, e;
  micro_inner_range(G->OH, a[0], a[2], a[6], G->kh, G->H, &oy_lo, &oy_hi);
  micro_inner_range(G->OW, a[1], a[3], a[7], G->kw, G->W, &ox_lo, &ox_hi);
  for (o = 0; o < G->O; ++o) {
    const int8_t* xg = qx + (size_t)(o / G->og) * G->cg * HW;
    const uint32_t j0 = micro_rowptr(w, o), nt = micro_rowptr(w, o + 1) - j0;
    float* yo = y + (size_t)o * G->OH * G->OW;
    for (e = 0; e < nt; ++e) {
      const uint32_t col = micro_col(w, j0 + e), c = col / khw, ky = col % khw / G->kw, kx = col % G->kw;
      val[e] = w->q[j0 + e];
      off[e] = c * HW + ky * a[6] * G->W + kx * a[7]; /* below 2^31: micro_plan.c bounds the padded input */
      kyx[e] = ky << 16 | kx;
    }
    for (oy = 0; oy < G->OH; ++oy) {
      const int32_t iy0 = (int32_t)(oy * a[0]) - (int32_t)a[2];
      const int inner_row = oy >= oy_lo && oy < oy_hi;
      uint32_t ky0, ky1;
      micro_tap_range(iy0, a[6], G->kh, G->H, &ky0, &ky1);
      for (ox = 0; ox < G->OW; ++ox) {
        const int32_t ix0 = (int32_t)(ox * a[1]) - (int32_t)a[3];
        const ptrdiff_t at = (ptrdiff_t)iy0 * (ptrdiff_t)G->W + ix0;
        int32_t acc = 0;
        if (inner_row && ox >= ox_lo && ox + 4 <= ox_hi) { /* four positions: one load of each tap for four sums */
          const int8_t *x0 = xg + at, *x1 = x0 + a[1], *x2 = x1 + a[1], *x3 = x2 + a[1];
          int32_t s1 = 0, s2 = 0, s3 = 0;
          float* yr = yo + (size_t)oy * G->OW + ox;
          for (e = 0; e < nt; ++e) {
            const int32_t v = val[e];
            const uint32_t t = off[e];
            acc += v * x0[t];
            s1 += v * x1[t];
            s2 += v * x2[t];
            s3 += v * x3[t];
          }
          yr[0] = output(n, L, acc, xs, o);
          yr[1] = output(n, L, s1, xs, o);
          yr[2] = output(n, L, s2, xs, o);
          yr[3] = output(n, L, s3, xs, o);
          ox += 3;
          continue;
        } else if (inner_row && ox >= ox_lo && ox < ox_hi) {
          const int8_t* xp = xg + at;
          for (e = 0; e < nt; ++e) acc += val[e] * xp[off[e]];
        } else {
          uint32_t kx0, kx1;
          micro_tap_range(ix0, a[7], G->kw, G->W, &kx0, &kx1);
          for (e = 0; e < nt; ++e) {
            const uint32_t ky = kyx[e] >> 16, kx = kyx[e] & 0xFFFFu;
            if (ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1) acc += val[e] * xg[at + (ptrdiff_t)off[e]];
          }
        }
        yo[(size_t)oy * G->OW + ox] = output(n, L, acc, xs, o);
      }
    }
  }
}

void micro_int8_conv2d(const micro_node* n, const micro_value* xv, const micro_value* yv, const float* x, float* y,
                       float* scratch) {
  const uint32_t* a = n->attr;
  const int dense = n->w.encoding == MICRO_ENC_INT8;
  conv_geom G;
  int8_layer L;
  float xs, inv;
  int8_t* qx;
  int any;
  G.C = xv->dims[0];
  G.H = xv->dims[1];
  G.W = xv->dims[2];
  G.O = yv->dims[0];
  G.OH = yv->dims[1];
  G.OW = yv->dims[2];
  G.cg = G.C / a[8];
  G.og = G.O / a[8];
  G.kw = a[9];
  G.K = n->w.cols;
  G.kh = G.K / G.cg / G.kw;
  qx = (int8_t*)(void*)(scratch + (dense ? micro_i8_kp(G.K) / 2u : 3u * G.K));
  layer_of(n, &L);
  any = input_scale(n, &L, x, xv->numel, &xs, &inv); /* one scale for the whole sample */
  micro_i8_quantize8(x, xv->numel, inv, any, qx);
  if (dense) conv_dense(n, &G, &L, qx, xs, (int16_t*)(void*)scratch, y);
  else conv_csr(n, &G, &L, qx, xs, (int32_t*)(void*)scratch, y);
}
