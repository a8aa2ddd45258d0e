/*
 * run_model.c -- run a .pyrt model from plain C99 through the pyruntime C API.
 *
 *   pyrt_run_model model.pyrt [input.f32]
 *
 * Loads the model, prints its input and output shapes, runs one sample and prints the output, one
 * value per line with 9 significant digits (enough to read a float32 back exactly). The sample is
 * all zeros, or the raw little-endian float32 values of input.f32 (exactly one sample's worth).
 *
 * The session runs in a static arena, as on a device without a heap for activations: the program
 * asks how many bytes the model needs (pyrt_session_arena_bytes) and hands the library that many
 * bytes of its own memory (pyrt_session_create_with_arena). Every call's status is checked; on
 * failure the program prints pyrt_last_error() and exits with status 1.
 *
 * Build: cmake -S . -B build -DPYRT_BUILD_EXAMPLES=ON && cmake --build build --target pyrt_run_model
 */
#include <stdio.h>
#include <stdlib.h>

#include "pyruntime.h"

/* Activation memory for the session. Raise it (-DPYRT_EXAMPLE_ARENA_BYTES=...) for larger models. */
#ifndef PYRT_EXAMPLE_ARENA_BYTES
#define PYRT_EXAMPLE_ARENA_BYTES (1 << 20)
#endif
static unsigned char g_arena[PYRT_EXAMPLE_ARENA_BYTES];

static int fail(const char* what, pyrt_status status) {
  fprintf(stderr, "error: %s: %s: %s\n", what, pyrt_status_name(status), pyrt_last_error());
  return 1;
}

static void print_shape(const char* label, size_t rank, const size_t dims[4]) {
  size_t i;
  printf("%s: [", label);
  for (i = 0; i < rank; ++i) printf("%s%lu", i ? ", " : "", (unsigned long)dims[i]);
  printf("]\n");
}

/* Reads exactly n floats from path into out; returns 0 on success. */
static int read_input(const char* path, float* out, size_t n) {
  FILE* f = fopen(path, "rb");
  size_t got;
  int extra;
  if (f == NULL) {
    perror(path);
    return 1;
  }
  got = fread(out, sizeof(float), n, f);
  extra = fgetc(f);
  fclose(f);
  if (got != n || extra != EOF) {
    fprintf(stderr, "error: %s must hold exactly %lu float32 values (%lu bytes)\n", path, (unsigned long)n,
            (unsigned long)(n * sizeof(float)));
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  pyrt_model* model = NULL;
  pyrt_session* session = NULL;
  pyrt_status st;
  size_t in_rank, in_dims[4], out_rank, out_dims[4], in_size, out_size, need, i;
  float* input = NULL;
  float* output = NULL;
  int rc = 1;

  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s model.pyrt [input.f32]\n", argv[0]);
    return 2;
  }

  st = pyrt_model_load_file(argv[1], &model);
  if (st != PYRT_OK) return fail("loading the model", st);

  st = pyrt_model_input_shape(model, &in_rank, in_dims);
  if (st != PYRT_OK) {
    fail("reading the input shape", st);
    goto done;
  }
  st = pyrt_model_output_shape(model, &out_rank, out_dims);
  if (st != PYRT_OK) {
    fail("reading the output shape", st);
    goto done;
  }
  print_shape("input shape", in_rank, in_dims);
  print_shape("output shape", out_rank, out_dims);
  printf("layers: %lu\n", (unsigned long)pyrt_model_num_layers(model));
  printf("weight bytes: %lu\n", (unsigned long)pyrt_model_weight_bytes(model));

  need = pyrt_session_arena_bytes(model, 1);
  printf("arena bytes: %lu of %lu\n", (unsigned long)need, (unsigned long)sizeof g_arena);
  st = pyrt_session_create_with_arena(model, 1, g_arena, sizeof g_arena, &session);
  if (st != PYRT_OK) {
    fail("creating the session (raise PYRT_EXAMPLE_ARENA_BYTES?)", st);
    goto done;
  }

  in_size = pyrt_model_input_size(model);
  out_size = pyrt_model_output_size(model);
  input = (float*)calloc(in_size, sizeof(float));
  output = (float*)calloc(out_size, sizeof(float));
  if (input == NULL || output == NULL) {
    fprintf(stderr, "error: out of memory\n");
    goto done;
  }
  if (argc == 3 && read_input(argv[2], input, in_size) != 0) goto done;

  st = pyrt_session_run(session, input, 1, output);
  if (st != PYRT_OK) {
    fail("running the model", st);
    goto done;
  }
  printf("output:\n");
  for (i = 0; i < out_size; ++i) printf("%.9g\n", output[i]);
  rc = 0;

done:
  free(input);
  free(output);
  pyrt_session_free(session);
  pyrt_model_free(model);
  return rc;
}
