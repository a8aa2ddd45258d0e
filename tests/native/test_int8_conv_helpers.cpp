// The data movement of the int8 convolutions (int8_conv.h) at every level this CPU has, against Isa::ref byte
// for byte (memcmp over the whole destination, which starts filled with a marker so that a skipped or stray
// write shows): the depthwise input's phase layout (strides 1-5 in each direction, paddings 0-3, widths around
// 16, 32 and 48 phase columns, one-row and one-column planes), the tile-to-planes transpose (positions and
// channels around the 4-, 8- and 16-element blocks, a plane longer than the tile, bit patterns of NaNs), and
// the channels-last copy (1 to 64 channels, widths around 16, destination strides wider than the channels).
#include <cstring>

#include "harness.h"
#include "kernels/int8/int8_conv.h"

using namespace pyrt::kernels;
using pyrt_test::Rng;

namespace {

constexpr uint8_t kMarker = 0xA5;

void fill_random(Rng& rng, void* p, size_t bytes) {
  auto* b = static_cast<uint8_t*>(p);
  for (size_t i = 0; i < bytes; ++i) b[i] = static_cast<uint8_t>(rng.below(256));
}

}  // namespace

PYRT_TEST(dw_phases_match_the_reference) {
  Rng rng(11);
  const uint32_t widths[] = {1, 2, 5, 15, 16, 17, 31, 32, 33, 47, 48, 49, 64, 65, 100, 150, 200};
  for (uint32_t sh = 1; sh <= 3; ++sh)
    for (uint32_t sw = 1; sw <= 5; ++sw)
      for (uint32_t in_w : widths)
        for (uint32_t in_h : {1u, 4u}) {
          const uint32_t pt = rng.below(4), pl = rng.below(4), pb = rng.below(3), pr = rng.below(3);
          const size_t wp = in_w + pl + pr, hp = in_h + pt + pb;
          const size_t phase_len = (wp + sw - 1) / sw, sub_rows = (hp + sh - 1) / sh;
          const size_t sub_bytes = sub_rows * phase_len;
          const Int8DwPhases f{in_h, in_w, pt, pl, sh, sw, sub_bytes, phase_len};
          const size_t bytes = sub_bytes * sh * sw + kInt8DwSlack;
          std::vector<int8_t> src(size_t(in_h) * in_w), want(bytes, int8_t(kMarker));
          fill_random(rng, src.data(), src.size());
          int8_dw_phases(Isa::ref, f, src.data(), want.data());
          for (Isa isa : pyrt_test::fast_isas()) {
            std::vector<int8_t> got(bytes, int8_t(kMarker));
            int8_dw_phases(isa, f, src.data(), got.data());
            CHECK(got == want, "dw phases ", in_h, "x", in_w, " stride ", sh, "x", sw, " pad ", pt, ",", pl, " at ",
                  isa_name(isa));
          }
        }
}

PYRT_TEST(transpose_to_planes_matches_the_reference) {
  Rng rng(12);
  const size_t sizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 64};
  for (size_t n : sizes)
    for (size_t og : sizes) {
      const size_t plane = n + rng.below(6);
      std::vector<float> tile(n * og);
      fill_random(rng, tile.data(), 4 * tile.size());  // any bits: NaN payloads and int8 groups move as they are
      std::vector<float> want(og * plane);
      std::memset(want.data(), kMarker, 4 * want.size());
      transpose_to_planes(Isa::ref, tile.data(), n, og, want.data(), plane);
      for (Isa isa : pyrt_test::fast_isas()) {
        std::vector<float> got(og * plane);
        std::memset(got.data(), kMarker, 4 * got.size());
        transpose_to_planes(isa, tile.data(), n, og, got.data(), plane);
        CHECK(std::memcmp(got.data(), want.data(), 4 * got.size()) == 0, "transpose n=", n, " og=", og, " plane ",
              plane, " at ", isa_name(isa));
      }
    }
}

PYRT_TEST(channels_last_matches_the_reference) {
  Rng rng(13);
  for (size_t channels : {1, 3, 15, 16, 17, 32, 33, 64})
    for (size_t h : {1, 3})
      for (size_t w : {1, 7, 15, 16, 17, 31, 32, 40}) {
        const size_t dst_stride = channels + (rng.chance(0.5) ? 0 : 1 + rng.below(8));
        const size_t dst_row = w * dst_stride + (rng.chance(0.5) ? 0 : 1 + rng.below(16));
        std::vector<int8_t> src(channels * h * w), want(h * dst_row, int8_t(kMarker));
        fill_random(rng, src.data(), src.size());
        int8_channels_last(Isa::ref, src.data(), channels, h, w, want.data(), dst_row, dst_stride);
        for (Isa isa : pyrt_test::fast_isas()) {
          std::vector<int8_t> got(h * dst_row, int8_t(kMarker));
          int8_channels_last(isa, src.data(), channels, h, w, got.data(), dst_row, dst_stride);
          CHECK(got == want, "channels_last ", channels, "x", h, "x", w, " stride ", dst_stride, " row ", dst_row,
                " at ", isa_name(isa));
        }
      }
}
