/*
 * micro_api.c -- the public functions of pyruntime_micro.h: argument checks, the size pass, the load into the
 * caller's arena (aligned up to 8 inside it; arena_bytes counts the worst-case 7 bytes of that), and the run,
 * node after node over the plan micro_plan.c made.
 */
#include "micro_internal.h"

static pyrt_status check_flags(const char* fn, uint32_t flags) {
  if (flags & ~(uint32_t)PYRT_MICRO_STREAM_WEIGHTS)
    return micro_fail(PYRT_INVALID_ARGUMENT, "%s: unknown flags %u", fn, (unsigned)(flags & ~(uint32_t)PYRT_MICRO_STREAM_WEIGHTS));
  return PYRT_OK;
}

pyrt_status pyrt_micro_memory_bytes(const void* file, size_t file_bytes, pyrt_micro_sizes* out) {
  return pyrt_micro_memory_bytes_ex(file, file_bytes, 0, out);
}

pyrt_status pyrt_micro_load(const void* file, size_t file_bytes, void* arena, size_t arena_bytes,
                            pyrt_micro_model** out_model) {
  return pyrt_micro_load_ex(file, file_bytes, 0, arena, arena_bytes, out_model);
}

pyrt_status pyrt_micro_memory_bytes_ex(const void* file, size_t file_bytes, uint32_t flags, pyrt_micro_sizes* out) {
  pyrt_micro_sizes sizes;
  pyrt_status st;
  if (out == NULL) return micro_fail(PYRT_INVALID_ARGUMENT, "pyrt_micro_memory_bytes: out is null");
  if (file == NULL && file_bytes > 0) return micro_fail(PYRT_INVALID_ARGUMENT, "pyrt_micro_memory_bytes: file is null");
  if ((st = check_flags("pyrt_micro_memory_bytes", flags)) != PYRT_OK) return st;
  st = micro_parse((const uint8_t*)file, file_bytes, flags, NULL, &sizes, NULL);
  if (st == PYRT_OK) *out = sizes;
  return st;
}

pyrt_status pyrt_micro_load_ex(const void* file, size_t file_bytes, uint32_t flags, void* arena, size_t arena_bytes,
                               pyrt_micro_model** out_model) {
  pyrt_micro_sizes need, got;
  pyrt_micro_model* m = NULL;
  uint8_t* base;
  pyrt_status st;
  if (out_model == NULL) return micro_fail(PYRT_INVALID_ARGUMENT, "pyrt_micro_load: out_model is null");
  *out_model = NULL;
  if (file == NULL && file_bytes > 0) return micro_fail(PYRT_INVALID_ARGUMENT, "pyrt_micro_load: file is null");
  if (arena == NULL) return micro_fail(PYRT_INVALID_ARGUMENT, "pyrt_micro_load: arena is null");
  if ((st = check_flags("pyrt_micro_load", flags)) != PYRT_OK) return st;
  if ((st = micro_parse((const uint8_t*)file, file_bytes, flags, NULL, &need, NULL)) != PYRT_OK) return st;
  if (arena_bytes < need.arena_bytes)
    return micro_fail(PYRT_INVALID_ARGUMENT, "pyrt_micro_load: the arena has %L bytes, the model needs %L (%L bytes "
                      "missing: %L of tables, %L of weights, %L of activations, up to 7 of alignment)",
                      (unsigned long long)arena_bytes, (unsigned long long)need.arena_bytes,
                      (unsigned long long)(need.arena_bytes - arena_bytes), (unsigned long long)need.model_bytes,
                      (unsigned long long)need.weight_bytes, (unsigned long long)need.activation_bytes);
  base = (uint8_t*)arena + (MICRO_ALIGN - (uintptr_t)arena % MICRO_ALIGN) % MICRO_ALIGN;
  if ((st = micro_parse((const uint8_t*)file, file_bytes, flags, base, &got, &m)) != PYRT_OK) return st;
  if (got.arena_bytes != need.arena_bytes)
    return micro_fail(PYRT_INTERNAL, "pyrt_micro_load: the build used %L bytes, the measure said %L",
                      (unsigned long long)got.arena_bytes, (unsigned long long)need.arena_bytes);
  *out_model = m;
  return PYRT_OK;
}

size_t pyrt_micro_input_size(const pyrt_micro_model* model) { return model ? model->values[0].numel : 0; }

size_t pyrt_micro_output_size(const pyrt_micro_model* model) {
  return model ? model->values[model->output_value].numel : 0;
}

pyrt_status pyrt_micro_run(pyrt_micro_model* model, const float* input, float* output) {
  const micro_value* out;
  uint32_t i;
  if (model == NULL || input == NULL || output == NULL)
    return micro_fail(PYRT_INVALID_ARGUMENT, "pyrt_micro_run: model, input and output must not be null");
  model->input = input;
  for (i = 0; i < model->n_nodes; ++i) micro_run_node(model, &model->nodes[i]);
  out = &model->values[model->output_value];
  memmove(output, out->data ? out->data : input, (size_t)out->numel * 4u);
  model->input = NULL;
  return PYRT_OK;
}
