/*
 * A consumer of the installed C library (tests/install/check_install.cmake builds it against an installed
 * tree with find_package(pyruntime CONFIG) and with pkg-config, shared and static).
 *
 *   consumer model.pyrt    loads the model, runs one sample of zeros, prints the outputs' count and sum
 *
 * Exits 0 when the model loads and runs and the library reports the version this header declares.
 */
#include <stdio.h>
#include <stdlib.h>

#include <pyruntime.h>

int main(int argc, char** argv) {
  pyrt_model* model = NULL;
  pyrt_session* session = NULL;
  float *input, *output, sum = 0.0f;
  size_t i, n_in, n_out;
  if (argc != 2) {
    fprintf(stderr, "usage: %s model.pyrt\n", argv[0]);
    return 2;
  }
  if (pyrt_model_load_file(argv[1], &model) != PYRT_OK) {
    fprintf(stderr, "load: %s\n", pyrt_last_error());
    return 1;
  }
  n_in = pyrt_model_input_size(model);
  n_out = pyrt_model_output_size(model);
  input = (float*)calloc(n_in, sizeof(float));
  output = (float*)calloc(n_out, sizeof(float));
  if (input == NULL || output == NULL || pyrt_session_create(model, 1, &session) != PYRT_OK ||
      pyrt_session_run(session, input, 1, output) != PYRT_OK) {
    fprintf(stderr, "run: %s\n", pyrt_last_error());
    return 1;
  }
  for (i = 0; i < n_out; ++i) sum += output[i];
  printf("pyruntime %d.%d (format %d): %lu outputs, sum %.6f\n", PYRT_VERSION_MAJOR, PYRT_VERSION_MINOR,
         PYRT_FORMAT_VERSION, (unsigned long)n_out, sum);
  pyrt_session_free(session);
  pyrt_model_free(model);
  free(input);
  free(output);
  return 0;
}
