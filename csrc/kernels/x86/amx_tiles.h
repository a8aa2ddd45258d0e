// pyruntime: the AMX tile configuration the int8 AMX kernels share (int8_gemm_amx.cpp, int8_conv_amx.cpp):
// palette 1, tiles 0-7 each 16 rows of 64 bytes (4 int32 accumulator tiles, 2 + 2 operand tiles). Loading
// it zeroes every tile; a kernel loads it at entry and releases the tiles (_tile_release) before it
// returns, so a thread's tile state is only ever live inside one call.
#pragma once

#include <cstdint>

namespace pyrt::kernels::amx {

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

inline const TileConfig& config_16x64() {
  static const TileConfig c = [] {
    TileConfig t;
    for (int i = 0; i < 8; ++i) {
      t.colsb[i] = 64;
      t.rows[i] = 16;
    }
    return t;
  }();
  return c;
}

}  // namespace pyrt::kernels::amx
