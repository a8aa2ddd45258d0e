// pyruntime native tests: the two halves of the C example's test (run_c_example.cmake). The example
// (examples/c/run_model.c) runs one sample; these commands of the test program give it the first sample of
// golden_v1's recorded inputs and check what it printed against the recorded output.
//
//   pyrt_native_tests --example-input <file.f32>      writes the sample (raw little-endian f32)
//   pyrt_native_tests --example-check <printed.txt>   exits 0 when the printed outputs match (1e-5 / 1e-6)
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "harness.h"
#include "npz.h"

namespace pyrt_test {

int example_command(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s --example-input FILE | --example-check FILE\n", argv[0]);
    return 2;
  }
  const auto expected = read_npz(data_dir() + "/golden_v1_expected.npz");
  const std::vector<float> input = expected.at("input").as_f32(), output = expected.at("output").as_f32();
  const size_t in_size = input.size() / expected.at("input").shape.at(0);
  const size_t out_size = output.size() / expected.at("output").shape.at(0);
  if (std::strcmp(argv[1], "--example-input") == 0) {
    std::FILE* f = std::fopen(argv[2], "wb");
    if (f == nullptr || std::fwrite(input.data(), sizeof(float), in_size, f) != in_size) return 1;
    return std::fclose(f) == 0 ? 0 : 1;
  }
  std::ifstream printed(argv[2]);
  std::string line;
  while (std::getline(printed, line) && line != "output:") {
  }
  size_t i = 0;
  int bad = 0;
  for (; i < out_size && std::getline(printed, line); ++i) {
    const double got = std::strtod(line.c_str(), nullptr), want = output[i];
    if (!(std::fabs(got - want) <= 1e-6 + 1e-5 * std::fabs(want))) {
      std::printf("output[%zu]: the example printed %s, expected %.9g\n", i, line.c_str(), want);
      ++bad;
    }
  }
  if (i != out_size) {
    std::printf("the example printed %zu outputs after 'output:', expected %zu\n", i, out_size);
    return 1;
  }
  std::printf("the C example printed golden_v1's %zu outputs of sample 0: %s\n", out_size, bad ? "MISMATCH" : "ok");
  return bad ? 1 : 0;
}

}  // namespace pyrt_test
