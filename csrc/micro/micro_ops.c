/*
 * micro_ops.c -- the scalar kernels of the bare-metal runtime, one sample at a time, with the arithmetic of
 * the host runtime's references (csrc/kernels/ref/): every f32 sum runs in column order (for a convolution
 * c, ky, kx, padding taps skipped) from 0.0f, the bias added last; max pools let a NaN win; average pools
 * divide the window's sum by its count (count_include_pad: the window clipped to the padded extent); the
 * global average sums in double; softmax is exp(x - max) times 1 / sum. So the outputs match the host at
 * PYRT_ISA=ref to a few ulps (the same operations; only expf may differ in its last bit).
 *
 * Weights are read where they live: dense values and centroids in the file (micro_f32, any alignment),
 * codebook indices and CSR structure in the arena. A convolution lists one output channel's kept taps at a
 * time into the model's scratch (value, input offset, (ky, kx): 3 * K words, K = C / groups * kh * kw) and
 * sweeps the list over the output plane, so a pruned layer costs its nonzeros.
 *
 * A streamed weight (PYRT_MICRO_STREAM_WEIGHTS) is read the same way, its index and column gap streams
 * decoded from the file in stream order: a linear layer's rows one after another as it sums them (again for
 * each row of a batched input), a convolution's output channels one after another into the tap list. The
 * entries come in the same order with the same values, so the sums are those of the decoded layout.
 */
#include <math.h>

#include "micro_internal.h"

/* Where a run is in a streamed weight's streams; st->j: the next csr value (values are read in place). */
typedef struct micro_wstream {
  micro_sym_cursor idx, gaps;
  uint32_t pos, j;
} micro_wstream;

static void wstream_start(const micro_weight* w, micro_wstream* st) {
  memset(st, 0, sizeof *st);
  if (!w->streamed) return;
  if (w->encoding != MICRO_ENC_CSR) micro_sym_start(&st->idx, micro_idx_stream(w));
  if (w->encoding != MICRO_ENC_CODEBOOK) micro_sym_start(&st->gaps, micro_gap_stream(w));
  st->pos = 0;
  st->j = 0;
}

/* The taps of output channel o that the host's direct convolution keeps (csrc/kernels/conv/direct.cpp), in
 * column order (c, ky, kx): every stored entry of a dense or csr row, and of a codebook row every entry whose
 * centroid is not zero (+0 or -0: the pruned weights). Per tap: its value, its input offset
 * c * H * W + ky * dil_h * W + kx * dil_w, and ky << 16 | kx (kernels are at most 65536 taps a side). */
static uint32_t list_taps(const micro_weight* w, micro_wstream* st, uint32_t o, uint32_t kh, uint32_t kw, uint32_t H,
                          uint32_t W, uint32_t dil_h, uint32_t dil_w, float* val, uint32_t* off, uint32_t* kyx) {
  const uint32_t k = w->cols, khw = kh * kw;
  const int sparse = w->encoding == MICRO_ENC_CSR || w->encoding == MICRO_ENC_CSR_CODEBOOK;
  uint32_t j0 = 0, j1 = k;
  if (sparse && st) {
    j1 = micro_row_count(w, o); /* the row's entries, counted from 0 */
    st->pos = 0;
  } else if (sparse) {
    j0 = micro_rowptr(w, o);
    j1 = micro_rowptr(w, o + 1);
  }
  const size_t base = (size_t)o * k;
  uint32_t j, n = 0;
  for (j = j0; j < j1; ++j) {
    uint32_t col, c, ky, kx;
    float v;
    if (st) { /* streamed: the next entry of row o */
      if (w->encoding == MICRO_ENC_CODEBOOK) {
        v = micro_f32(w->centroids + 4u * micro_sym_next(&st->idx));
        if (v == 0.0f) continue;
        col = j;
      } else {
        col = micro_next_col(w, &st->gaps, &st->pos);
        v = w->encoding == MICRO_ENC_CSR ? micro_f32(w->values + 4u * (size_t)(st->j++))
                                         : micro_f32(w->centroids + 4u * micro_sym_next(&st->idx));
      }
    } else switch (w->encoding) {
      case MICRO_ENC_DENSE:
        v = micro_f32(w->values + 4u * (base + j));
        col = j;
        break;
      case MICRO_ENC_CODEBOOK:
        v = micro_f32(w->centroids + 4u * micro_idx(w, base + j));
        if (v == 0.0f) continue;
        col = j;
        break;
      case MICRO_ENC_CSR:
        v = micro_f32(w->values + 4u * (size_t)j);
        col = micro_col(w, j);
        break;
      default: /* csr_codebook */
        v = micro_f32(w->centroids + 4u * micro_idx(w, j));
        col = micro_col(w, j);
        break;
    }
    c = col / khw;
    ky = col % khw / kw;
    kx = col % kw;
    val[n] = v;
    off[n] = c * H * W + ky * dil_h * W + kx * dil_w; /* below 2^31: micro_plan.c bounds the padded input */
    kyx[n] = ky << 16 | kx;
    ++n;
  }
  return n;
}

/* y[r] = sum_c W[r][c] x[c] + bias[r], for `rows_x` input rows of w->cols (a linear over the last axis). */
static void linear(const micro_weight* w, const uint8_t* bias, const float* x, uint32_t rows_x, float* y) {
  const uint32_t rows = w->rows, cols = w->cols;
  uint32_t b, r, c, j, j1;
  micro_wstream st;
  for (b = 0; b < rows_x; ++b, x += cols, y += rows) {
    wstream_start(w, &st);
    for (r = 0; r < rows; ++r) {
      float acc = 0.0f;
      if (w->streamed) {
        switch (w->encoding) {
          case MICRO_ENC_CODEBOOK:
            for (c = 0; c < cols; ++c) acc += micro_f32(w->centroids + 4u * micro_sym_next(&st.idx)) * x[c];
            break;
          case MICRO_ENC_CSR:
            st.pos = 0;
            for (j1 = micro_row_count(w, r); j1 > 0; --j1, ++st.j)
              acc += micro_f32(w->values + 4u * (size_t)st.j) * x[micro_next_col(w, &st.gaps, &st.pos)];
            break;
          default: /* csr_codebook */
            st.pos = 0;
            for (j1 = micro_row_count(w, r); j1 > 0; --j1) {
              const float v = micro_f32(w->centroids + 4u * micro_sym_next(&st.idx));
              acc += v * x[micro_next_col(w, &st.gaps, &st.pos)];
            }
            break;
        }
      } else switch (w->encoding) {
        case MICRO_ENC_DENSE: {
          const uint8_t* wr = w->values + (size_t)r * cols * 4u;
          for (c = 0; c < cols; ++c) acc += micro_f32(wr + 4u * c) * x[c];
          break;
        }
        case MICRO_ENC_CODEBOOK: {
          const size_t base = (size_t)r * cols;
          for (c = 0; c < cols; ++c) acc += micro_f32(w->centroids + 4u * micro_idx(w, base + c)) * x[c];
          break;
        }
        case MICRO_ENC_CSR:
          for (j = micro_rowptr(w, r), j1 = micro_rowptr(w, r + 1); j < j1; ++j)
            acc += micro_f32(w->values + 4u * (size_t)j) * x[micro_col(w, j)];
          break;
        default: /* csr_codebook */
          for (j = micro_rowptr(w, r), j1 = micro_rowptr(w, r + 1); j < j1; ++j)
            acc += micro_f32(w->centroids + 4u * micro_idx(w, j)) * x[micro_col(w, j)];
          break;
      }
      y[r] = acc + (bias ? micro_f32(bias + 4u * r) : 0.0f);
    }
  }
}

/* The taps [*lo, *hi) of a dilated kernel of k taps starting at input position `start` that fall inside
 * [0, in): the others read the zero padding and are skipped, as the reference skips them. */
void micro_tap_range(int64_t start, uint32_t dil, uint32_t k, uint32_t in, uint32_t* lo, uint32_t* hi) {
  int64_t l = start < 0 ? (-start + dil - 1) / dil : 0;
  int64_t h = (int64_t)in - start <= 0 ? 0 : ((int64_t)in - start + dil - 1) / dil;
  if (h > (int64_t)k) h = k;
  if (l > h) l = h;
  *lo = (uint32_t)l;
  *hi = (uint32_t)h;
}

/* The first output position [*lo] and the end [*hi] of those whose dilated window of k taps lies wholly
 * inside [0, in) along one axis. */
void micro_inner_range(uint32_t out, uint32_t stride, uint32_t pad, uint32_t dil, uint32_t k, uint32_t in,
                        uint32_t* lo, uint32_t* hi) {
  const uint64_t span = (uint64_t)(k - 1) * dil; /* the window covers [o * stride - pad, + span] */
  uint64_t l = ((uint64_t)pad + stride - 1) / stride, h;
  if ((uint64_t)in + pad < span + 1) h = 0;
  else h = ((uint64_t)in + pad - span - 1) / stride + 1;
  if (h > out) h = out;
  if (l > h) l = h;
  *lo = (uint32_t)l;
  *hi = (uint32_t)h;
}

/* attr: stride h, w; padding top, left, bottom, right; dilation h, w; groups (FORMAT.md 2.3); attr[9], set
 * by the loader: the kernel width (the row is [C / groups][kh][kw]). Per output channel its kept taps are
 * listed once in the scratch (list_taps); an output position whose window lies wholly inside the input sums
 * over the list with no bounds test (four positions of a row at a time, each with its own sum), a border
 * position over the taps of the list inside the input (tap_range). Either way the sum runs in column order
 * over the same taps, as the host's. */
static void conv2d(const micro_node* n, const micro_value* xv, const micro_value* yv, const float* x, float* y,
                   float* scratch) {
  const uint32_t* a = n->attr;
  const uint32_t C = xv->dims[0], H = xv->dims[1], W = xv->dims[2];
  const uint32_t O = yv->dims[0], OH = yv->dims[1], OW = yv->dims[2];
  const uint32_t cg = C / a[8], og = O / a[8], kw = a[9], kh = n->w.cols / cg / kw;
  const uint32_t sw = a[1], K = n->w.cols;
  float* val = scratch;
  uint32_t* off = (uint32_t*)(void*)(scratch + K);
  uint32_t* kyx = off + K;
  uint32_t oy_lo, oy_hi, ox_lo, ox_hi, o, oy, ox, e;
  micro_wstream st;
  wstream_start(&n->w, &st);
  micro_inner_range(OH, a[0], a[2], a[6], kh, H, &oy_lo, &oy_hi);
  micro_inner_range(OW, sw, a[3], a[7], kw, W, &ox_lo, &ox_hi);
  for (o = 0; o < O; ++o) {
    const float* xg = x + (size_t)(o / og) * cg * H * W;
    const float bias = n->bias ? micro_f32(n->bias + 4u * o) : 0.0f;
    const uint32_t nt = list_taps(&n->w, n->w.streamed ? &st : NULL, o, kh, kw, H, W, a[6], a[7], val, off, kyx);
    float* yo = y + (size_t)o * OH * OW;
    for (oy = 0; oy < OH; ++oy) {
      const int32_t iy0 = (int32_t)(oy * a[0]) - (int32_t)a[2]; /* |.| below 2^31: micro_plan.c */
      const int inner_row = oy >= oy_lo && oy < oy_hi;
      uint32_t ky0, ky1;
      float* yr = yo + (size_t)oy * OW;
      micro_tap_range(iy0, a[6], kh, H, &ky0, &ky1);
      for (ox = 0; ox < OW; ++ox) {
        const int32_t ix0 = (int32_t)(ox * sw) - (int32_t)a[3];
        if (inner_row && ox >= ox_lo && ox < ox_hi) {
          const float* xp = xg + (uint32_t)(iy0 * (int32_t)W + ix0);
          if (ox + 4 <= ox_hi) { /* four positions: one load of each tap for four sums */
            const float *x1 = xp + sw, *x2 = x1 + sw, *x3 = x2 + sw;
            float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
            for (e = 0; e < nt; ++e) {
              const float v = val[e];
              const uint32_t t = off[e];
              s0 += v * xp[t];
              s1 += v * x1[t];
              s2 += v * x2[t];
              s3 += v * x3[t];
            }
            yr[ox] = s0 + bias;
            yr[ox + 1] = s1 + bias;
            yr[ox + 2] = s2 + bias;
            yr[ox + 3] = s3 + bias;
            ox += 3;
          } else {
            float s = 0.0f;
            for (e = 0; e < nt; ++e) s += val[e] * xp[off[e]];
            yr[ox] = s + bias;
          }
        } else { /* a border position: the taps inside the input, found by (ky, kx) */
          const ptrdiff_t at = (ptrdiff_t)iy0 * (ptrdiff_t)W + ix0;
          uint32_t kx0, kx1;
          float s = 0.0f;
          micro_tap_range(ix0, a[7], kw, W, &kx0, &kx1);
          for (e = 0; e < nt; ++e) {
            const uint32_t ky = kyx[e] >> 16, kx = kyx[e] & 0xFFFFu;
            if (ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1) s += val[e] * xg[at + (ptrdiff_t)off[e]];
          }
          yr[ox] = s + bias;
        }
      }
    }
  }
}

/* One axis of a pool window: [lo, hi) inside the input, `padded` its length clipped to the padded extent. */
static void window(uint32_t o, uint32_t stride, uint32_t pad_lo, uint32_t pad_hi, uint32_t kernel, uint32_t in,
                   int64_t* lo, int64_t* hi, int64_t* padded) {
  const int64_t start = (int64_t)o * stride - (int64_t)pad_lo;
  int64_t end = start + kernel;
  if (end > (int64_t)in + pad_hi) end = (int64_t)in + pad_hi;
  *lo = start < 0 ? 0 : start;
  *hi = end < (int64_t)in ? end : (int64_t)in;
  *padded = end - start;
}

/* attr: kernel h, w; stride h, w; padding top, left, bottom, right; ceil_mode; count_include_pad (FORMAT.md 2.4). */
static void pool2d(const micro_node* n, const micro_value* xv, const micro_value* yv, const float* x, float* y) {
  const uint32_t* a = n->attr;
  const uint32_t C = xv->dims[0], H = xv->dims[1], W = xv->dims[2], OH = yv->dims[1], OW = yv->dims[2];
  const int is_max = n->op == MICRO_OP_MAX_POOL2D;
  uint32_t p, oy, ox;
  for (p = 0; p < C; ++p) {
    const float* xp = x + (size_t)p * H * W;
    float* yp = y + (size_t)p * OH * OW;
    for (oy = 0; oy < OH; ++oy) {
      int64_t rlo, rhi, rpad, iy, ix;
      window(oy, a[2], a[4], a[6], a[0], H, &rlo, &rhi, &rpad);
      for (ox = 0; ox < OW; ++ox) {
        int64_t clo, chi, cpad;
        float s;
        window(ox, a[3], a[5], a[7], a[1], W, &clo, &chi, &cpad);
        if (is_max) { /* every window overlaps the input (FORMAT.md 2.4); a NaN wins */
          s = xp[rlo * W + clo];
          for (iy = rlo; iy < rhi; ++iy)
            for (ix = clo; ix < chi; ++ix) {
              const float v = xp[iy * W + ix];
              s = micro_isnan(s) ? s : (s > v ? s : v);
            }
        } else {
          const int64_t count = a[9] ? rpad * cpad : (rhi - rlo) * (chi - clo);
          s = 0.0f;
          for (iy = rlo; iy < rhi; ++iy)
            for (ix = clo; ix < chi; ++ix) s += xp[iy * W + ix];
          s = s / (float)count;
        }
        yp[(size_t)oy * OW + ox] = s;
      }
    }
  }
}

static const float* value_in(const pyrt_micro_model* m, uint32_t v) {
  return m->values[v].data ? m->values[v].data : m->input;
}

void micro_run_node(const pyrt_micro_model* m, const micro_node* n) {
  const micro_value* xv = &m->values[n->in0];
  const micro_value* yv = &m->values[n->out];
  const float* x = value_in(m, n->in0);
  float* y = yv->data;
  uint32_t i;
  if (y == NULL) return; /* a view of the input (flatten, reshape): nothing to move */
  switch (n->op) {
    case MICRO_OP_LINEAR:
    case MICRO_OP_QLINEAR:
      if (micro_is_int8(n->w.encoding)) micro_int8_linear(n, x, xv->numel / n->w.cols, y, m->scratch);
      else linear(&n->w, n->bias, x, xv->numel / n->w.cols, y);
      break;
    case MICRO_OP_CONV2D:
    case MICRO_OP_QCONV2D:
      if (micro_is_int8(n->w.encoding)) micro_int8_conv2d(n, xv, yv, x, y, m->scratch);
      else conv2d(n, xv, yv, x, y, m->scratch);
      break;
    case MICRO_OP_MAX_POOL2D:
    case MICRO_OP_AVG_POOL2D:
      pool2d(n, xv, yv, x, y);
      break;
    case MICRO_OP_GLOBAL_AVG_POOL: {
      const uint32_t plane = xv->dims[1] * xv->dims[2];
      for (i = 0; i < xv->dims[0]; ++i) {
        double s = 0.0; /* as the host reference: the mean of a large plane exact to float precision */
        uint32_t k;
        for (k = 0; k < plane; ++k) s += x[(size_t)i * plane + k];
        y[i] = (float)(s / (double)plane);
      }
      break;
    }
    case MICRO_OP_RELU:
      for (i = 0; i < yv->numel; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i]; /* NaN stays NaN */
      break;
    case MICRO_OP_CLAMP: {
      const float lo = micro_f32((const uint8_t*)&n->attr[0]), hi = micro_f32((const uint8_t*)&n->attr[1]);
      for (i = 0; i < yv->numel; ++i) y[i] = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]);
      break;
    }
    case MICRO_OP_ADD: {
      const float* b = value_in(m, n->in1);
      for (i = 0; i < yv->numel; ++i) y[i] = x[i] + b[i];
      break;
    }
    case MICRO_OP_SOFTMAX: {
      float mx = x[0], s = 0.0f, inv;
      for (i = 1; i < yv->numel; ++i) mx = x[i] > mx ? x[i] : mx;
      for (i = 0; i < yv->numel; ++i) {
        y[i] = expf(x[i] - mx);
        s += y[i];
      }
      inv = 1.0f / s;
      for (i = 0; i < yv->numel; ++i) y[i] *= inv;
      break;
    }
    case MICRO_OP_CONCAT: { /* each input's block of dims[axis..] per position of the axes before it */
      const uint32_t axis = n->attr[0];
      uint32_t outer = 1, inner = 1, o, k;
      for (i = 0; i < axis; ++i) outer *= yv->dims[i];
      for (i = axis + 1; i < yv->rank; ++i) inner *= yv->dims[i];
      for (o = 0; o < outer; ++o)
        for (k = 0; k < n->n_inputs; ++k) {
          const size_t chunk = (size_t)m->values[n->inputs[k]].dims[axis] * inner;
          memcpy(y, value_in(m, n->inputs[k]) + o * chunk, chunk * 4u);
          y += chunk;
        }
      break;
    }
    default: /* flatten, reshape: views; a view of a buffer shares it, so only a copy is left to do */
      if (y != x) memmove(y, x, (size_t)yv->numel * 4u);
      break;
  }
}
