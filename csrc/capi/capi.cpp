// pyruntime: the plain C API. Every entry point runs its body inside PYRT_CAPI_GUARD, which turns any
// exception into a status code and the thread's last-error message, so none crosses extern "C".
#include <cstring>
#include <new>
#include <string>

#include "common/error.h"
#include "format/format.h"
#include "pyruntime.h"
#include "runtime/model.h"

static_assert(PYRT_FORMAT_VERSION == pyrt::format::kVersion, "pyruntime.h names the reader's format version");

struct pyrt_model {
  std::unique_ptr<pyrt::runtime::Model> impl;
};
struct pyrt_session {
  std::unique_ptr<pyrt::runtime::Session> impl;
};

namespace {

thread_local std::string g_last_error;

pyrt_status set_error(pyrt_status status, const char* message) {
  g_last_error = message;
  return status;
}

}  // namespace

#define PYRT_CAPI_GUARD(body)                                                          \
  try {                                                                                \
    g_last_error.clear();                                                              \
    body;                                                                              \
    return PYRT_OK;                                                                    \
  } catch (const pyrt::Error& e) {                                                     \
    return set_error(e.status(), e.what());                                            \
  } catch (const std::bad_alloc&) {                                                    \
    return set_error(PYRT_OUT_OF_MEMORY, "out of memory");                             \
  } catch (const std::exception& e) {                                                  \
    return set_error(PYRT_INTERNAL, e.what());                                         \
  } catch (...) {                                                                      \
    return set_error(PYRT_INTERNAL, "unknown internal error");                         \
  }

#define PYRT_REQUIRE(ptr) PYRT_CHECK((ptr) != nullptr, PYRT_INVALID_ARGUMENT, #ptr " is null")

extern "C" {

const char* pyrt_last_error(void) { return g_last_error.c_str(); }

const char* pyrt_status_name(pyrt_status status) {
  switch (status) {
    case PYRT_OK: return "PYRT_OK";
    case PYRT_INVALID_ARGUMENT: return "PYRT_INVALID_ARGUMENT";
    case PYRT_BAD_FORMAT: return "PYRT_BAD_FORMAT";
    case PYRT_UNSUPPORTED: return "PYRT_UNSUPPORTED";
    case PYRT_OUT_OF_MEMORY: return "PYRT_OUT_OF_MEMORY";
    case PYRT_IO_ERROR: return "PYRT_IO_ERROR";
    case PYRT_INTERNAL: return "PYRT_INTERNAL";
  }
  return "PYRT_UNKNOWN_STATUS";
}

pyrt_status pyrt_model_load_file(const char* path, pyrt_model** out_model) {
  PYRT_CAPI_GUARD({
    PYRT_REQUIRE(path);
    PYRT_REQUIRE(out_model);
    *out_model = nullptr;
    auto m = std::make_unique<pyrt_model>();
    m->impl = pyrt::runtime::Model::load_file(path);
    *out_model = m.release();
  })
}

pyrt_status pyrt_model_load_file_mapped(const char* path, pyrt_model** out_model) {
  PYRT_CAPI_GUARD({
    PYRT_REQUIRE(path);
    PYRT_REQUIRE(out_model);
    *out_model = nullptr;
    auto m = std::make_unique<pyrt_model>();
    m->impl = pyrt::runtime::Model::load_file(path, pyrt::format::FileBuffer::Mode::map);
    *out_model = m.release();
  })
}

pyrt_status pyrt_model_load_buffer(const void* data, size_t size, pyrt_model** out_model) {
  PYRT_CAPI_GUARD({
    PYRT_REQUIRE(data);
    PYRT_REQUIRE(out_model);
    *out_model = nullptr;
    auto m = std::make_unique<pyrt_model>();
    m->impl = pyrt::runtime::Model::load_buffer(static_cast<const uint8_t*>(data), size);
    *out_model = m.release();
  })
}

void pyrt_model_free(pyrt_model* model) { delete model; }

static void dims_out(const std::vector<uint32_t>& s, size_t* rank, size_t dims[4]) {
  *rank = s.size();
  for (size_t i = 0; i < 4; ++i) dims[i] = i < s.size() ? s[i] : 0;
}

static pyrt_status shape_out(const std::vector<uint32_t>& s, size_t* rank, size_t dims[4]) {
  PYRT_CAPI_GUARD({
    PYRT_REQUIRE(rank);
    PYRT_REQUIRE(dims);
    dims_out(s, rank, dims);
  })
}

pyrt_status pyrt_model_input_shape(const pyrt_model* model, size_t* rank, size_t dims[4]) {
  if (model == nullptr) return set_error(PYRT_INVALID_ARGUMENT, "model is null");
  return shape_out(model->impl->input_shape(), rank, dims);
}

pyrt_status pyrt_model_output_shape(const pyrt_model* model, size_t* rank, size_t dims[4]) {
  if (model == nullptr) return set_error(PYRT_INVALID_ARGUMENT, "model is null");
  return shape_out(model->impl->output_shape(), rank, dims);
}

size_t pyrt_model_num_inputs(const pyrt_model* model) { return model ? model->impl->input_count() : 0; }
size_t pyrt_model_num_outputs(const pyrt_model* model) { return model ? model->impl->output_count() : 0; }

pyrt_status pyrt_model_input_info(const pyrt_model* model, size_t index, pyrt_dtype* dtype, size_t* rank,
                                  size_t dims[4]) {
  if (model == nullptr) return set_error(PYRT_INVALID_ARGUMENT, "model is null");
  PYRT_CAPI_GUARD({
    PYRT_CHECK(index < model->impl->input_count(), PYRT_INVALID_ARGUMENT, "input ", index, " of a model of ",
               model->impl->input_count(), " inputs");
    PYRT_REQUIRE(rank);
    PYRT_REQUIRE(dims);
    if (dtype) *dtype = model->impl->input_type(index) == pyrt::ElemType::i32 ? PYRT_I32 : PYRT_F32;
    dims_out(model->impl->input_shape(index), rank, dims);
  })
}

pyrt_status pyrt_model_output_info(const pyrt_model* model, size_t index, size_t* rank, size_t dims[4]) {
  if (model == nullptr) return set_error(PYRT_INVALID_ARGUMENT, "model is null");
  PYRT_CAPI_GUARD({
    PYRT_CHECK(index < model->impl->output_count(), PYRT_INVALID_ARGUMENT, "output ", index, " of a model of ",
               model->impl->output_count(), " outputs");
    PYRT_REQUIRE(rank);
    PYRT_REQUIRE(dims);
    dims_out(model->impl->output_shape(index), rank, dims);
  })
}

size_t pyrt_model_input_size(const pyrt_model* model) { return model ? model->impl->input_size() : 0; }
size_t pyrt_model_output_size(const pyrt_model* model) { return model ? model->impl->output_size() : 0; }
size_t pyrt_model_num_layers(const pyrt_model* model) { return model ? model->impl->layers().size() : 0; }
size_t pyrt_model_weight_bytes(const pyrt_model* model) { return model ? model->impl->weight_bytes() : 0; }
uint64_t pyrt_model_work(const pyrt_model* model) { return model ? model->impl->work_per_sample() : 0; }

pyrt_status pyrt_model_set_threads(pyrt_model* model, size_t threads) {
  PYRT_CAPI_GUARD({
    PYRT_REQUIRE(model);
    PYRT_CHECK(threads <= 1024, PYRT_INVALID_ARGUMENT, "threads ", threads, " not in 0..1024");
    model->impl->set_threads(static_cast<unsigned>(threads));
  })
}

size_t pyrt_model_threads(const pyrt_model* model) { return model ? model->impl->threads() : 0; }

size_t pyrt_model_in_place_bytes(const pyrt_model* model) { return model ? model->impl->in_place_bytes() : 0; }

size_t pyrt_session_arena_bytes(const pyrt_model* model, size_t max_batch) {
  return model ? pyrt::runtime::Session::arena_bytes(*model->impl, max_batch) : 0;
}

static pyrt_status create_session(const pyrt_model* model, size_t max_batch, void* arena, size_t arena_bytes,
                                  pyrt_session** out_session) {
  PYRT_CAPI_GUARD({
    PYRT_REQUIRE(model);
    PYRT_REQUIRE(out_session);
    *out_session = nullptr;
    auto s = std::make_unique<pyrt_session>();
    s->impl = std::make_unique<pyrt::runtime::Session>(*model->impl, max_batch, arena, arena_bytes);
    *out_session = s.release();
  })
}

pyrt_status pyrt_session_create(const pyrt_model* model, size_t max_batch, pyrt_session** out_session) {
  return create_session(model, max_batch, nullptr, 0, out_session);
}

pyrt_status pyrt_session_create_with_arena(const pyrt_model* model, size_t max_batch, void* arena,
                                           size_t arena_bytes, pyrt_session** out_session) {
  if (arena == nullptr) return set_error(PYRT_INVALID_ARGUMENT, "arena is null");
  return create_session(model, max_batch, arena, arena_bytes, out_session);
}

void pyrt_session_free(pyrt_session* session) { delete session; }

pyrt_status pyrt_session_run(pyrt_session* session, const float* input, size_t batch, float* output) {
  PYRT_CAPI_GUARD({
    PYRT_REQUIRE(session);
    PYRT_CHECK(input != nullptr && output != nullptr, PYRT_INVALID_ARGUMENT, "input or output is null");
    const pyrt::runtime::Model& m = session->impl->model();
    PYRT_CHECK(m.input_count() == 1 && m.input_type(0) == pyrt::ElemType::f32 && m.output_count() == 1,
               PYRT_INVALID_ARGUMENT, "the model has ", m.input_count(), " inputs (the first ",
               pyrt::elem_type_name(m.input_type(0)), ") and ", m.output_count(),
               " outputs: run it with pyrt_session_run_multi");
    session->impl->run(input, batch, output);
  })
}

pyrt_status pyrt_session_run_multi(pyrt_session* session, const void* const* inputs, size_t batch,
                                   float* const* outputs) {
  PYRT_CAPI_GUARD({
    PYRT_REQUIRE(session);
    PYRT_REQUIRE(inputs);
    PYRT_REQUIRE(outputs);
    session->impl->run(inputs, batch, outputs);
  })
}

}  // extern "C"
