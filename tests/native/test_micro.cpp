// The bare-metal runtime (csrc/micro, pyruntime_micro.h) on the golden files: their recorded outputs one
// sample at a time, and the host runtime's at PYRT_ISA=ref to a few ulps; the files it does not run refused
// as unsupported, naming what; the arena it asks for exactly enough (one byte less refused, naming the bytes
// missing; any alignment); a file at any alignment; and the loader attacked: every truncation, and byte flips
// at every offset with the checksums recomputed, so that what the CRCs would catch reaches the field checks.
// A run after a load never writes outside the arena (guard bytes around it). Stream mode
// (PYRT_MICRO_STREAM_WEIGHTS) through the same checks: its own exact arena, the default mode's outputs bit for
// bit, and every damaged file refused at load as in the default mode.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "format/crc32.h"
#include "harness.h"
#include "kernels/isa.h"
#include "npz.h"
#include "pyruntime.h"
#include "pyruntime_micro.h"

namespace {

std::vector<uint8_t> golden(const char* stem) {
  return pyrt_test::read_file(pyrt_test::data_dir() + "/" + stem + ".pyrt");
}

uint32_t u32_at(const std::vector<uint8_t>& b, size_t at) {
  uint32_t v;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}

uint64_t u64_at(const std::vector<uint8_t>& b, size_t at) {
  uint64_t v;
  std::memcpy(&v, b.data() + at, 8);
  return v;
}

void put_u32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }

// Recomputes every section CRC, the table CRC and the header CRC (where the fields still allow it), so a
// damaged file reaches the checks behind the checksums.
void fix_crcs(std::vector<uint8_t>& b) {
  if (b.size() < 64) return;
  const uint64_t count = u32_at(b, 24);
  if (count == 0 || 64 + count * 32 > b.size()) return;
  for (uint64_t i = 0; i < count; ++i) {
    const size_t e = 64 + size_t(i) * 32;
    const uint64_t off = u64_at(b, e + 8), size = u64_at(b, e + 16);
    if (off <= b.size() && size <= b.size() - off) put_u32(b, e + 24, pyrt::format::crc32(b.data() + off, size));
  }
  put_u32(b, 28, pyrt::format::crc32(b.data() + 64, size_t(count) * 32));
  put_u32(b, 60, pyrt::format::crc32(b.data(), 60));
}

// An arena with guard bytes on both sides, at a chosen misalignment.
struct GuardedArena {
  static constexpr size_t kGuard = 64;
  std::vector<uint8_t> bytes;
  size_t shift, size;
  GuardedArena(size_t size_, size_t shift_) : bytes(size_ + 2 * kGuard + 8, 0xA5), shift(shift_), size(size_) {}
  uint8_t* data() {
    uint8_t* p = bytes.data() + kGuard;
    p += (8 - reinterpret_cast<uintptr_t>(p) % 8) % 8;  // a known alignment, then the shift
    return p + shift;
  }
  bool guards_intact() {
    const uint8_t* lo = data();
    for (const uint8_t* p = bytes.data(); p < lo; ++p)
      if (*p != 0xA5) return false;
    for (const uint8_t* p = lo + size; p < bytes.data() + bytes.size(); ++p)
      if (*p != 0xA5) return false;
    return true;
  }
};

// Loads `file` (with load flags) in a guarded arena of exactly the size asked for and runs `input`; returns the
// status of the load.
pyrt_status load_and_run(const uint8_t* file, size_t size, size_t shift, const float* input, std::vector<float>* out,
                         uint32_t flags = 0) {
  pyrt_micro_sizes s{};
  pyrt_status st = pyrt_micro_memory_bytes_ex(file, size, flags, &s);
  if (st != PYRT_OK) return st;
  if (s.arena_bytes > (size_t(1) << 26)) {  // a damaged dimension that still checks out: valid, but not run here
    out->clear();
    return PYRT_OK;
  }
  GuardedArena arena(s.arena_bytes, shift);
  pyrt_micro_model* m = nullptr;
  st = pyrt_micro_load_ex(file, size, flags, arena.data(), s.arena_bytes, &m);
  if (st != PYRT_OK) return st;
  std::vector<float> in(pyrt_micro_input_size(m), 0.5f);
  if (input) std::memcpy(in.data(), input, in.size() * 4);
  out->assign(pyrt_micro_output_size(m), 0.0f);
  CHECK(pyrt_micro_run(m, in.data(), out->data()) == PYRT_OK, pyrt_micro_last_error());
  CHECK(arena.guards_intact(), "the run wrote outside its arena");
  return PYRT_OK;
}

// The recorded outputs, sample by sample, and the host runtime at the reference ISA.
void check_golden(const char* stem) {
  const std::vector<uint8_t> bytes = golden(stem);
  const auto expected = pyrt_test::read_npz(pyrt_test::data_dir() + "/" + stem + "_expected.npz");
  const std::vector<float> input = expected.at("input").as_f32(), want = expected.at("output").as_f32();
  const size_t batch = expected.at("input").shape.at(0);
  pyrt_micro_sizes s{};
  CHECK(pyrt_micro_memory_bytes(bytes.data(), bytes.size(), &s) == PYRT_OK, pyrt_micro_last_error());
  CHECK(s.arena_bytes == s.model_bytes + s.weight_bytes + s.activation_bytes + 7, stem, " sizes do not add up");
  std::vector<uint8_t> arena(s.arena_bytes);
  pyrt_micro_model* m = nullptr;
  CHECK(pyrt_micro_load(bytes.data(), bytes.size(), arena.data(), arena.size(), &m) == PYRT_OK,
        pyrt_micro_last_error());
  const size_t n_in = pyrt_micro_input_size(m), n_out = pyrt_micro_output_size(m);
  CHECK(n_in * batch == input.size() && n_out * batch == want.size(), stem, ": sizes ", n_in, " -> ", n_out);

  pyrt_model* host = nullptr;
  CHECK(pyrt_model_load_buffer(bytes.data(), bytes.size(), &host) == PYRT_OK, pyrt_last_error());
  pyrt_session* session = nullptr;
  CHECK(pyrt_session_create(host, 1, &session) == PYRT_OK, pyrt_last_error());
  const pyrt::kernels::Isa previous = pyrt::kernels::active_isa();
  pyrt::kernels::set_isa(pyrt::kernels::Isa::ref);
  std::vector<float> got(n_out), ref(n_out);
  for (size_t b = 0; b < batch; ++b) {
    CHECK(pyrt_micro_run(m, input.data() + b * n_in, got.data()) == PYRT_OK, pyrt_micro_last_error());
    const void* in_ptr = input.data() + b * n_in;
    float* out_ptr = ref.data();
    CHECK(pyrt_session_run_multi(session, &in_ptr, 1, &out_ptr) == PYRT_OK, pyrt_last_error());
    for (size_t i = 0; i < n_out; ++i) {
      const double w = want[b * n_out + i], g = got[i];
      CHECK(std::fabs(g - w) <= 1e-6 + 1e-5 * std::fabs(w), stem, " sample ", b, " output ", i, " = ", g,
            ", recorded ", w);
      CHECK(std::fabs(g - ref[i]) <= 1e-7 + 1e-6 * std::fabs(double(ref[i])), stem, " sample ", b, " output ", i, " = ",
            g, ", host at ref ", ref[i]);
    }
  }
  pyrt::kernels::set_isa(previous);
  pyrt_session_free(session);
  pyrt_model_free(host);
}

void check_refused(const char* stem, const char* names) {
  const std::vector<uint8_t> bytes = golden(stem);
  pyrt_micro_sizes s{};
  CHECK(pyrt_micro_memory_bytes(bytes.data(), bytes.size(), &s) == PYRT_UNSUPPORTED, stem, ": ",
        pyrt_micro_last_error());
  CHECK(std::strstr(pyrt_micro_last_error(), names) != nullptr, stem, ": the message should name ", names, ": ",
        pyrt_micro_last_error());
  std::vector<uint8_t> arena(1 << 16);
  pyrt_micro_model* m = reinterpret_cast<pyrt_micro_model*>(&arena);
  CHECK(pyrt_micro_load(bytes.data(), bytes.size(), arena.data(), arena.size(), &m) == PYRT_UNSUPPORTED, stem);
  CHECK(m == nullptr, stem, ": a refused load leaves no model");
}

}  // namespace

PYRT_TEST(golden_v1_mlp_codebooks) { check_golden("golden_v1"); }
PYRT_TEST(golden_v2_convolutions) { check_golden("golden_v2"); }

// int8 (FORMAT.md 2.5): a dynamic int8 linear, a csr+int8 qlinear with an int8 output, an int8 qlinear with a
// float output and its clamp; the softmax after them is libm's expf on each side, hence a tolerance here (the
// int8 layers alone are compared bit for bit in tests/capi/test_micro.py)
PYRT_TEST(golden_v3_int8_layers) { check_golden("golden_v3"); }

#if !(defined(__GNUC__) && defined(__FP_FAST_FMAF))
extern "C" float micro_fmaf(float a, float b, float c);  // micro_int8.c, where the FPU has no fused multiply-add

// The int8 epilogue's fmaf, computed in double where there is no FMA instruction: rounded once, as std::fma,
// on random operands, on sums that land on float midpoints (where a double sum rounded again goes wrong), and
// in the subnormal range.
PYRT_TEST(fmaf_in_double_rounds_once) {
  std::mt19937 rng(5);
  auto bits = [](float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; };
  auto check = [&](float a, float b, float c) {
    const float want = std::fma(a, b, c), got = micro_fmaf(a, b, c);
    CHECK(bits(got) == bits(want) || (std::isnan(got) && std::isnan(want)), "fmaf(", a, ", ", b, ", ", c, ") = ",
          got, ", std::fma ", want);
  };
  std::uniform_int_distribution<int32_t> acc(-(1 << 30), 1 << 30);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::uniform_int_distribution<int> ex(-160, 40);
  for (int i = 0; i < 200000; ++i) {
    const float a = float(acc(rng)) * std::ldexp(1.0f, -(i % 31)), b = std::ldexp(unit(rng), ex(rng));
    check(a, b, std::ldexp(unit(rng), ex(rng)));
    check(a, b, -float(double(a) * b));  // c cancels most of a * b
    // c with an odd last bit plus or minus (half an ulp of c) * (1 - 2^-46): the exact sum lies just inside
    // the midpoint, the double sum on it, and the tie would go to the even neighbour, the wrong one
    const float c = std::ldexp(float((uint32_t(acc(rng)) & 0x7FFFFFu) | 0x800001u), ex(rng) - 24);
    const float h = std::ldexp(1.0f, std::ilogb(c) - 24), up = 1.0f + std::ldexp(1.0f, -23);
    const float down = 1.0f - std::ldexp(1.0f, -23);
    check(up, h * down, c);
    check(up, -h * down, c);
    check(-up, h * down, -c);
  }
  std::uniform_int_distribution<uint32_t> sub(0, (1u << 23) - 1);
  for (int i = 0; i < 100000; ++i) {  // subnormal results, on and off their midpoints (odd multiples of 2^-150)
    const float c = std::ldexp(float(sub(rng) | 1u), -149);
    const float a = std::ldexp(1.0f + std::ldexp(1.0f, -23), -75), b = std::ldexp(1.0f - std::ldexp(1.0f, -23), -75);
    check(a, b, c);
    check(-a, b, c);
    check(std::ldexp(float(acc(rng) % 4096), -80), std::ldexp(unit(rng), -70 - (i % 16)), c);
  }
  const float inf = INFINITY, nan = NAN;
  check(inf, 1.0f, 2.0f);
  check(0.0f, nan, 1.0f);
  check(3e38f, 3e38f, -inf);
  check(0.0f, inf, 1.0f);
  check(-0.0f, 1.0f, 0.0f);
  check(-0.0f, 1.0f, -0.0f);
  check(3.4e38f, 2.0f, -3.4e38f);
}
#endif

PYRT_TEST(refuses_transformer_files) {
  check_refused("golden_v5", "inputs");  // typed inputs (token ids): the first thing this path does not run
}

PYRT_TEST(arena_exactly_the_size_reported_at_any_alignment) {
  for (const char* stem : {"golden_v1", "golden_v2", "golden_v3"}) {
    const std::vector<uint8_t> bytes = golden(stem);
    std::vector<float> first;
    for (uint32_t flags : {0u, uint32_t(PYRT_MICRO_STREAM_WEIGHTS)}) {
      pyrt_micro_sizes s{};
      CHECK(pyrt_micro_memory_bytes_ex(bytes.data(), bytes.size(), flags, &s) == PYRT_OK, pyrt_micro_last_error());
      CHECK(s.model_bytes > 0 && s.activation_bytes > 0 && s.arena_bytes > s.activation_bytes, stem);
      CHECK(s.arena_bytes == s.model_bytes + s.weight_bytes + s.activation_bytes + 7, stem, " flags ", flags);
      for (size_t shift = 0; shift < 8; ++shift) {
        GuardedArena arena(s.arena_bytes, shift);
        pyrt_micro_model* m = nullptr;
        CHECK(pyrt_micro_load_ex(bytes.data(), bytes.size(), flags, arena.data(), s.arena_bytes, &m) == PYRT_OK, stem,
              " flags ", flags, " shift ", shift, ": ", pyrt_micro_last_error());
        std::vector<float> in(pyrt_micro_input_size(m)), out(pyrt_micro_output_size(m));
        for (size_t i = 0; i < in.size(); ++i) in[i] = float(i % 7) * 0.25f - 0.5f;
        for (int twice = 0; twice < 2; ++twice) {  // a second run starts the weight streams over
          CHECK(pyrt_micro_run(m, in.data(), out.data()) == PYRT_OK, pyrt_micro_last_error());
          CHECK(arena.guards_intact(), stem, " flags ", flags, " shift ", shift, ": wrote outside the arena");
          if (first.empty()) first = out;
          CHECK(std::memcmp(first.data(), out.data(), out.size() * 4) == 0, stem, " flags ", flags, " shift ", shift,
                ": other outputs");
        }

        GuardedArena small(s.arena_bytes - 1, shift);
        m = reinterpret_cast<pyrt_micro_model*>(&small);
        CHECK(pyrt_micro_load_ex(bytes.data(), bytes.size(), flags, small.data(), s.arena_bytes - 1, &m) ==
                  PYRT_INVALID_ARGUMENT,
              stem, " flags ", flags, " shift ", shift, ": one byte less must be refused");
        CHECK(m == nullptr && std::strstr(pyrt_micro_last_error(), "(1 bytes missing") != nullptr,
              pyrt_micro_last_error());
        CHECK(small.guards_intact(), stem, ": a refused load wrote outside the arena");
      }
    }
  }
}

PYRT_TEST(file_at_any_alignment) {
  const std::vector<uint8_t> bytes = golden("golden_v2");
  std::vector<float> want, got;
  CHECK(load_and_run(bytes.data(), bytes.size(), 0, nullptr, &want) == PYRT_OK, pyrt_micro_last_error());
  std::vector<uint8_t> copy(bytes.size() + 8);
  for (size_t shift = 1; shift < 8; ++shift) {
    std::memcpy(copy.data() + shift, bytes.data(), bytes.size());
    CHECK(load_and_run(copy.data() + shift, bytes.size(), 3, nullptr, &got) == PYRT_OK, pyrt_micro_last_error());
    CHECK(std::memcmp(want.data(), got.data(), want.size() * 4) == 0, "file shifted by ", shift, ": other outputs");
  }
}

PYRT_TEST(bad_arguments) {
  const std::vector<uint8_t> bytes = golden("golden_v1");
  pyrt_micro_sizes s{};
  pyrt_micro_model* m = nullptr;
  CHECK(pyrt_micro_memory_bytes(nullptr, 10, &s) == PYRT_INVALID_ARGUMENT, "null file");
  CHECK(pyrt_micro_memory_bytes(bytes.data(), bytes.size(), nullptr) == PYRT_INVALID_ARGUMENT, "null out");
  CHECK(pyrt_micro_load(bytes.data(), bytes.size(), nullptr, 1000, &m) == PYRT_INVALID_ARGUMENT, "null arena");
  CHECK(pyrt_micro_run(nullptr, nullptr, nullptr) == PYRT_INVALID_ARGUMENT, "null model");
  CHECK(pyrt_micro_input_size(nullptr) == 0 && pyrt_micro_output_size(nullptr) == 0, "null model sizes");
  std::vector<uint8_t> bad = bytes;
  bad[0] ^= 1;
  CHECK(pyrt_micro_memory_bytes(bad.data(), bad.size(), &s) == PYRT_BAD_FORMAT, "magic");
  CHECK(std::strstr(pyrt_micro_last_error(), "magic") != nullptr, pyrt_micro_last_error());
  bad = bytes;
  bad[bad.size() - 1] ^= 0x10;
  CHECK(pyrt_micro_memory_bytes(bad.data(), bad.size(), &s) == PYRT_BAD_FORMAT, "payload");
  CHECK(std::strstr(pyrt_micro_last_error(), "checksum mismatch") != nullptr, pyrt_micro_last_error());
  bad = bytes;
  put_u32(bad, 8, 6);
  fix_crcs(bad);
  CHECK(pyrt_micro_memory_bytes(bad.data(), bad.size(), &s) == PYRT_BAD_FORMAT, "version 6");
  CHECK(std::strstr(pyrt_micro_last_error(), "version 6 is newer") != nullptr, pyrt_micro_last_error());
}

PYRT_TEST(every_truncation_refused) {
  for (const char* stem : {"golden_v1", "golden_v2", "golden_v3"}) {
    const std::vector<uint8_t> bytes = golden(stem);
    pyrt_micro_sizes s{};
    for (size_t n = 0; n < bytes.size(); ++n) {
      std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + long(n));  // its own allocation: overreads show in ASan
      CHECK(pyrt_micro_memory_bytes(cut.data(), n, &s) == PYRT_BAD_FORMAT, stem, " cut to ", n, " bytes: ",
            pyrt_micro_last_error());
      // with the header's size and the checksums patched to the cut file, the parse goes deeper
      if (n >= 64) {
        std::vector<uint8_t> patched = cut;
        const uint64_t size = n;
        std::memcpy(patched.data() + 16, &size, 8);
        fix_crcs(patched);
        const pyrt_status st = pyrt_micro_memory_bytes(patched.data(), n, &s);
        CHECK(st == PYRT_BAD_FORMAT, stem, " cut to ", n, " bytes, size patched: status ", int(st), " ",
              pyrt_micro_last_error());
      }
    }
  }
}

PYRT_TEST(byte_flips_refused_or_harmless) {
  for (const char* stem : {"golden_v1", "golden_v2", "golden_v3"}) {
    const std::vector<uint8_t> bytes = golden(stem);
    std::vector<float> want, got;
    CHECK(load_and_run(bytes.data(), bytes.size(), 0, nullptr, &want) == PYRT_OK, pyrt_micro_last_error());
    size_t refused_stored = 0, refused_fixed = 0, tries = 0;
    for (size_t at = 0; at < bytes.size(); ++at) {
      for (uint8_t flip : {uint8_t(0x01), uint8_t(0x80), uint8_t(0xFF)}) {
        std::vector<uint8_t> bad = bytes;
        bad[at] ^= flip;
        // as stored: a checksum, or padding no one reads
        pyrt_status st = load_and_run(bad.data(), bad.size(), at % 8, nullptr, &got);
        CHECK(st == PYRT_OK || st == PYRT_BAD_FORMAT, stem, " flip at ", at, ": status ", int(st));
        if (st == PYRT_OK) CHECK(got == want, stem, " flip at ", at, " loaded but changed the outputs");
        refused_stored += st != PYRT_OK;
        ++tries;
        // with the checksums recomputed: the field checks must hold, and whatever loads must run in its arena
        fix_crcs(bad);
        st = load_and_run(bad.data(), bad.size(), at % 8, nullptr, &got);
        CHECK(st == PYRT_OK || st == PYRT_BAD_FORMAT || st == PYRT_UNSUPPORTED, stem, " flip at ", at, ": status ",
              int(st), " ", pyrt_micro_last_error());
        refused_fixed += st != PYRT_OK;
        // stream mode: refused at load where the default mode refuses, else the same outputs, bit for bit
        {
          std::vector<float> streamed;
          const pyrt_status st_stream =
              load_and_run(bad.data(), bad.size(), at % 8, nullptr, &streamed, PYRT_MICRO_STREAM_WEIGHTS);
          CHECK(st_stream == st, stem, " flip at ", at, ": stream mode says ", int(st_stream), ", default ", int(st));
          if (st == PYRT_OK && !got.empty() && !streamed.empty())  // both run (not an arena over 64 MB)
            CHECK(streamed.size() == got.size() &&
                      std::memcmp(streamed.data(), got.data(), got.size() * 4) == 0,
                  stem, " flip at ", at, ": stream mode gave other outputs");
        }
        // the same verdict as the host reader (csrc/format): what one calls damaged, so does the other
        pyrt_model* host = nullptr;
        const pyrt_status host_st = pyrt_model_load_buffer(bad.data(), bad.size(), &host);
        pyrt_model_free(host);
        if (st == PYRT_BAD_FORMAT || host_st == PYRT_BAD_FORMAT)
          CHECK(st == host_st, stem, " flip ", int(flip), " at ", at, ": micro says ", int(st), " (",
                pyrt_micro_last_error(), "), the host reader ", int(host_st), " (", pyrt_last_error(), ")");
      }
    }
    // stored: everything but the padding between sections is under a checksum
    CHECK(refused_stored * 10 > tries * 9, stem, ": only ", refused_stored, " of ", tries, " damaged files refused");
    // checksums recomputed: weight values may be any f32, the structure around them may not
    CHECK(refused_fixed * 20 > tries, stem, ": only ", refused_fixed, " of ", tries, " damaged files refused");
  }
}
