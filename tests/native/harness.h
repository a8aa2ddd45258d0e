// pyruntime native tests: a small test harness with no dependency, so the same program runs on the build
// machine and, cross-built, under qemu-aarch64 (CTest; tests/native/CMakeLists.txt).
//
//   PYRT_TEST(name) { ... CHECK(cond, "what", value, ...); ... }
//
// registers a test as `<source file stem>/name`; a failed CHECK ends the test with the message (file, line, condition and the streamed
// parts). main.cpp runs every test whose name contains the first argument (all without one) and exits 1
// if any failed. Tests that loop over ISA levels use supported_isas() and name the level in messages.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/isa.h"

namespace pyrt_test {

using TestFn = void (*)();
// Registers `file/name` (file: the source file's stem), which is what the command-line filter matches.
int register_test(const char* file, const char* name, TestFn fn);

struct Failure {
  std::string message;
};

template <class... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream s;
  s.precision(9);
  (s << ... << parts);
  return s.str();
}

[[noreturn]] void fail(const char* file, int line, const std::string& message);

// Levels a test compares with the reference: every supported one but ref.
std::vector<pyrt::kernels::Isa> fast_isas();

// The folder holding the golden files (tests/data): PYRT_TEST_DATA, else the path compiled in.
std::string data_dir();

// The C example's test commands (c_example_check.cpp), run by main for argv[1] = --example-...
int example_command(int argc, char** argv);

// Deterministic random numbers (one engine per test, seeded by the test).
struct Rng {
  std::mt19937_64 engine;
  explicit Rng(uint64_t seed) : engine(seed) {}
  float uniform(float lo = -1.f, float hi = 1.f) { return std::uniform_real_distribution<float>(lo, hi)(engine); }
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(engine() % n); }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(engine) < p; }
};

// |got - want| <= rtol * scale elementwise (scale: the magnitude of the sum, sum |w| |x| + |bias|, so a
// correct sum that cancels does not look wrong). Returns the index of the first element out of bounds, or
// -1. Fast kernels reassociate f32 sums; the references add in order.
long first_outside(const float* got, const float* want, const double* scale, size_t n, double rtol);

}  // namespace pyrt_test

#define PYRT_TEST(name)                                                              \
  static void name();                                                                \
  [[maybe_unused]] static const int name##_registered = ::pyrt_test::register_test(__FILE__, #name, &name); \
  static void name()

#define CHECK(cond, ...)                                                                                     \
  do {                                                                                                       \
    if (!(cond)) ::pyrt_test::fail(__FILE__, __LINE__, ::pyrt_test::cat("CHECK(" #cond ") ", __VA_ARGS__)); \
  } while (0)
