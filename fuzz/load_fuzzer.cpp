// pyruntime: libFuzzer harness over the model loader, through the public C API only (pyruntime.h).
//
// Every input is loaded (from a private heap copy, freed before the model is used) twice when it looks
// like a .pyrt file:
//   1. as given: exercises the header / table / checksum checks;
//   2. with its file_size and every CRC-32 recomputed (section payloads, section table, header), as a
//      writer would have stored them: mutations inside payloads then reach the section, graph, tensor
//      and symbol-stream decoders instead of stopping at the first checksum mismatch.
// A load that fails must give a documented status for file content and a non-empty pyrt_last_error();
// a load that succeeds must give consistent shapes and run: a session for batch 2 (owned arena) runs
// batch 1 and 2, a session over an exact-size caller arena runs batch 1 and gives bit-identical output.
// Anything else calls abort(), which libFuzzer reports as a crash with the input that caused it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "pyruntime.h"

// ---- policy switch ----------------------------------------------------------------------------------
// Every problem with a file's content is PYRT_BAD_FORMAT (pyruntime.h); PYRT_UNSUPPORTED is for requests
// a build cannot serve, never for file content, so a load that returns it is a finding. Define this to 1
// to tolerate it (when bisecting an old build, say).
#ifndef PYRT_FUZZ_ALLOW_UNSUPPORTED
#define PYRT_FUZZ_ALLOW_UNSUPPORTED 0
#endif

namespace {

// Budgets for running a loaded model (models can declare inputs of up to 2^31 floats per sample).
constexpr size_t kMaxBatch = 2;
constexpr size_t kMaxFloats = size_t(1) << 22;       // input or output floats for the whole batch
constexpr size_t kMaxArenaBytes = size_t(64) << 20;  // activation arena for the whole batch
// Operations per sample (pyrt_model_work) of a model the harness runs: a few hundred ms under ASan for
// the four samples it runs. A valid conv graph of a few hundred bytes can ask for 10^10 (a 2 x 7683 pool
// window over a wide input, say): it loads, and running it is correct but slow, not a finding.
constexpr uint64_t kMaxWork = uint64_t(1) << 24;

[[noreturn]] void finding(const char* what, pyrt_status st) {
  std::fprintf(stderr, "pyrt_load_fuzzer: %s (status %d %s, last error: \"%s\")\n", what, int(st),
               pyrt_status_name(st), pyrt_last_error());
  std::abort();
}

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "pyrt_load_fuzzer: %s\n", what);
  std::abort();
}

bool load_status_allowed(pyrt_status st) {
  switch (st) {
    case PYRT_BAD_FORMAT:     // truncated, corrupted or inconsistent: the expected answer
    case PYRT_OUT_OF_MEMORY:  // an allocation failed
      return true;
    case PYRT_INVALID_ARGUMENT:  // for bad arguments, and data/out are never null here: a file that passed
      return false;              // the reader's checks but not the runtime's is a bug (a model that loads runs)
    case PYRT_UNSUPPORTED:
      return PYRT_FUZZ_ALLOW_UNSUPPORTED != 0;
    default:  // PYRT_OK is handled by the caller; IO_ERROR has no business in a buffer load; INTERNAL is a bug
      return false;
  }
}

// ---- CRC-32 (zlib's; the format's checksum) and the checksum repair --------------------------------------

uint32_t crc32(const uint8_t* p, size_t n) {
  static uint32_t table[256];
  static bool ready = false;
  if (!ready) {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
      table[i] = c;
    }
    ready = true;
  }
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return ~c;
}

template <typename T>
T get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
void put(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

// Rewrites file_size and the checksums of a buffer that starts with the magic: each in-bounds section's
// payload CRC, then the table CRC (if the whole table is in the buffer), then the header CRC.
// Returns false if the buffer is not a candidate (too short or wrong magic).
bool repair_checksums(std::vector<uint8_t>& b) {
  static const uint8_t kMagic[8] = {0x50, 0x59, 0x52, 0x54, 0x0D, 0x0A, 0x1A, 0x0A};
  const size_t size = b.size();
  if (size < 64 || std::memcmp(b.data(), kMagic, 8) != 0) return false;
  uint8_t* d = b.data();
  put<uint64_t>(d + 16, size);
  const uint64_t count = get<uint32_t>(d + 24);
  const uint64_t in_buffer = (size - 64) / 32;
  const uint64_t n = count < in_buffer ? count : in_buffer;
  for (uint64_t i = 0; i < n; ++i) {
    uint8_t* e = d + 64 + 32 * i;
    const uint64_t off = get<uint64_t>(e + 8), len = get<uint64_t>(e + 16);
    if (off <= size && len <= size - off && off >= 64 + 32 * n) put<uint32_t>(e + 24, crc32(d + off, len));
  }
  if (n == count) put<uint32_t>(d + 28, crc32(d + 64, 32 * n));
  put<uint32_t>(d + 60, crc32(d, 60));
  return true;
}

// ---- running a loaded model ---------------------------------------------------------------------------

size_t checked_shape(const pyrt_model* m, bool input) {
  size_t rank = 99, dims[4] = {1, 1, 1, 1};
  const pyrt_status st = input ? pyrt_model_input_shape(m, &rank, dims) : pyrt_model_output_shape(m, &rank, dims);
  if (st != PYRT_OK) finding(input ? "pyrt_model_input_shape failed" : "pyrt_model_output_shape failed", st);
  if (rank < 1 || rank > 4) finding("shape rank not in 1..4");
  size_t numel = 1;
  for (size_t i = 0; i < 4; ++i) {
    if (i < rank && dims[i] == 0) finding("shape has a zero dimension");
    if (i >= rank && dims[i] != 0) finding("shape dims past the rank are not 0");
    if (i < rank) numel *= dims[i];  // <= 2^31 per model limits: no overflow in size_t
  }
  const size_t reported = input ? pyrt_model_input_size(m) : pyrt_model_output_size(m);
  if (reported != numel) finding("pyrt_model_{input,output}_size disagrees with the shape");
  return numel;
}

// Deterministic inputs derived from the fuzz data: moderate values in [-4, 4), with the odd exact zero.
void fill_input(std::vector<float>& x, const uint8_t* data, size_t size) {
  for (size_t i = 0; i < x.size(); ++i) {
    const uint8_t byte = size ? data[(i * 7 + 3) % size] : 0;
    x[i] = (static_cast<int>(byte) - 128) / 32.0f;
  }
}

// A model of several inputs or outputs, or of token ids (format version 5): typed buffers through
// pyrt_session_run_multi. Ids are small (0..2); an id outside an embedding's table is refused with
// PYRT_INVALID_ARGUMENT, never a crash.
void run_multi(const pyrt_model* m, const uint8_t* data, size_t size) {
  const size_t n_in = pyrt_model_num_inputs(m), n_out = pyrt_model_num_outputs(m);
  if (n_in < 1 || n_in > 16 || n_out < 1 || n_out > 16) finding("input or output count not in 1..16");
  std::vector<std::vector<float>> floats(n_in), outs(n_out);
  std::vector<std::vector<int32_t>> ids(n_in);
  std::vector<const void*> in(n_in);
  std::vector<float*> out(n_out);
  bool has_ids = false;
  for (size_t k = 0; k < n_in; ++k) {
    pyrt_dtype t = PYRT_F32;
    size_t rank = 0, dims[4] = {0, 0, 0, 0};
    if (pyrt_model_input_info(m, k, &t, &rank, dims) != PYRT_OK) finding("pyrt_model_input_info failed");
    size_t numel = 1;
    for (size_t i = 0; i < rank; ++i) numel *= dims[i];
    if (numel > kMaxFloats / kMaxBatch) return;
    if (t == PYRT_I32) {
      has_ids = true;
      ids[k].resize(numel * kMaxBatch);
      for (size_t i = 0; i < ids[k].size(); ++i) ids[k][i] = size ? data[(i * 5 + k) % size] % 3 : 0;
      in[k] = ids[k].data();
    } else {
      floats[k].resize(numel * kMaxBatch);
      fill_input(floats[k], data, size);
      in[k] = floats[k].data();
    }
  }
  if (pyrt_model_input_info(m, n_in, nullptr, nullptr, nullptr) != PYRT_INVALID_ARGUMENT)
    finding("pyrt_model_input_info accepted an index past the inputs");
  for (size_t k = 0; k < n_out; ++k) {
    size_t rank = 0, dims[4] = {0, 0, 0, 0};
    if (pyrt_model_output_info(m, k, &rank, dims) != PYRT_OK) finding("pyrt_model_output_info failed");
    size_t numel = 1;
    for (size_t i = 0; i < rank; ++i) numel *= dims[i];
    if (numel > kMaxFloats / kMaxBatch) return;
    outs[k].resize(numel * kMaxBatch);
    out[k] = outs[k].data();
  }
  if (pyrt_session_arena_bytes(m, kMaxBatch) > kMaxArenaBytes || pyrt_model_work(m) > kMaxWork) return;
  pyrt_session* s = nullptr;
  pyrt_status st = pyrt_session_create(m, kMaxBatch, &s);
  if (st == PYRT_OUT_OF_MEMORY) return;
  if (st != PYRT_OK || s == nullptr) finding("pyrt_session_create failed for batch 2", st);
  for (size_t batch : {size_t(1), kMaxBatch}) {
    st = pyrt_session_run_multi(s, in.data(), batch, out.data());
    if (st != PYRT_OK && !(has_ids && st == PYRT_INVALID_ARGUMENT)) finding("pyrt_session_run_multi failed", st);
  }
  st = pyrt_session_run_multi(s, in.data(), kMaxBatch + 1, out.data());
  if (st != PYRT_INVALID_ARGUMENT) finding("pyrt_session_run_multi accepted a batch above max_batch", st);
  pyrt_session_free(s);
}

void run_model(const pyrt_model* m, const uint8_t* data, size_t size) {
  pyrt_dtype first = PYRT_F32;
  size_t first_rank = 0, first_dims[4];
  if (pyrt_model_input_info(m, 0, &first, &first_rank, first_dims) != PYRT_OK) finding("no input 0");
  if (pyrt_model_num_inputs(m) != 1 || pyrt_model_num_outputs(m) != 1 || first != PYRT_F32)
    return run_multi(m, data, size);
  const size_t in_size = checked_shape(m, true);
  const size_t out_size = checked_shape(m, false);
  if (pyrt_model_num_layers(m) < 1) finding("a loaded model has no layers");
  (void)pyrt_model_weight_bytes(m);
  if (pyrt_session_arena_bytes(m, 0) != 0) finding("pyrt_session_arena_bytes(model, 0) is not 0");

  const size_t arena_bytes = pyrt_session_arena_bytes(m, kMaxBatch);
  const size_t arena1 = pyrt_session_arena_bytes(m, 1);
  if (arena_bytes == 0 || arena1 == 0) finding("pyrt_session_arena_bytes is 0 for a valid batch");
  const uint64_t work = pyrt_model_work(m);
  if (in_size > kMaxFloats / kMaxBatch || out_size > kMaxFloats / kMaxBatch || arena_bytes > kMaxArenaBytes ||
      work > kMaxWork)
    return;  // a valid model, too large to run cheaply

  std::vector<float> x(in_size * kMaxBatch), y(out_size * kMaxBatch), y1(out_size);
  fill_input(x, data, size);

  pyrt_session* s = nullptr;
  pyrt_status st = pyrt_session_create(m, kMaxBatch, &s);
  if (st == PYRT_OUT_OF_MEMORY) return;
  if (st != PYRT_OK || s == nullptr) finding("pyrt_session_create failed for batch 2", st);
  // batch 1: keep its output to compare with the caller-arena session below
  st = pyrt_session_run(s, x.data(), 1, y1.data());
  if (st != PYRT_OK) finding("pyrt_session_run failed for batch 1", st);
  st = pyrt_session_run(s, x.data(), kMaxBatch, y.data());
  if (st != PYRT_OK) finding("pyrt_session_run failed for batch 2", st);
  st = pyrt_session_run(s, x.data(), kMaxBatch + 1, y.data());
  if (st != PYRT_INVALID_ARGUMENT) finding("pyrt_session_run accepted a batch above max_batch", st);
  pyrt_session_free(s);

  // A session over caller memory of exactly pyrt_session_arena_bytes(model, 1) bytes (on the heap, so
  // ASan sees any access past its end). The size includes the alignment slack, so it must do at any
  // alignment: half of the inputs pass a pointer that is not even 4-byte aligned.
  const size_t shift = size % 2;
  std::vector<uint8_t> arena_store(arena1 + shift);
  pyrt_session* sa = nullptr;
  st = pyrt_session_create_with_arena(m, 1, arena_store.data() + shift, arena1, &sa);
  if (st != PYRT_OK || sa == nullptr)
    finding("pyrt_session_create_with_arena failed with the size pyrt_session_arena_bytes asked for", st);
  std::vector<float> y2(out_size);
  st = pyrt_session_run(sa, x.data(), 1, y2.data());
  if (st != PYRT_OK) finding("pyrt_session_run failed on a caller-arena session", st);
  pyrt_session_free(sa);
  if (out_size && std::memcmp(y1.data(), y2.data(), out_size * sizeof(float)) != 0)
    finding("same model, same input, batch 1: owned-arena and caller-arena sessions differ");
}

void load_and_check(const uint8_t* bytes, size_t size, const uint8_t* fuzz_data, size_t fuzz_size) {
  // The loader reads its own 64-byte aligned heap copy of exactly `size` bytes (ASan sees any read past
  // the end; 64-byte alignment is what lets a loader use dense payloads in place), and the copy is freed
  // before the model is used: the header promises the buffer is not referenced after the load returns,
  // so a model that kept a pointer into it is a use-after-free (ASan keeps freed memory poisoned).
  uint8_t* copy = static_cast<uint8_t*>(::operator new(size ? size : 1, std::align_val_t(64)));
  if (size) std::memcpy(copy, bytes, size);
  pyrt_model* m = reinterpret_cast<pyrt_model*>(uintptr_t(1));  // must be overwritten
  const pyrt_status st = pyrt_model_load_buffer(copy, size, &m);
  ::operator delete(copy, std::align_val_t(64));
  if (st != PYRT_OK) {
    if (m != nullptr) finding("failed load left *out_model non-null", st);
    if (!load_status_allowed(st)) finding("load returned a status not allowed for file content", st);
    const char* msg = pyrt_last_error();
    if (msg == nullptr || msg[0] == '\0') finding("failed load with an empty pyrt_last_error()", st);
    return;
  }
  if (m == nullptr) finding("load returned PYRT_OK and a null model");
  run_model(m, fuzz_data, fuzz_size);
  pyrt_model_free(m);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  load_and_check(data, size, data, size);
  std::vector<uint8_t> fixed(data, data + size);
  if (repair_checksums(fixed) && (fixed.size() != size || std::memcmp(fixed.data(), data, size) != 0))
    load_and_check(fixed.data(), fixed.size(), data, size);
  return 0;
}
