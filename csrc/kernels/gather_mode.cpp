// pyruntime: the gather choice of kernels/isa.h. Each vector width is measured once: the same random
// gathers from a 16 KiB table (L1-resident, as x of a layer's columns mostly is) through vgatherdps and
// through scalar loads, best of a few rounds each; the faster wins, with ties going to scalar loads (the
// choice before this measurement existed).
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "kernels/isa.h"

namespace pyrt::kernels {

#if PYRT_HAVE_X86_KERNELS
// ns per element of vgatherdps (hw) and of scalar-load gathers, at 8 (avx2) or 16 (avx512) lanes.
void pyrt_gather_probe__avx2(double* hw_ns, double* scalar_ns);
void pyrt_gather_probe__avx512(double* hw_ns, double* scalar_ns);
#endif

namespace {

Gather initial_setting() {
  const char* env = std::getenv("PYRT_GATHER");
  if (env == nullptr || env[0] == '\0') return Gather::automatic;
  if (std::strcmp(env, "hw") == 0) return Gather::hw;
  if (std::strcmp(env, "scalar") == 0) return Gather::scalar;
  PYRT_CHECK(false, PYRT_INVALID_ARGUMENT, "PYRT_GATHER='", env, "' is not one of hw, scalar");
  return Gather::automatic;
}

std::atomic<int>& setting_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_setting())};
  return slot;
}

#if PYRT_HAVE_X86_KERNELS
bool measured_hw_wins(Isa isa) {
  double hw = 0.0, scalar = 0.0;
  if (isa == Isa::avx2) pyrt_gather_probe__avx2(&hw, &scalar);
  else pyrt_gather_probe__avx512(&hw, &scalar);
  return hw < 0.9 * scalar;  // a clear win only
}
#endif

}  // namespace

bool use_hw_gather(Isa isa) {
#if PYRT_HAVE_X86_KERNELS
  const Gather g = gather_setting();
  if (g != Gather::automatic) return g == Gather::hw;
  if (isa == Isa::avx2) {
    static const bool wins = isa_supported(Isa::avx2) && measured_hw_wins(Isa::avx2);
    return wins;
  }
  if (isa == Isa::avx512) {
    static const bool wins = isa_supported(Isa::avx512) && measured_hw_wins(Isa::avx512);
    return wins;
  }
#endif
  (void)isa;
  return false;
}

void set_gather(Gather g) { setting_slot().store(static_cast<int>(g), std::memory_order_relaxed); }

Gather gather_setting() { return static_cast<Gather>(setting_slot().load(std::memory_order_relaxed)); }

}  // namespace pyrt::kernels
