/*
 * pyruntime.h -- plain C API of the pyruntime inference core.
 *
 * Runs neural networks stored in the compact .pyrt model file (docs/FORMAT.md) directly in their
 * compressed form: CSR-sparse, codebook-shared and CSR+codebook weights are executed without being
 * inflated back to dense fp32. No Python, no third-party dependency: link libpyruntime (shared) or
 * the static core and include this header.
 *
 * Conventions
 *   - Every function that can fail returns a pyrt_status. PYRT_OK is 0. On failure, the thread's
 *     last-error message (pyrt_last_error) names what is wrong: the section, tensor, node or shape.
 *     No C++ exception ever crosses this API.
 *   - Handles are opaque. A pyrt_model is immutable after load and may be shared by many threads;
 *     each thread runs through its own pyrt_session (which owns or borrows the activation arena).
 *   - Tensors are float32, row-major, batch first. Shapes exclude the batch dimension.
 *   - pyrt_session_run performs no heap allocation.
 *
 * Typical use
 *     pyrt_model* model; pyrt_session* sess;
 *     if (pyrt_model_load_file("lenet.pyrt", &model) != PYRT_OK) { puts(pyrt_last_error()); ... }
 *     pyrt_session_create(model, 1, &sess);
 *     pyrt_session_run(sess, input, 1, output);
 *     pyrt_session_free(sess); pyrt_model_free(model);
 *
 * Embedded use (caller-owned memory for activations, e.g. a static array):
 *     size_t need = pyrt_session_arena_bytes(model, 1);
 *     pyrt_session_create_with_arena(model, 1, arena, sizeof arena, &sess);
 */
#ifndef PYRUNTIME_H_
#define PYRUNTIME_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define PYRT_API __declspec(dllexport)
#else
#define PYRT_API __attribute__((visibility("default")))
#endif

/* Version of the library and the newest model-file version it reads (it reads every older one). */
#define PYRT_VERSION_MAJOR 0
#define PYRT_VERSION_MINOR 1
#define PYRT_FORMAT_VERSION 5

typedef enum pyrt_status {
  PYRT_OK = 0,
  PYRT_INVALID_ARGUMENT = 1, /* a null pointer, wrong shape, batch out of range, too small a buffer */
  PYRT_BAD_FORMAT = 2,       /* the model file cannot be loaded: truncated, corrupted, inconsistent, or
                                written by a newer format version; every problem with a file's content */
  PYRT_UNSUPPORTED = 3,      /* a request this build cannot serve (an ISA the CPU lacks, an op the
                                converter cannot express); never returned for a file's content */
  PYRT_OUT_OF_MEMORY = 4,    /* an allocation failed */
  PYRT_IO_ERROR = 5,         /* the file could not be opened or read */
  PYRT_INTERNAL = 6          /* a bug: please report it with the message */
} pyrt_status;

typedef struct pyrt_model pyrt_model;     /* a loaded, validated, immutable model */
typedef struct pyrt_session pyrt_session; /* per-thread execution state: the activation arena */

/* Message of the last failure on this thread ("" if none). Valid until the next failing call. */
PYRT_API const char* pyrt_last_error(void);
/* Name of a status code, e.g. "PYRT_BAD_FORMAT". */
PYRT_API const char* pyrt_status_name(pyrt_status status);

/* Loads and validates a model. The entropy-coded streams are decoded once, here, into execution
 * layouts; the file or buffer is not referenced after the call returns. A path that is not a regular
 * file (a pipe, a device) is read header first: a damaged header, or one declaring more than 2 GiB
 * (PYRT_IO_ERROR), stops the read after 64 bytes. The entry points take NUL-terminated paths only. */
PYRT_API pyrt_status pyrt_model_load_file(const char* path, pyrt_model** out_model);
PYRT_API pyrt_status pyrt_model_load_buffer(const void* data, size_t size, pyrt_model** out_model);
/* Loads a model from a file and, when dense f32 tensors make up at least half of it, uses those in place
 * from a memory mapping of the file (POSIX; elsewhere it is pyrt_model_load_file). The file is read,
 * validated and decoded as by pyrt_model_load_file first, and only then mapped (after checking that it
 * is still the file that was read, PYRT_IO_ERROR otherwise); no mapped page is touched before the first
 * run, so a file truncated while it loads gives an error, never a fault. The mapping is kept until
 * pyrt_model_free, and THE FILE MUST NOT THEN BE TRUNCATED OR REWRITTEN IN PLACE: a truncated file
 * faults (SIGBUS) at the next run, a rewritten one changes the weights. Replace a model file by writing
 * a new one and renaming it over the old one. pyrt_model_in_place_bytes is 0 when no mapping was kept
 * (a compressed model: everything decoded into owned memory). */
PYRT_API pyrt_status pyrt_model_load_file_mapped(const char* path, pyrt_model** out_model);
/* Threads a run of this model may use, the calling thread included: 1 (the default after loading) runs
 * everything on the caller; 0 means one per hardware thread; at most 1024. The workers are started
 * here and kept until pyrt_model_free; layers big enough to pay for it are split across them, and every
 * output is bit-identical to one thread's at every batch (linear layers compute a batch in chunks of 64
 * samples whatever the thread count; threads take whole chunks or split one chunk by rows). Sessions running
 * the same model at the same time share the pool: one of them gets it, the others run on their own
 * thread. Not to be called while any session of the model runs. */
PYRT_API pyrt_status pyrt_model_set_threads(pyrt_model* model, size_t threads);
PYRT_API size_t pyrt_model_threads(const pyrt_model* model); /* 0 for a null model */
/* Bytes of weights and biases a model reads in place from its mapped file (0 when not mapped). */
PYRT_API size_t pyrt_model_in_place_bytes(const pyrt_model* model);
PYRT_API void pyrt_model_free(pyrt_model* model);

/* Input / output shape without the batch dimension: *rank in 1..4, dims[0..rank). For a model of several
 * inputs or outputs: the first one's (pyrt_model_input_info / pyrt_model_output_info give each). */
PYRT_API pyrt_status pyrt_model_input_shape(const pyrt_model* model, size_t* rank, size_t dims[4]);
PYRT_API pyrt_status pyrt_model_output_shape(const pyrt_model* model, size_t* rank, size_t dims[4]);
/* Elements per sample of the (first) input and output (product of the dims). */
PYRT_API size_t pyrt_model_input_size(const pyrt_model* model);
PYRT_API size_t pyrt_model_output_size(const pyrt_model* model);

/* Models of several inputs and outputs (format version 5: a transformer's input_ids and attention_mask,
 * say). An input holds float or int32_t elements (token ids); outputs are float. */
typedef enum pyrt_dtype { PYRT_F32 = 0, PYRT_I32 = 1 } pyrt_dtype;
PYRT_API size_t pyrt_model_num_inputs(const pyrt_model* model);  /* 0 for a null model */
PYRT_API size_t pyrt_model_num_outputs(const pyrt_model* model); /* 0 for a null model */
/* Input `index`: its element type, rank and dims (without the batch); dtype may be null. */
PYRT_API pyrt_status pyrt_model_input_info(const pyrt_model* model, size_t index, pyrt_dtype* dtype, size_t* rank,
                                           size_t dims[4]);
PYRT_API pyrt_status pyrt_model_output_info(const pyrt_model* model, size_t index, size_t* rank, size_t dims[4]);
/* Number of layers (graph nodes) and bytes of all weights in their execution layouts. */
PYRT_API size_t pyrt_model_num_layers(const pyrt_model* model);
PYRT_API size_t pyrt_model_weight_bytes(const pyrt_model* model);
/* Operations one sample costs, roughly: multiply-adds of the linear and conv layers (stored weights times
 * output positions, plus the patch elements an im2col convolution writes and the padded planes an int8
 * depthwise one copies its channels into), inputs read by the pools, elements written by the other ops. For budgeting: a model that loads always runs, but a large
 * convolutional one may take a while. 0 for a null model (and for a model of aliases only). */
PYRT_API uint64_t pyrt_model_work(const pyrt_model* model);

/* Bytes of activation arena a session needs to run batches of up to max_batch samples;
 * 0 for a null model or a max_batch outside 1..2^24 (no session accepts those). */
PYRT_API size_t pyrt_session_arena_bytes(const pyrt_model* model, size_t max_batch);
/* A session that owns its arena. */
PYRT_API pyrt_status pyrt_session_create(const pyrt_model* model, size_t max_batch, pyrt_session** out_session);
/* A session over caller-owned memory (at least pyrt_session_arena_bytes, any alignment: it is
 * aligned internally, so pass 64 bytes more than asked if the buffer is not 64-byte aligned). */
PYRT_API pyrt_status pyrt_session_create_with_arena(const pyrt_model* model, size_t max_batch, void* arena,
                                                    size_t arena_bytes, pyrt_session** out_session);
PYRT_API void pyrt_session_free(pyrt_session* session);

/* Runs batch samples: input holds batch * input_size floats, output receives batch * output_size.
 * 1 <= batch <= the session's max_batch. No heap allocation. */
PYRT_API pyrt_status pyrt_session_run(pyrt_session* session, const float* input, size_t batch, float* output);
/* Runs batch samples of a model of any inputs and outputs: inputs[k] holds batch * (input k's elements per
 * sample) of its dtype, outputs[k] receives batch * (output k's) floats. An id outside an embedding's table
 * is refused (PYRT_INVALID_ARGUMENT) naming it. pyrt_session_run is this for one f32 input and one output. */
PYRT_API pyrt_status pyrt_session_run_multi(pyrt_session* session, const void* const* inputs, size_t batch,
                                            float* const* outputs);

#ifdef __cplusplus
}
#endif

#endif /* PYRUNTIME_H_ */
