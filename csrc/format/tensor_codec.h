// pyruntime: tensor payloads of the model file (storage layout, docs/FORMAT.md "Tensor sections").
//
//   u32 encoding, u32 rank, u32 dims[4] (unused = 0), u32 name_len, u32 0, name (zero padded to 8), body:
//   dense          zero padding to a 64-byte boundary of the payload, f32 values[numel]
//   codebook       u32 k, u32 index_bits, f32 centroids[k], stream(indices: numel symbols of index_bits)
//   csr            u32 nnz, u32 gap_bits, u32 count_width, u32 0, row_counts[rows] (count_width bytes
//                  each, padded to 4), stream(gaps: gap_bits), f32 values[nnz]
//   csr+codebook   u32 nnz, u32 gap_bits, u32 count_width, u32 k, u32 index_bits, u32 0, f32 centroids[k],
//                  row_counts, stream(gaps), stream(indices: nnz symbols of index_bits)
//   int8           f32 scales[rows], stream(values: numel 8-bit symbols, two's complement, never 0x80)
//   csr+int8       u32 nnz, u32 gap_bits, u32 count_width, u32 0, f32 scales[rows], row_counts,
//                  stream(gaps), stream(values: nnz 8-bit symbols)
//   binary         f32 alphas[rows], zero padding to 8, u64 words[rows * ceil(cols / 64)] (bit = 1: +1)
//
// Relative column indices (after Deep Compression): with M = 2^gap_bits - 1 and a position p that
// starts at 0 on every row, a gap symbol g < M places the next nonzero at column p + g and sets
// p to that column + 1; g == M is a filler that advances p by M and carries no value. row_counts
// count real nonzeros only; the writer never ends a row on a filler.
#pragma once

#include <cstdint>

#include "common/tensor.h"
#include "format/bytes.h"

namespace pyrt::format {

// Appends the tensor payload. For sparse encodings with gap_bits == 0 the writer tries 1..8 and keeps
// the smallest. `t` must be valid (DecodedTensor::validate).
void encode_tensor(ByteWriter& w, const DecodedTensor& t);

// Bytes encode_tensor would write.
size_t encoded_tensor_bytes(const DecodedTensor& t);

// Decodes and validates a tensor payload; errors name the tensor (or its index if the name is unreadable).
// With borrow_dense, a dense tensor whose values are 4-byte aligned in memory is not copied: it points
// into the reader's buffer (DecodedTensor::borrowed_values), which the caller keeps alive.
DecodedTensor decode_tensor(ByteReader& r, uint32_t index, bool borrow_dense = false);

// Relative column gaps of a CSR index for a given gap width (fillers included).
std::vector<uint8_t> column_gaps(const DecodedTensor& t, unsigned gap_bits);

}  // namespace pyrt::format
