// pyruntime: instruction-set selection. The CPU is probed once; PYRT_ISA=ref|avx2|avx512|avx512vnni forces a
// level (an unsupported level in PYRT_ISA is an error at first use, not a silent fallback). Tests switch the
// level in-process with set_isa(). Levels are ordered: a kernel family without a dedicated kernel at a level
// runs the next lower one (the f32 kernels have none at avx512vnni; the int8 kernels do).
#pragma once

#include <vector>

namespace pyrt::kernels {

enum class Isa : int { ref = 0, avx2 = 1, avx512 = 2, avx512vnni = 3 };
constexpr int kIsaLevels = 4;

const char* isa_name(Isa isa);
bool isa_from_name(const char* name, Isa* out);
bool isa_supported(Isa isa);          // compiled in and supported by this CPU
std::vector<Isa> supported_isas();    // ascending; always contains Isa::ref
Isa best_isa();                       // highest supported level
Isa active_isa();                     // the level kernels run at now
void set_isa(Isa isa);                // throws pyrt::Error(PYRT_UNSUPPORTED) if !isa_supported(isa)

// CPU features no level implies (the files compiled for them are dispatched only where the CPU has them).
bool cpu_has_vbmi();       // AVX512_VBMI (vpermi2b): the int8 sparse kernels
bool cpu_has_vpopcntdq();  // AVX512_VPOPCNTDQ (vpopcntq): the XNOR kernel

}  // namespace pyrt::kernels
