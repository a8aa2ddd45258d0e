#include "kernels/isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "common/error.h"

#if PYRT_HAVE_X86_KERNELS && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
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

// AMX-TILE and AMX-INT8 (CPUID leaf 7: EDX bits 24 and 25), the tile state enabled by the OS (XCR0 bits 17
// and 18), and Linux's permission for this process to use the 8 KiB of tile data (arch_prctl
// ARCH_REQ_XCOMP_PERM, kernel 5.16+; it is asked for once, here, and holds for every thread). Without
// any of them the amx level is unsupported. Other systems: no amx.
bool cpu_has_amx() {
#if PYRT_HAVE_X86_KERNELS && PYRT_HAVE_AMX && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
  static const bool ok = [] {
    if (!cpu_has_avx512vnni()) return false;
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    if ((d & (1u << 24)) == 0 || (d & (1u << 25)) == 0) return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || (c & (1u << 27)) == 0) return false;  // OSXSAVE: xgetbv works
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
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

constexpr Isa kAllIsas[] = {Isa::ref, Isa::avx2, Isa::avx512, Isa::avx512vnni, Isa::amx, Isa::neon, Isa::neon_dot};

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

bool cpu_has_vbmi2() {
#if PYRT_HAVE_X86_KERNELS && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vbmi2");
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
               "' is not one of ref, avx2, avx512, avx512vnni, amx, neon, neon_dot");
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
    case Isa::amx: return "amx";
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
    case Isa::amx: return cpu_has_amx();
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
  return {Isa::ref, Isa::avx2, Isa::avx512, Isa::avx512vnni, Isa::amx};
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
