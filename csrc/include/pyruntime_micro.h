/*
 * pyruntime_micro.h -- run a .pyrt model on a microcontroller: the model read from a read-only byte array
 * (flash; the file is never copied), every byte of RAM taken from one region the caller provides.
 *
 * This is the bare-metal path of pyruntime (csrc/micro/, C99). It allocates nothing (no malloc, no new),
 * throws nothing, starts no thread, opens no file, and needs no C++ runtime: it builds with a C compiler
 * and -ffreestanding-friendly flags for a Cortex-M, and it is compiled into the host library too, so a
 * host program can size and check a model before it goes to a device. It runs one sample at a time with
 * scalar kernels (a Cortex-M4/M7 DSP path where it pays). The host API (pyruntime.h) is the full runtime;
 * this is the subset of ops and encodings a small CNN or MLP needs (see pyrt_micro_load for the list).
 *
 * Typical use (model.h from `pyruntime export-c model.pyrt > model.h`):
 *     static uint8_t arena[64 * 1024];
 *     pyrt_micro_sizes need;
 *     if (pyrt_micro_memory_bytes(model_pyrt, model_pyrt_len, &need) != PYRT_OK) { puts(pyrt_micro_last_error()); }
 *     pyrt_micro_model* m;
 *     pyrt_micro_load(model_pyrt, model_pyrt_len, arena, sizeof arena, &m);
 *     pyrt_micro_run(m, image, scores);
 */
#ifndef PYRUNTIME_MICRO_H_
#define PYRUNTIME_MICRO_H_

#include "pyruntime.h" /* pyrt_status, PYRT_API */

#ifdef __cplusplus
extern "C" {
#endif

/* What a model needs in RAM, known before loading it (TFLM users ask for arena sizing up front). */
typedef struct pyrt_micro_sizes {
  size_t weight_bytes;     /* execution layouts of the weights decoded into RAM (Huffman-coded streams); weights
                              stored raw in the file (dense f32 values, centroid tables) are read in place */
  size_t activation_bytes; /* activations and scratch of one sample, at the peak of the plan */
  size_t model_bytes;      /* the model's own tables (layers, shapes) */
  size_t arena_bytes;      /* all of the above with alignment: what pyrt_micro_load needs */
} pyrt_micro_sizes;

typedef struct pyrt_micro_model pyrt_micro_model; /* lives inside the caller's arena */

/* Load flags (pyrt_micro_memory_bytes_ex, pyrt_micro_load_ex; the functions without _ex use 0).
 *
 * PYRT_MICRO_STREAM_WEIGHTS: leave the Huffman-coded weight streams of f32 layers (codebook, csr and
 * csr_codebook weights: codebook indices, CSR column gaps) in the file and decode them during each run, in
 * the order they are stored, instead of decoding them into the arena at load. RAM for such a weight drops to
 * its streams' tables (where each starts in the file, the canonical code: about 60 bytes plus 2^bits per
 * stream; weight_bytes counts them); flash stays the file; each run pays the decoding again (a linear layer
 * decodes one output row at a time as it sums it, a convolution one output channel's taps into the scratch it
 * uses anyway). The outputs are bit for bit those of the default mode: the same products summed in the same
 * order. The load still decodes and checks every stream once, so a damaged file is refused at load as in the
 * default mode. int8 and csr_int8 weights are decoded into the arena as in the default mode. */
#define PYRT_MICRO_STREAM_WEIGHTS 1

/* Parses and validates the file (checksums, sizes, every field, as pyrt_model_load_buffer does) and
 * reports the memory it needs, without writing anywhere but *out. */
PYRT_API pyrt_status pyrt_micro_memory_bytes(const void* file, size_t file_bytes, pyrt_micro_sizes* out);

/* Loads the model: file stays where it is and must outlive the model (flash); arena (any alignment, at
 * least pyrt_micro_memory_bytes' arena_bytes) receives every table, decoded weight and activation. The model
 * handle points into the arena; there is nothing to free. PYRT_UNSUPPORTED names an op or encoding this
 * path does not run; PYRT_BAD_FORMAT names what is wrong with the file; PYRT_INVALID_ARGUMENT says how
 * many bytes the arena lacks.
 *
 * What this path runs: graphs of at most 127 nodes with one f32 input and one output, of the ops linear
 * (flat input, or over the last axis), conv2d (any stride, padding, dilation and groups: depthwise too),
 * relu, clamp (relu6, hardtanh), softmax, flatten, reshape, concat, max_pool2d, avg_pool2d (ceil_mode,
 * count_include_pad), global_avg_pool and add (same shapes), and the int8 layers qlinear and qconv2d (static
 * scales); weights dense_f32, csr, codebook, csr_codebook, int8 or csr_int8 (an int8 weight makes linear and
 * conv2d dynamic int8 layers; binary weights are refused). Dense values, centroids, scales and biases are
 * read in place from the file; codebook indices (packed at index_bits), int8 values (a dense row padded to
 * 4 bytes) and CSR structure (rowptr, u8/u16 columns) are decoded into the arena (in stream mode the f32
 * layers' index and gap streams are not: PYRT_MICRO_STREAM_WEIGHTS). Loading (and
 * pyrt_micro_memory_bytes) takes about 6 KB of stack; a run, under 200 bytes. Float layers match the host
 * runtime at PYRT_ISA=ref to a few ulps (the same sums in the same order); int8 layers match it bit for bit
 * (FORMAT.md 2.5: exact int32 sums, then the same f32 operations; on a Cortex-M4 / M7 the dense int8 dot
 * products use SMLAD). */
PYRT_API pyrt_status pyrt_micro_load(const void* file, size_t file_bytes, void* arena, size_t arena_bytes,
                                     pyrt_micro_model** out_model);

/* The same with load flags (PYRT_MICRO_STREAM_WEIGHTS); a model must be sized and loaded with the same flags.
 * PYRT_INVALID_ARGUMENT for a flag this build does not know. */
PYRT_API pyrt_status pyrt_micro_memory_bytes_ex(const void* file, size_t file_bytes, uint32_t flags,
                                                pyrt_micro_sizes* out);
PYRT_API pyrt_status pyrt_micro_load_ex(const void* file, size_t file_bytes, uint32_t flags, void* arena,
                                        size_t arena_bytes, pyrt_micro_model** out_model);

/* Elements of one sample's input and output (float32, the model's shapes without the batch). */
PYRT_API size_t pyrt_micro_input_size(const pyrt_micro_model* model);
PYRT_API size_t pyrt_micro_output_size(const pyrt_micro_model* model);

/* Runs one sample: input holds pyrt_micro_input_size floats, output receives pyrt_micro_output_size. */
PYRT_API pyrt_status pyrt_micro_run(pyrt_micro_model* model, const float* input, float* output);

/* The message of the last failure of a pyrt_micro_* call (one static buffer: the target has one thread). */
PYRT_API const char* pyrt_micro_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* PYRUNTIME_MICRO_H_ */
