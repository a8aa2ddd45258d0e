#include "kernels/isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "common/error.h"

#if PYRT_HAVE_ARM_KERNELS && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

namespace pyrt::kernels {
namespace {

bool cpu_has_avx2() {
#if PYRT_HAVE_X86_KERNELS && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if PYRT_HAVE_X86_KERNELS && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

bool cpu_has_avx512vnni() {
#if PYRT_HAVE_X86_KERNELS && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return cpu_has_avx512() && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

// aarch64: Advanced SIMD is part of the base architecture, so the neon level needs only a build with the
// ARM kernels; the dot-product extension (sdot / udot, Armv8.2 optional, Armv8.4 mandatory) is read from
// the kernel's hardware capabilities. Other systems (no getauxval) get neon only.
bool cpu_has_neon() {
#if PYRT_HAVE_ARM_KERNELS
#if defined(__linux__)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
#else
  return true;
#endif
#else
  return false;
#endif
}

bool cpu_has_neon_dot() {
#if PYRT_HAVE_ARM_KERNELS && defined(__linux__)
  return cpu_has_neon() && (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
  return false;
#endif
}

constexpr Isa kAllIsas[] = {Isa::ref, Isa::avx2, Isa::avx512, Isa::avx512vnni, Isa::neon, Isa::neon_dot};

}  // namespace

// Features no level implies, which kernels check before dispatching the files compiled for them.
bool cpu_has_vbmi() {
#if PYRT_HAVE_X86_KERNELS && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vbmi");
#else
  return false;
#endif
}

bool cpu_has_vpopcntdq() {
#if PYRT_HAVE_X86_KERNELS && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vpopcntdq");
#else
  return false;
#endif
}

namespace {

Isa initial_isa() {
  const char* env = std::getenv("PYRT_ISA");
  if (env != nullptr && env[0] != '\0') {
    Isa isa;
    PYRT_CHECK(isa_from_name(env, &isa), PYRT_INVALID_ARGUMENT, "PYRT_ISA='", env,
               "' is not one of ref, avx2, avx512, avx512vnni, neon, neon_dot");
    PYRT_CHECK(isa_supported(isa), PYRT_UNSUPPORTED, "PYRT_ISA=", env, " is not supported by this CPU or build");
    return isa;
  }
  return best_isa();
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_isa())};
  return slot;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::ref: return "ref";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::avx512vnni: return "avx512vnni";
    case Isa::neon: return "neon";
    case Isa::neon_dot: return "neon_dot";
  }
  return "unknown";
}

bool isa_from_name(const char* name, Isa* out) {
  for (Isa isa : kAllIsas) {
    if (std::strcmp(name, isa_name(isa)) == 0) {
      *out = isa;
      return true;
    }
  }
  return false;
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::ref: return true;
    case Isa::avx2: return cpu_has_avx2();
    case Isa::avx512: return cpu_has_avx512();
    case Isa::avx512vnni: return cpu_has_avx512vnni();
    case Isa::neon: return cpu_has_neon();
    case Isa::neon_dot: return cpu_has_neon_dot();
  }
  return false;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : kAllIsas)
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

std::vector<Isa> architecture_isas() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
  return {Isa::ref, Isa::avx2, Isa::avx512, Isa::avx512vnni};
#elif defined(__aarch64__) || defined(_M_ARM64)
  return {Isa::ref, Isa::neon, Isa::neon_dot};
#else
  return {Isa::ref};
#endif
}

Isa best_isa() { return supported_isas().back(); }

Isa active_isa() { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

void set_isa(Isa isa) {
  PYRT_CHECK(isa_supported(isa), PYRT_UNSUPPORTED, "ISA ", isa_name(isa), " is not supported by this CPU or build");
  active_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace pyrt::kernels
