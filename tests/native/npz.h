// pyruntime native tests: a reader of the arrays numpy.savez writes (an uncompressed zip of .npy files), so
// the native tests compare with the same expected outputs as the Python suite (tests/data/*_expected.npz).
// Only what those files hold: stored (not deflated) entries, little-endian f4 / i4 / i1 / f8, C order.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pyrt_test {

struct NpyArray {
  std::string descr;            // "<f4", "<i4", "|i1", "<f8"
  std::vector<size_t> shape;
  std::vector<uint8_t> bytes;   // the raw elements, C order
  size_t numel() const;
  std::vector<float> as_f32() const;  // f4 as is, f8 / i4 / i1 converted
};

// The arrays of an .npz by name (without ".npy"); throws std::runtime_error naming the file and what is
// wrong (a deflated entry, a big-endian or Fortran-order array, a truncated file).
std::map<std::string, NpyArray> read_npz(const std::string& path);

std::vector<uint8_t> read_file(const std::string& path);

}  // namespace pyrt_test
