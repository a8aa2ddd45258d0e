// pyruntime: instruction-set selection. The CPU is probed once; PYRT_ISA=ref|avx2|avx512|avx512vnni|amx (x86-64)
// or ref|neon|neon_dot (aarch64) forces a level (an unsupported level in PYRT_ISA is an error at first use,
// not a silent fallback). Tests switch the level in-process with set_isa().
//
// One list of levels for every architecture. Each architecture's levels form a chain above ref:
//     x86-64:  ref < avx2 < avx512 < avx512vnni < amx        aarch64:  ref < neon < neon_dot
// and a kernel family without a dedicated kernel at a level runs the next lower one of the same chain
// (isa_fallback; the f32 kernels have none at avx512vnni, amx or neon_dot, the int8 kernels do; amx adds
// only the int8 GEMM on tiles, kernels/x86/int8_gemm_amx.cpp). A build holds
// the kernels of one architecture only (PYRT_HAVE_X86_KERNELS or PYRT_HAVE_ARM_KERNELS), so the levels of
// the other are never supported there; that is why a dispatcher may test `isa >= Isa::avx2` inside its
// x86 block and `isa >= Isa::neon` inside its ARM block.
#pragma once

#include <vector>

namespace pyrt::kernels {

enum class Isa : int { ref = 0, avx2 = 1, avx512 = 2, avx512vnni = 3, amx = 4, neon = 5, neon_dot = 6 };
constexpr int kIsaLevels = 7;

// The next lower level of isa's chain (ref for avx2 and neon; ref for ref).
constexpr Isa isa_fallback(Isa isa) {
  return isa == Isa::neon || isa == Isa::avx2 || isa == Isa::ref ? Isa::ref : static_cast<Isa>(static_cast<int>(isa) - 1);
}

const char* isa_name(Isa isa);
bool isa_from_name(const char* name, Isa* out);
bool isa_supported(Isa isa);          // compiled in and supported by this CPU
std::vector<Isa> supported_isas();    // ascending; always contains Isa::ref
std::vector<Isa> architecture_isas(); // the chain of this build's architecture, supported or not (ref first)
Isa best_isa();                       // highest supported level
Isa active_isa();                     // the level kernels run at now
void set_isa(Isa isa);                // throws pyrt::Error(PYRT_UNSUPPORTED) if !isa_supported(isa)

// How the sparse and codebook kernels read x[c[0]], ..., x[c[n-1]] into a vector: vgatherdps, or scalar
// loads assembled in registers. Which is faster depends on the core (scalar loads on AMD Zen 2-4 and on
// Intel cores with the GDS microcode mitigation; vgatherdps on Sapphire Rapids), so it is measured once per
// vector width at first use (kernels/gather_mode.cpp, under a millisecond); PYRT_GATHER=hw|scalar forces
// one, and so does set_gather (tests). Both give the same vectors, so results never depend on the choice.
enum class Gather : int { automatic = 0, hw = 1, scalar = 2 };
bool use_hw_gather(Isa isa);  // isa: avx2 (ymm, 8 lanes) or avx512 (zmm, 16 lanes); false elsewhere
void set_gather(Gather g);
Gather gather_setting();

// CPU features no level implies (the files compiled for them are dispatched only where the CPU has them).
bool cpu_has_vbmi();       // AVX512_VBMI (vpermi2b): the int8 sparse kernels
bool cpu_has_vbmi2();      // AVX512_VBMI2 (vpexpandb): the int8 sparse kernels on masked steps
bool cpu_has_vpopcntdq();  // AVX512_VPOPCNTDQ (vpopcntq): the XNOR kernel

}  // namespace pyrt::kernels
