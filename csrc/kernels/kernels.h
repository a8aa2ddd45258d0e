// pyruntime: the execution layouts of linear weights and the kernel registry.
//
// pack.cpp turns a DecodedTensor into one of the layouts below, once, at load time. Every kernel for a
// layout has the signature
//     void pyrt_<stem>__<isa>(const Layout& w, const float* x, size_t batch, float* y, const float* bias)
// computing y[b][r] = sum_c W[r][c] * x[b][c] + bias[r] (x: batch x cols, y: batch x rows, row-major,
// bias may be null). The list of kernels is kernels/kernel_list.inc (X-macro); it feeds the declarations
// here, the dispatch tables (kernel_for<Layout>(isa)) and the tests, so a listed kernel is dispatched and
// tested as soon as it exists. Every ISA kernel has a scalar twin (isa = ref) on the same layout.
//
// Over-read padding: every array a kernel streams is an AlignedArray with >= 64 zero bytes after its
// last element, so a vector kernel may load up to one vector of indices or values past the end of a row
// or of the array; it zeroes (or never uses) the lanes past the end, so even an infinite table entry
// cannot leak into a result. x and y are caller memory and are never over-read or over-written.
//
// ISA kernels live in x86/*_avx2.cpp and x86/*_avx512.cpp (compiled with per-file ISA flags, only when
// PYRT_HAVE_X86_KERNELS) and arm/*_neon.cpp (aarch64, PYRT_HAVE_ARM_KERNELS); calling one at a level the CPU
// lacks is undefined, so callers pass a level that isa_supported() accepted (active_isa() always is).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/isa.h"

namespace pyrt::kernels {

// ---- execution layouts (views; the storage is owned by the PackedWeight) ----

// dense f32: W row-major, rows x cols.
struct DenseF32 {
  const float* w;
  uint32_t rows, cols;
};

// Codebook with k <= 2^B centroids, B = 1, 2 or 4 (k <= 2, <= 4, <= 16): B-bit indices, 8 / B per byte.
// Row r starts at byte r * lutb_row_bytes(B, cols) and is a run of groups of 16 bytes holding
// G = 128 / B columns (32, 64, 128); in a group, field f of byte j (bits [f*B, f*B + B)) holds the index
// of column c0 + 16 f + j:
//
//     B = 4:  byte j = [ idx[c0+16+j] | idx[c0+j] ]                      (c0 = G * group)
//     B = 2:  byte j = [ idx[c0+48+j] | idx[c0+32+j] | idx[c0+16+j] | idx[c0+j] ]
//     B = 1:  bit f of byte j = idx[c0 + 16 f + j]
//
// so one zero-extension of 16 bytes to 16 dwords, shifted right by f*B, gives columns c0+16f .. +15 in
// the low bits of each dword. vpermps reads only the low 3 (ymm) or 4 (zmm) index bits, and the table is
// stored replicated (lut[i] = centroid[i mod 2^B] for i < 16), so the bits of the next fields above an
// index never need masking. Columns past `cols` in the last group have index 0. lut holds 256 floats.
template <int B>
struct LutBits {
  static_assert(B == 1 || B == 2 || B == 4, "packed codebook indices are 1, 2 or 4 bits");
  static constexpr int kBits = B;
  static constexpr size_t kGroup = 128 / B;  // columns per 16-byte group
  const uint8_t* idx;
  const float* lut;
  uint32_t k, rows, cols;
};
using Lut1 = LutBits<1>;
using Lut2 = LutBits<2>;
using Lut4 = LutBits<4>;
inline size_t lutb_row_bytes(int bits, uint32_t cols) {
  const size_t group = 128 / size_t(bits);
  return (size_t(cols) + group - 1) / group * 16;
}

// Codebook with 16 < k <= 256 centroids: one index byte per weight, row-major. lut holds 256 floats.
struct Lut8 {
  const uint8_t* idx;
  const float* lut;
  uint32_t k, rows, cols;
};

// CSR structure shared by the sparse layouts: entries [rowptr[r], rowptr[r+1]) of row r, strictly
// increasing columns. Columns are 16-bit when cols <= 65536 (col16 != null), else 32-bit (col32).
struct CsrIndex {
  const uint32_t* rowptr;
  const uint16_t* col16;
  const uint32_t* col32;
  uint32_t rows, cols;
};

// csr: one f32 value per entry.
struct CsrF32 {
  CsrIndex ix;
  const float* val;
};

// csr+codebook with k <= 16: 4-bit indices. The entries of row r are ceil(n_r / 16) groups of 8 bytes
// starting at byte 8 * goff[r] (goff[r] = sum of the groups of the rows before r); in a group, byte j
// (0..7) holds entry j in its low nibble and entry 8 + j in its high nibble:
//
//     byte j:  [7:4] = idx[e0 + 8 + j]   [3:0] = idx[e0 + j]           (e0 = 16 * group)
//
// Unused nibbles of a row's last group are 0.
struct CsrLut4 {
  CsrIndex ix;
  const uint32_t* goff;
  const uint8_t* idx;
  const float* lut;
  uint32_t k;
};
constexpr size_t kCsrLut4Group = 16;  // entries per 8-byte group

// csr+codebook with 16 < k <= 256: one index byte per entry, in CSR entry order.
struct CsrLut8 {
  CsrIndex ix;
  const uint8_t* idx;
  const float* lut;
  uint32_t k;
};

// ---- kernel declarations from the registry ----

template <class Layout>
using GemmFn = void (*)(const Layout& w, const float* x, size_t batch, float* y, const float* bias);

#define PYRT_KERNEL(layout, stem, isa) \
  void pyrt_##stem##__##isa(const layout& w, const float* x, size_t batch, float* y, const float* bias);
#include "kernels/kernel_list.inc"
#undef PYRT_KERNEL

#if PYRT_HAVE_X86_KERNELS
// The two Lut8 kernels behind pyrt_lut8_f32_gemm__avx512, which picks one by CPU, k and batch (outside the
// registry; the native tests call both directly, so each runs on a CPU with VBMI):
//   pyrt_lut8_f32_gemm__avx512vbmi     byte-plane decoder (vpermb), only where cpu_has_vbmi(); any k, batch
//   pyrt_lut8_f32_gemm_permps__avx512  vpermt2ps decoder, any AVX-512 CPU
void pyrt_lut8_f32_gemm__avx512vbmi(const Lut8& w, const float* x, size_t batch, float* y, const float* bias);
void pyrt_lut8_f32_gemm_permps__avx512(const Lut8& w, const float* x, size_t batch, float* y, const float* bias);
#endif

// The kernel for `Layout` at level `isa`; a level without a dedicated kernel falls back to the next lower.
template <class Layout>
GemmFn<Layout> kernel_for(Isa isa);

// Per-thread scratch of at least n floats, 64-byte aligned. Grows on first use in a thread and is reused
// afterwards (no allocation in steady state); contents are unspecified. One buffer per slot, so that a
// caller may keep data in its slot while calling code that uses another: the GEMM kernels reorder x in
// kGemm; the convolutions (kernels/conv) keep their patches / padded input in kConv across the GEMM calls
// (and the f32 max pool its row of maxima); the runtime gathers a thread's block of output rows in kRows (runtime/ops/linear.cpp) and an int8 layer's
// quantized activations in kInt8 (runtime/ops/linear_int8.cpp).
enum class Scratch : int { kGemm = 0, kConv = 1, kRows = 2, kInt8 = 3, kBinary = 4 };
float* thread_scratch(size_t n, Scratch slot = Scratch::kGemm);

}  // namespace pyrt::kernels
