// pyruntime native tests: runs the registered tests (harness.h).
//
//   pyrt_native_tests [substring] [--exclude substring]...
//                                     runs the tests whose `file/name` contains substring (all without one)
//                                     and none of the excluded ones
//   pyrt_native_tests --list          lists the tests
//   pyrt_native_tests --example-...   the C example's test (c_example_check.cpp)
//
// Prints one line per test and a summary; exits 1 when a test failed, 0 otherwise. The ISA levels this
// CPU and build support are printed first (PYRT_ISA forces the level the models run at, as in Python).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <utility>

#include "common/error.h"
#include "harness.h"

namespace pyrt_test {
namespace {

std::vector<std::pair<std::string, TestFn>>& registry() {
  static std::vector<std::pair<std::string, TestFn>> tests;
  return tests;
}

}  // namespace

int register_test(const char* file, const char* name, TestFn fn) {
  std::string stem = file;
  const size_t slash = stem.find_last_of("/\\");
  if (slash != std::string::npos) stem = stem.substr(slash + 1);
  const size_t dot = stem.rfind('.');
  if (dot != std::string::npos) stem = stem.substr(0, dot);
  registry().emplace_back(stem + "/" + name, fn);
  return 0;
}

void fail(const char* file, int line, const std::string& message) {
  const char* base = std::strrchr(file, '/');
  throw Failure{cat(base ? base + 1 : file, ":", line, ": ", message)};
}

std::vector<pyrt::kernels::Isa> fast_isas() {
  std::vector<pyrt::kernels::Isa> out;
  for (auto isa : pyrt::kernels::supported_isas())
    if (isa != pyrt::kernels::Isa::ref) out.push_back(isa);
  return out;
}

std::string data_dir() {
  const char* env = std::getenv("PYRT_TEST_DATA");
  if (env != nullptr && env[0] != '\0') return env;
  return PYRT_TEST_DATA_DIR;
}

long first_outside(const float* got, const float* want, const double* scale, size_t n, double rtol) {
  for (size_t i = 0; i < n; ++i) {
    const double err = std::fabs(double(got[i]) - double(want[i]));
    if (!(err <= rtol * scale[i])) return static_cast<long>(i);
  }
  return -1;
}

}  // namespace pyrt_test

int main(int argc, char** argv) {
  using namespace pyrt_test;
  if (argc > 1 && std::strncmp(argv[1], "--example-", 10) == 0) return example_command(argc, argv);
  if (argc > 1 && std::strcmp(argv[1], "--list") == 0) {
    for (auto& t : registry()) std::printf("%s\n", t.first.c_str());
    return 0;
  }
  const char* filter = "";
  std::vector<std::string> excluded;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--exclude") == 0 && i + 1 < argc) excluded.emplace_back(argv[++i]);
    else filter = argv[i];
  }
  std::printf("ISA levels:");
  for (auto isa : pyrt::kernels::supported_isas()) std::printf(" %s", pyrt::kernels::isa_name(isa));
  std::printf(" (active: %s)\n", pyrt::kernels::isa_name(pyrt::kernels::active_isa()));
  int ran = 0, failed = 0;
  for (auto& [name, fn] : registry()) {
    if (name.find(filter) == std::string::npos) continue;
    bool skip = false;
    for (const std::string& x : excluded) skip = skip || name.find(x) != std::string::npos;
    if (skip) continue;
    ++ran;
    try {
      fn();
      std::printf("ok    %s\n", name.c_str());
    } catch (const Failure& f) {
      ++failed;
      std::printf("FAIL  %s\n      %s\n", name.c_str(), f.message.c_str());
    } catch (const std::exception& e) {
      ++failed;
      std::printf("FAIL  %s\n      exception: %s\n", name.c_str(), e.what());
    }
    std::fflush(stdout);
  }
  std::printf("%d tests, %d failed\n", ran, failed);
  if (ran == 0) {
    std::printf("no test matches '%s'\n", filter);
    return 1;
  }
  return failed ? 1 : 0;
}
