/*
 * micro_int8.c -- the int8 arithmetic of the bare-metal runtime (FORMAT.md 2.5): an input's scale, its
 * quantization, and the dense int8 dot product, with an SMLAD path on cores with the DSP extension
 * (Cortex-M4, M7, M33 with DSP: __ARM_FEATURE_DSP) and a scalar one elsewhere.
 *
 * The float operations are the host's (csrc/kernels/ref/quantize.h) one by one, rounded as IEEE-754 does;
 * the build keeps the compiler from fusing a product into a sum (-ffp-contract=off), which would round
 * once where the host rounds twice. The int32 sums are exact, so their order (pairs on the SMLAD path) is
 * free.
 */
#include <float.h>
#include <math.h>

#include "micro_internal.h"

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

#if !(defined(__GNUC__) && defined(__FP_FAST_FMAF))
/* a * b + c rounded once, in double arithmetic (IEEE binary64, to nearest: x86-64, or a soft-float C
 * library): newlib's fmaf rounds the double sum to float, a second rounding that is wrong when the sum lands
 * exactly on the midpoint of two floats. Here the product is exact (24 + 24 bits), the sum's rounding error
 * is recovered exactly (TwoSum), and a sum on a float midpoint is moved one double ulp toward the exact
 * value before the conversion, which then rounds as the exact value does. A midpoint is a double: of two
 * normal floats, its low 29 bits are 1 followed by zeros; of two subnormals, an odd multiple of 2^-150. */
float micro_fmaf(float a, float b, float c) {
  const double p = (double)a * b, r = p + c;
  const double cc = r - p, e = (p - (r - cc)) + (c - cc); /* p + c == r + e exactly */
  union {
    double f;
    uint64_t i;
  } u;
  int midpoint;
  if (e == 0.0 || r - r != 0.0) return (float)r; /* exact, or infinite / NaN */
  u.f = r;
  if (fabs(r) >= 0x1p-126) {
    midpoint = (u.i & 0x1FFFFFFFu) == 0x10000000u;
  } else {
    const double t = fabs(r) * 0x1p150; /* below 2^24: exact */
    midpoint = t == (double)(uint32_t)t && ((uint32_t)t & 1u);
  }
  if (midpoint) u.i += (e > 0.0) == (r > 0.0) ? 1 : (uint64_t)-1; /* away from zero if e has r's sign */
  return (float)u.f;
}
#endif

int micro_i8_dynamic_scale(const float* x, uint32_t n, float* xs, float* inv) {
  float m = 0.0f;
  int finite = 1;
  uint32_t i;
  for (i = 0; i < n; ++i) {
    const float a = fabsf(x[i]);
    finite &= a <= FLT_MAX; /* false for NaN and infinity */
    m = a > m ? a : m;
  }
  if (!finite || m == 0.0f) {
    *xs = finite ? 0.0f : NAN;
    *inv = 0.0f;
    return 0;
  }
  *xs = m / 127.0f;
  *inv = 127.0f / m;
  return 1;
}

void micro_i8_quantize16(const float* x, uint32_t n, float inv, int any, int slotted, int16_t* q) {
  const uint32_t kp = micro_i8_kp(n);
  uint32_t c;
  for (c = 0; c < n; ++c) q[slotted ? micro_i8_slot(c) : c] = (int16_t)(any ? micro_quantize(x[c], inv) : 0);
  for (; c < kp; ++c) q[slotted ? micro_i8_slot(c) : c] = 0;
}

void micro_i8_quantize8(const float* x, uint32_t n, float inv, int any, int8_t* q) {
  uint32_t c;
  if (!any) {
    memset(q, 0, n);
    return;
  }
  for (c = 0; c < n; ++c) q[c] = (int8_t)micro_quantize(x[c], inv);
}

#if defined(__ARM_FEATURE_DSP)

/* A word of four weights w0 w1 w2 w3 (w0 in the low byte) against eight bytes of activations stored
 * x0 x2 x1 x3 (micro_i8_slot): SXTB16 sign-extends bytes 0 and 2 into the halves of one register (w0, w2),
 * and of the word rotated right by 8, bytes 1 and 3 (w1, w3); SMLAD adds the products of the low halves and
 * of the high halves to the accumulator, so two SMLADs take the four products. */
static inline int32_t dot4(const int8_t* w, const int16_t* x, int32_t acc) {
  uint32_t wq, x02, x13;
  __builtin_memcpy(&wq, w, 4); /* one LDR each (the builtin: -ffreestanding makes memcpy a call) */
  __builtin_memcpy(&x02, x, 4);
  __builtin_memcpy(&x13, x + 2, 4);
  int32_t w13;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(w13) : "r"(wq)); /* one instruction: the rotation is SXTB16's own */
  acc = __smlad(__sxtb16((int32_t)wq), (int32_t)x02, acc);
  return __smlad(w13, (int32_t)x13, acc);
}

int32_t micro_i8_dot(const int8_t* w, const int16_t* x, uint32_t kp) {
  int32_t a0 = 0, a1 = 0;
  uint32_t c = 0;
  for (; c + 8 <= kp; c += 8) { /* two independent accumulators: SMLAD's result is not waited on */
    a0 = dot4(w + c, x + c, a0);
    a1 = dot4(w + c + 4, x + c + 4, a1);
  }
  if (c < kp) a0 = dot4(w + c, x + c, a0);
  return a0 + a1;
}

#else

int32_t micro_i8_dot(const int8_t* w, const int16_t* x, uint32_t kp) {
  int32_t acc = 0;
  uint32_t c;
  for (c = 0; c < kp; ++c) acc += (int32_t)w[c] * x[c];
  return acc;
}

#endif
