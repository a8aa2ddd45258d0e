// pyruntime: the scalar reference of the binary kernels (binary_kernels.h) and their run-time dispatch. The
// references are the oracles of the tests: every level must give their bits (XNOR, sign) exactly.
#include <cmath>
#include <cstring>

#include "kernels/binary/binary_kernels.h"

namespace pyrt::kernels {

bool sign_bit(float x, float scale, float shift) {
  volatile float v = x * scale;  // two roundings, never contracted into an fma
  const float u = v + shift;
  return u >= 0.0f;
}

namespace ref {

void xnor_gemm(const uint64_t* w8, size_t kw, size_t r0, size_t r1, const uint64_t* x, size_t ldx, size_t batch,
               const BinaryEpilogue& ep, void* y, size_t ldy) {
  for (size_t b = 0; b < batch; ++b) {
    const uint64_t* xb = x + b * ldx;
    for (size_t rb = r0 / 8; rb * 8 < r1; ++rb) {
      uint8_t byte = 0;
      for (size_t l = 0; l < 8; ++l) {
        const size_t r = rb * 8 + l;
        int32_t m = 0;
        for (size_t j = 0; j < kw; ++j) m += __builtin_popcountll(w8[(rb * kw + j) * 8 + l] ^ xb[j]);
        if (ep.counts) {
          if (r < r1) static_cast<int32_t*>(y)[b * ldy + r] = m;
        } else if (ep.limit) {
          byte |= uint8_t(m <= ep.limit[r]) << l;
        } else if (r < r1) {
          static_cast<float*>(y)[b * ldy + r] = std::fma(float(int32_t(ep.k) - 2 * m), ep.alpha[r], ep.bias[r]);
        }
      }
      if (ep.limit && !ep.counts) static_cast<uint8_t*>(y)[b * ldy + rb] = byte;
    }
  }
}

void bwn_gemm(const uint64_t* w, size_t kw, size_t cols, size_t r0, size_t r1, const float* x, size_t ldx,
              size_t batch, const float* alpha, const float* bias, float* y, size_t ldy) {
  for (size_t b = 0; b < batch; ++b) {
    for (size_t r = r0; r < r1; ++r) {
      float s = 0.0f;
      for (size_t c = 0; c < cols; ++c) {
        const float v = x[b * ldx + c];
        s += (w[r * kw + c / 64] >> (c % 64)) & 1 ? v : -v;
      }
      y[b * ldy + r] = std::fma(alpha[r], s, bias[r]);
    }
  }
}

void binarize(const float* x, size_t ldx, size_t batch, size_t cols, float scale, float shift, uint64_t* out,
              size_t ldo) {
  for (size_t b = 0; b < batch; ++b) {
    uint64_t* o = out + b * ldo;
    std::memset(o, 0, ldo * sizeof(uint64_t));
    for (size_t c = 0; c < cols; ++c) o[c / 64] |= uint64_t(sign_bit(x[b * ldx + c], scale, shift)) << (c % 64);
  }
}

void binarize_hwc(const float* x, size_t batch, size_t channels, size_t pixels, float scale, float shift,
                  uint64_t* out) {
  const size_t cw = (channels + 63) / 64;
  std::memset(out, 0, batch * pixels * cw * sizeof(uint64_t));
  for (size_t b = 0; b < batch; ++b, x += channels * pixels, out += pixels * cw)
    for (size_t c = 0; c < channels; ++c)
      for (size_t p = 0; p < pixels; ++p)
        out[p * cw + c / 64] |= uint64_t(sign_bit(x[c * pixels + p], scale, shift)) << (c % 64);
}

void dot_epilogue(const int32_t* m, size_t n, size_t o, const int32_t* kv, const float* alpha, const float* bias,
                  const int32_t* lim2, void* y, size_t ldy) {
  for (size_t i = 0; i < n; ++i) {
    if (lim2) {
      uint64_t* w = static_cast<uint64_t*>(y) + i * ldy;
      std::memset(w, 0, ldy * sizeof(uint64_t));
      for (size_t r = 0; r < o; ++r) w[r / 64] |= uint64_t(kv[i] - 2 * m[i * o + r] >= lim2[r]) << (r % 64);
    } else {
      for (size_t r = 0; r < o; ++r)
        static_cast<float*>(y)[i * o + r] = std::fma(float(kv[i] - 2 * m[i * o + r]), alpha[r], bias[r]);
    }
  }
}

}  // namespace ref

const BinaryKernels& binary_kernels(Isa isa) {
  static const BinaryKernels reference{&ref::xnor_gemm,    &ref::bwn_gemm,     &ref::binarize,
                                       &ref::binarize_hwc, &ref::dot_epilogue, "ref"};
#if PYRT_HAVE_X86_KERNELS
  static const BinaryKernels avx2{&pyrt_xnor_gemm__avx2,    &pyrt_bwn_gemm__avx2,     &pyrt_binarize__avx2,
                                  &pyrt_binarize_hwc__avx2, &pyrt_dot_epilogue__avx2, "avx2"};
  static const BinaryKernels avx512{&pyrt_xnor_gemm__avx2,      &pyrt_bwn_gemm__avx512,     &pyrt_binarize__avx512,
                                    &pyrt_binarize_hwc__avx512, &pyrt_dot_epilogue__avx512, "avx2"};
  static const BinaryKernels avx512popcnt{&pyrt_xnor_gemm__avx512popcnt, &pyrt_bwn_gemm__avx512,
                                          &pyrt_binarize__avx512,        &pyrt_binarize_hwc__avx512,
                                          &pyrt_dot_epilogue__avx512,    "avx512-vpopcntdq"};
  static const bool popcnt = cpu_has_vpopcntdq();
  if (isa >= Isa::avx512) return popcnt ? avx512popcnt : avx512;
  if (isa >= Isa::avx2) return avx2;
#endif
#if PYRT_HAVE_ARM_KERNELS
  static const BinaryKernels neon{&pyrt_xnor_gemm__neon,    &pyrt_bwn_gemm__neon,     &pyrt_binarize__neon,
                                  &pyrt_binarize_hwc__neon, &pyrt_dot_epilogue__neon, "neon"};
  if (isa >= Isa::neon) return neon;
#endif
  (void)isa;
  return reference;
}

}  // namespace pyrt::kernels
