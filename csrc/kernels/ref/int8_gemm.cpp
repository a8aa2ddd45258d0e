// pyruntime: scalar references of the int8 kernels, on the execution layouts (kernels/int8/int8_layouts.h).
// The oracles: every int8 kernel must give these results bit for bit.
#include <cstring>

#include "kernels/int8/int8_layouts.h"

namespace pyrt::kernels {
namespace {

void store(const Int8Epilogue& ep, int32_t acc, float xs, uint32_t r, void* y, size_t at) {
  const float v = int8_epilogue(acc, xs * ep.wscale[r], ep.bias ? ep.bias[r] : 0.0f, ep.lo, ep.hi);
  if (ep.inv_out > 0.0f)
    static_cast<int8_t*>(y)[at] = ref::quantize_one(v, ep.inv_out);
  else
    static_cast<float*>(y)[at] = v;
}

}  // namespace

void pyrt_i8_gemm__ref(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1,
                       void* y, size_t ldy) {
  const size_t groups = L.kp / 4;
  for (size_t b = 0; b < a.batch; ++b) {
    const int8_t* q = a.q + b * a.ldq;
    for (uint32_t r = r0; r < r1; ++r) {
      const int8_t* block_row = L.w + size_t(r / 16) * groups * 64 + (r % 16) * 4;  // row r's lane in group 0
      int32_t acc = 0;
      for (uint32_t c = 0; c < L.cols; ++c) acc += int32_t(block_row[size_t(c / 4) * 64 + c % 4]) * q[c];
      store(ep, acc, a.xs[b], r, y, b * ldy + r);
    }
  }
}

void pyrt_i8_spmm__ref(const Int8Panels& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1,
                       void* y, size_t ldy) {
  for (uint32_t rb = r0 / 16; rb * 16 < r1; ++rb) {
    for (size_t b = 0; b < a.batch; ++b) {
      const int8_t* q = a.q + b * a.ldq;
      int32_t acc[16] = {};
      const uint8_t* step = L.steps + L.step_start[rb] * kStepBytes;
      for (uint32_t p = 0; p < L.panels; ++p) {
        const int8_t* table = q + size_t(p) * kPanelCols;
        for (uint32_t s = 0; s < L.nsteps[size_t(rb) * L.panels + p]; ++s, step += kStepBytes) {
          const int8_t* w = reinterpret_cast<const int8_t*>(step + 64);
          for (int k = 0; k < 64; ++k) acc[k / 4] += int32_t(w[k]) * table[step[k]];
        }
      }
      for (uint32_t i = 0; i < 16 && rb * 16 + i < r1; ++i) store(ep, acc[i], a.xs[b], rb * 16 + i, y, b * ldy + rb * 16 + i);
    }
  }
}

}  // namespace pyrt::kernels
