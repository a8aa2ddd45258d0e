// pyruntime model file (.pyrt), format versions 1 and 2. The normative spec is docs/FORMAT.md; this is the
// summary the code is written against. All integers little-endian.
//
//  offset  size  file header (64 bytes)
//  0       8     magic "PYRT\r\n\x1a\n" (50 59 52 54 0D 0A 1A 0A)
//  8       4     u32 version (1: MLP ops; 2: conv ops). A reader accepts every version <= its own.
//  12      4     u32 flags (0; reserved)
//  16      8     u64 file_size: the whole file in bytes
//  24      4     u32 section_count (1 .. kMaxSections)
//  28      4     u32 table_crc: CRC-32 of the section table
//  32      28    reserved, zero
//  60      4     u32 header_crc: CRC-32 of bytes 0..59
//  64      32*n  section table, one entry per section:
//                  u32 type (1 graph, 2 tensor, 3 metadata), u32 flags (bit 0: required),
//                  u64 offset (multiple of 64), u64 size, u32 crc (CRC-32 of the payload), u32 reserved
//  ...           payloads, each at its 64-byte aligned offset, zero padding between them
//
//  graph payload:   u32 input_rank, u32 input_dims[4], u32 node_count, u32 reserved, nodes...
//                   node = u16 op, u8 n_inputs, u8 n_tensors, u32 attr_bytes,
//                          u32 inputs[n_inputs], u32 tensors[n_tensors], attr bytes (multiple of 4)
//                   value 0 is the graph input, value i+1 the output of node i; the output is value n.
//  tensor payload:  u32 encoding, u32 rank, u32 dims[4], u32 name_len, u32 reserved,
//                   name (padded to 8), then the body of the encoding (docs/FORMAT.md, tensor_codec.h)
//  symbol stream:   u8 coding (0 packed, 1 huffman), u8 symbol_bits, u16 0, u32 count, u32 payload_bytes,
//                   u32 0, [huffman: u8 code_lengths[2^symbol_bits], padded to 4], payload (padded to 4)
#pragma once

#include <cstdint>

namespace pyrt::format {

constexpr uint8_t kMagic[8] = {0x50, 0x59, 0x52, 0x54, 0x0D, 0x0A, 0x1A, 0x0A};
constexpr uint32_t kVersion = 5;  // the newest version this reader reads (and writer writes)
constexpr uint32_t kHeaderSize = 64;
constexpr uint32_t kSectionEntrySize = 32;
constexpr uint32_t kPayloadAlign = 64;
constexpr uint32_t kMaxSections = 1u << 16;

enum SectionType : uint32_t { kSectionGraph = 1, kSectionTensor = 2, kSectionMetadata = 3 };
constexpr uint32_t kSectionRequired = 1u;

enum Coding : uint8_t { kCodingPacked = 0, kCodingHuffman = 1 };

// Limits a reader enforces before allocating.
constexpr uint32_t kMaxNameLength = 255;
constexpr uint32_t kMaxNodes = 1u << 16;
constexpr uint32_t kMaxNodeInputs = 16;
constexpr uint32_t kMaxNodeTensors = 16;
constexpr uint32_t kMaxAttrBytes = 1024;

}  // namespace pyrt::format
