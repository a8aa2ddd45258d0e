// pyruntime: CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF),
// the same checksum as zlib's crc32(), used for the header, the section table and every section.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pyrt::format {

uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc = 0);

}  // namespace pyrt::format
