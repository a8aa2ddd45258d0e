/*
 * micro_internal.h -- the shared internals of the bare-metal runtime (csrc/micro/, C99): the error buffer
 * and its small formatter, the bounds-checked byte reader, the symbol-stream decoder, the decoded weight
 * layouts, the model tables that live in the caller's arena, and the functions each file provides.
 *
 * How a load goes (micro_api.c): one validating pass over the whole file that writes nothing
 * (micro_parse with no arena: header, section table, every checksum, every tensor decoded and dropped, the
 * graph with every value's shape, the activation plan), which gives the sizes; then, if the arena is large
 * enough, the same parse again writing the tables, the decoded weights and the plan into the arena.
 * Sizes are counted with the same bump allocator in both passes, so what pyrt_micro_memory_bytes reports is
 * exactly what pyrt_micro_load uses. In stream mode (PYRT_MICRO_STREAM_WEIGHTS) the build pass keeps, for each
 * f32 Huffman-coded weight, its streams' tables (micro_sym_table) instead of the decoded layout, and each run
 * decodes the streams again in stream order (micro_sym_cursor, micro_ops.c).
 */
#ifndef PYRT_MICRO_INTERNAL_H_
#define PYRT_MICRO_INTERNAL_H_

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pyruntime_micro.h"

/* ---- limits of this path (the file format allows more; a larger graph is refused as unsupported) ---- */
#define MICRO_MAX_NODES 127u /* graph nodes; value ids fit a u8 (the parse keeps ~2.8 KB of stack per value table) */
#define MICRO_MAX_VALUES (MICRO_MAX_NODES + 1u)
#define MICRO_ALIGN 8u       /* every arena block starts at a multiple of 8 */
#define MICRO_FORMAT_VERSION 5u

/* File format constants (docs/FORMAT.md). */
enum { MICRO_HEADER = 64, MICRO_SECTION_ENTRY = 32, MICRO_PAYLOAD_ALIGN = 64 };
enum { MICRO_SEC_GRAPH = 1, MICRO_SEC_TENSOR = 2, MICRO_SEC_METADATA = 3 };
enum {
  MICRO_ENC_DENSE = 0,
  MICRO_ENC_CSR = 1,
  MICRO_ENC_CODEBOOK = 2,
  MICRO_ENC_CSR_CODEBOOK = 3,
  MICRO_ENC_INT8 = 4,
  MICRO_ENC_CSR_INT8 = 5,
  MICRO_ENC_BINARY = 6
};
enum {
  MICRO_OP_LINEAR = 1,
  MICRO_OP_RELU = 2,
  MICRO_OP_SOFTMAX = 3,
  MICRO_OP_FLATTEN = 4,
  MICRO_OP_CONV2D = 5,
  MICRO_OP_MAX_POOL2D = 6,
  MICRO_OP_AVG_POOL2D = 7,
  MICRO_OP_GLOBAL_AVG_POOL = 8,
  MICRO_OP_ADD = 9,
  MICRO_OP_CONCAT = 10,
  MICRO_OP_RESHAPE = 11,
  MICRO_OP_CLAMP = 12,
  MICRO_OP_QLINEAR = 13,
  MICRO_OP_QCONV2D = 14,
  MICRO_OP_COUNT = 33 /* codes 1..33 exist (format version 5) */
};

/* ---- errors (micro_util.c): the one static buffer; every failure returns its status ---- */
/* Formats into the error buffer and returns st. Conversions: %s (const char*), %u (unsigned), %d (int),
 * %L (unsigned long long), %% -- no printf. */
pyrt_status micro_fail(pyrt_status st, const char* fmt, ...);
/* The same formatter into a caller's buffer (always terminated; cut at cap - 1). */
size_t micro_format(char* buf, size_t cap, const char* fmt, ...);
size_t micro_vformat(char* buf, size_t cap, const char* fmt, va_list ap);
uint32_t micro_crc32(const uint8_t* p, size_t n);
int micro_utf8_valid(const uint8_t* p, size_t n);

static inline uint32_t micro_u32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t micro_u64(const uint8_t* p) { return micro_u32(p) | ((uint64_t)micro_u32(p + 4) << 32); }
/* An f32 of the file, wherever it lies (the file may sit at any alignment): memcpy is one load on a
 * Cortex-M4 and on x86. The files are little-endian, as every target of this path. */
static inline float micro_f32(const uint8_t* p) {
  float f;
#if defined(__GNUC__)
  __builtin_memcpy(&f, p, 4); /* the builtin: with -ffreestanding (firmware) a plain memcpy is a call */
#else
  memcpy(&f, p, 4);
#endif
  return f;
}
static inline int micro_isnan(float f) { return f != f; }
static inline int micro_isfinite(float f) { return f == f && f - f == 0.0f; }

/* ---- the byte reader: every take is checked against the bytes left ---- */
typedef struct micro_reader {
  const uint8_t* p;
  size_t size, pos;
  const char* what; /* names the part being read in "data ends early" */
} micro_reader;

pyrt_status micro_take(micro_reader* r, uint64_t n, const uint8_t** out);
pyrt_status micro_get_u32(micro_reader* r, uint32_t* out);
pyrt_status micro_skip_to(micro_reader* r, size_t multiple); /* padding counted from the reader's start */

/* ---- the bump allocator: counts only (base NULL) or places blocks in the arena ---- */
typedef struct micro_alloc {
  uint8_t* base; /* NULL while measuring */
  size_t used;
} micro_alloc;

static inline void* micro_bump(micro_alloc* a, size_t bytes) {
  const size_t at = a->used;
  a->used += (bytes + MICRO_ALIGN - 1) / MICRO_ALIGN * MICRO_ALIGN;
  return a->base ? (void*)(a->base + at) : NULL;
}

/* ---- a weight as the kernels read it ---- */
/* An int8 weight's dense rows are kept MICRO_I8_ROW_ALIGN-byte aligned (cols rounded up, zeros after the last
 * column), so a row can be read a word at a time (micro_int8.c). */
#define MICRO_I8_ROW_ALIGN 4u
static inline uint32_t micro_i8_kp(uint32_t cols) { return (cols + MICRO_I8_ROW_ALIGN - 1u) & ~(MICRO_I8_ROW_ALIGN - 1u); }

/* Stream mode (PYRT_MICRO_STREAM_WEIGHTS): a symbol stream (FORMAT.md 4) left in the file and decoded in order
 * during each run. What the run needs of it: where its payload lies and, for a Huffman stream, the canonical
 * code's tables (a count per code length, the symbols by length), built at load. */
#define MICRO_MAX_CODE_LENGTH 24u
typedef struct micro_sym_table {
  const uint8_t* payload; /* in the file */
  uint32_t payload_bytes;
  uint8_t bits, huffman;
  uint16_t len_count[MICRO_MAX_CODE_LENGTH + 1];
  uint8_t sorted[]; /* huffman: 2^bits bytes (the block is sized for them); packed: none */
} micro_sym_table;
/* Bytes of the table of a stream of `bits`-bit symbols. */
static inline size_t micro_sym_table_bytes(uint32_t bits, uint32_t huffman) {
  return offsetof(micro_sym_table, sorted) + (huffman ? (size_t)1u << bits : 0u);
}

/* A run's read position in a stream: the next bits in a 32-bit buffer (least significant first), refilled a
 * byte at a time before each symbol. The stream was decoded whole by the load's validating pass and the file
 * does not change, so a symbol is never missing; the end is still checked so that no read leaves the payload
 * (past it the buffer reads zeros). */
typedef struct micro_sym_cursor {
  const micro_sym_table* t;
  const uint8_t* p; /* the next byte to load into buf */
  const uint8_t* end;
  uint32_t buf, nbits;
} micro_sym_cursor;

static inline void micro_sym_start(micro_sym_cursor* c, const micro_sym_table* t) {
  c->t = t;
  c->p = t->payload;
  c->end = t->payload + t->payload_bytes;
  c->buf = 0;
  c->nbits = 0;
}
/* The next symbol: a packed one least significant bit first, a Huffman one by its canonical code, one bit at
 * a time as micro_tensors.c's validating decoder (codes are at most 24 bits: the buffer holds a whole one). */
static inline uint32_t micro_sym_next(micro_sym_cursor* c) {
  const micro_sym_table* t = c->t;
  uint32_t len;
  while (c->nbits <= 24u && c->p != c->end) {
    c->buf |= (uint32_t)*c->p++ << c->nbits;
    c->nbits += 8u;
  }
  if (!t->huffman) {
    const uint32_t v = c->buf & ((1u << t->bits) - 1u);
    len = t->bits;
    c->buf >>= len;
    c->nbits = c->nbits > len ? c->nbits - len : 0u;
    return v;
  }
  {
    int32_t code = 0, first = 0, index = 0;
    uint32_t buf = c->buf;
    for (len = 1; len <= MICRO_MAX_CODE_LENGTH; ++len) {
      const int32_t count = (int32_t)t->len_count[len];
      code |= (int32_t)(buf & 1u);
      buf >>= 1;
      if (code - first < count) {
        c->buf = buf;
        c->nbits = c->nbits > len ? c->nbits - len : 0u;
        return t->sorted[index + (code - first)];
      }
      index += count;
      first = (first + count) << 1;
      code <<= 1;
    }
  }
  return 0; /* not reached for a validated stream */
}

typedef struct micro_weight {
  uint32_t encoding; /* MICRO_ENC_DENSE, _CSR, _CODEBOOK, _CSR_CODEBOOK, _INT8 or _CSR_INT8 */
  uint32_t rows, cols, nnz;
  const uint8_t* values;    /* in the file: dense values [rows * cols] or csr values [nnz] (f32, any alignment) */
  const uint8_t* centroids; /* in the file: the codebook (f32 [k], any alignment) */
  const uint8_t* scales;    /* in the file: an int8 weight's scale per row (f32 [rows], any alignment) */
  const int8_t* q;          /* arena: an int8 weight's values, int8: rows of micro_i8_kp(cols), or csr [nnz] */
  const uint8_t* idx;       /* arena: codebook indices ([rows * cols] or [nnz]) packed at idx_bits each, index j
                               at bits [j * idx_bits, +idx_bits) least significant first, one spare byte at the end */
  const void* rowptr;       /* arena: rows + 1 offsets, u16 when nnz < 65536, else u32 */
  const void* col;          /* arena: nnz columns of col_bytes each: 1 for up to 256 columns, 2 up to 65536, else 4 */
  uint8_t wide_rowptr, col_bytes, idx_bits;
  /* Stream mode (the f32 Huffman-coded encodings: codebook, csr, csr_codebook): 1, and the run decodes the
   * streams in order (micro_ops.c); nothing is decoded into the arena, and fields above are reused (no byte
   * more per node): rowptr holds the row counts in the file, wide_rowptr their width in bytes (1, 2 or 4),
   * col_bytes the gap bits, col the column gap stream's table, idx the index stream's table (micro_sym_table,
   * arena); read through the accessors below. */
  uint8_t streamed;
} micro_weight;

static inline const micro_sym_table* micro_gap_stream(const micro_weight* w) { return (const micro_sym_table*)w->col; }
static inline const micro_sym_table* micro_idx_stream(const micro_weight* w) {
  return (const micro_sym_table*)(const void*)w->idx;
}
/* Row r's count of nonzeros of a streamed csr weight. */
static inline uint32_t micro_row_count(const micro_weight* w, uint32_t r) {
  const uint8_t* p = (const uint8_t*)w->rowptr + (size_t)r * w->wide_rowptr;
  return w->wide_rowptr == 1 ? p[0] : w->wide_rowptr == 2 ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : micro_u32(p);
}
/* The next column of a streamed csr row: gaps, the fillers (2^gap_bits - 1) adding up to the gap that follows;
 * *pos is the column after the previous nonzero (0 at a row's start). */
static inline uint32_t micro_next_col(const micro_weight* w, micro_sym_cursor* gaps, uint32_t* pos) {
  const uint32_t m = (1u << w->col_bytes) - 1u; /* col_bytes: the gap bits (stream mode) */
  uint32_t sym, col;
  while ((sym = micro_sym_next(gaps)) == m) *pos += m;
  col = *pos + sym;
  *pos = col + 1u;
  return col < w->cols ? col : w->cols - 1u; /* validated at load: never clipped */
}

static inline uint32_t micro_rowptr(const micro_weight* w, uint32_t r) {
  return w->wide_rowptr ? ((const uint32_t*)w->rowptr)[r] : ((const uint16_t*)w->rowptr)[r];
}
static inline uint32_t micro_col(const micro_weight* w, uint32_t j) {
  return w->col_bytes == 1   ? ((const uint8_t*)w->col)[j]
         : w->col_bytes == 2 ? ((const uint16_t*)w->col)[j]
                             : ((const uint32_t*)w->col)[j];
}
static inline uint32_t micro_idx(const micro_weight* w, size_t j) {
  const size_t bit = j * w->idx_bits;
  const uint32_t two = (uint32_t)w->idx[bit >> 3] | (uint32_t)w->idx[(bit >> 3) + 1] << 8; /* the spare byte */
  return (two >> (bit & 7u)) & ((1u << w->idx_bits) - 1u);
}
/* Bytes of `count` indices of `bits` bits packed as micro_idx reads them. */
static inline size_t micro_idx_bytes(uint64_t count, uint32_t bits) { return (size_t)((count * bits + 7u) / 8u) + 1u; }

/* What a tensor section's fixed header says (micro_tensors.c). */
typedef struct micro_tensor_info {
  uint32_t encoding, rank, dims[4];
  uint64_t rows, cols;
  uint32_t nnz; /* csr encodings */
  char name[64]; /* for messages; cut if longer */
} micro_tensor_info;

/* Validates a whole tensor payload (FORMAT.md 3, 4, 6.3). With w == NULL nothing is stored; with w and an
 * allocator, the Huffman-coded streams are decoded into the allocator's blocks (counted when it measures)
 * and w describes the execution layout. who: "section 3 (tensor #2)". */
/* Only the fixed header and name of a tensor section that micro_tensor_read already accepted. */
void micro_tensor_head(const uint8_t* payload, micro_tensor_info* info);
/* stream: leave the f32 Huffman-coded streams in the file (stream mode), keeping their tables (micro_sym_table)
 * in the allocator's blocks instead of the decoded layouts. */
pyrt_status micro_tensor_read(const uint8_t* payload, size_t size, const char* who, uint32_t file_version,
                              micro_tensor_info* info, micro_weight* w, micro_alloc* a, int stream);

/* ---- the model in the arena ---- */
typedef struct micro_value {
  float* data;      /* NULL for the graph input (read in place from the caller's array) */
  uint32_t numel;
  uint32_t rank, dims[4];
} micro_value;

typedef struct micro_node {
  uint16_t op;
  uint8_t has_weight, has_bias;
  uint8_t n_inputs, n_tensors;
  uint32_t in0, in1, out; /* value ids */
  uint8_t inputs[16];     /* every input's value id (concat reads up to 16) */
  uint32_t tensor[2];     /* tensor section numbers (weight, bias) */
  uint32_t attr[10];
  float qattr[4];         /* qlinear, qconv2d: input_scale, output_scale, min, max (FORMAT.md 2.2) */
  micro_weight w;
  const uint8_t* bias; /* in the file: f32 [out channels] */
} micro_node;

struct pyrt_micro_model {
  uint32_t n_nodes, n_values, output_value;
  micro_node* nodes;
  micro_value* values;
  float* scratch; /* one conv output channel's nonzero taps (micro_ops.c); an int8 layer's quantized input */
  const float* input;
};

/* ---- the parse (micro_reader.c): the whole file, measuring or building ---- */
/* Validates the file; with arena == NULL only measures (sizes), else builds the model at the (aligned) arena
 * and sets *model -- for a file a measuring parse has just accepted: the build skips the checksums and the
 * decoding of unused tensors. */
pyrt_status micro_parse(const uint8_t* file, size_t size, uint32_t flags, uint8_t* arena, pyrt_micro_sizes* sizes,
                        pyrt_micro_model** model);

/* Finds tensor section `index` (counting tensor sections only) of a file whose table was validated. */
int micro_find_tensor(const uint8_t* file, uint32_t index, const uint8_t** payload, size_t* size, uint32_t* section);

/* ---- shapes and the plan (micro_plan.c) ---- */
typedef struct micro_graph_scratch { /* lives on the stack of the parse (about 3.5 KB) */
  uint32_t dims[MICRO_MAX_VALUES][4];  /* a value's shape; unused dims 0 */
  uint32_t offset[MICRO_MAX_VALUES];   /* its buffer in the activation area, in floats */
  uint32_t weight[MICRO_MAX_NODES];    /* a node's weight tensor, or UINT32_MAX */
  uint8_t last_read[MICRO_MAX_VALUES]; /* the last node reading it directly; n_nodes: the graph output */
  uint8_t parent[MICRO_MAX_VALUES];    /* the value whose buffer it shares (flatten, reshape, in-place ops) */
  uint8_t op[MICRO_MAX_NODES], in0[MICRO_MAX_NODES], in1[MICRO_MAX_NODES]; /* in1 0xFF: none */
  uint32_t n_nodes, output;
} micro_graph_scratch;

/* Shares buffers (views, in-place ops) and places every value's buffer first-fit among the live ones; sets
 * g->offset and returns the peak in floats. Value 0 (the input) is read in place and takes no space. The
 * caller has set last_read (0xFF: never read) from every node's inputs. */
uint64_t micro_plan(micro_graph_scratch* g);
uint32_t micro_root(const micro_graph_scratch* g, uint32_t v);
static inline uint64_t micro_numel(const uint32_t* dims) {
  uint64_t n = 1;
  int i;
  for (i = 0; i < 4 && dims[i]; ++i) n *= dims[i];
  return n;
}

const char* micro_op_name(uint32_t op);
uint32_t micro_op_version(uint32_t op);
void micro_op_arity(uint32_t op, uint32_t* min_in, uint32_t* max_in, uint32_t* min_t, uint32_t* max_t,
                    uint32_t* attr_words);

/* Checks node `index` (op, attributes, input shapes in g, its tensors) and writes its output shape into
 * g->dims[index + 1] and the floats of scratch it needs while it runs (a conv's list of taps) into
 * *scratch. PYRT_UNSUPPORTED for ops and encodings this path does not run. */
pyrt_status micro_node_shape(const uint8_t* file, uint32_t version, uint32_t index, const micro_node* n,
                             micro_graph_scratch* g, uint32_t* scratch);

/* ---- kernels (micro_ops.c) ---- */
void micro_run_node(const pyrt_micro_model* m, const micro_node* n);
/* Of a dilated kernel of k taps starting at input position `start`, the taps [*lo, *hi) inside [0, in). */
void micro_tap_range(int64_t start, uint32_t dil, uint32_t k, uint32_t in, uint32_t* lo, uint32_t* hi);
/* The output positions [*lo, *hi) along one axis whose dilated window of k taps lies wholly inside [0, in). */
void micro_inner_range(uint32_t out, uint32_t stride, uint32_t pad, uint32_t dil, uint32_t k, uint32_t in,
                       uint32_t* lo, uint32_t* hi);

/* ---- int8 layers (micro_ops_int8.c, FORMAT.md 2.5) ---- */
static inline int micro_is_int8(uint32_t encoding) {
  return encoding == MICRO_ENC_INT8 || encoding == MICRO_ENC_CSR_INT8;
}
/* The floats of scratch an int8 linear (in: its input features) or convolution (x: the input [C, H, W])
 * uses while it runs. */
uint64_t micro_int8_linear_scratch(const micro_tensor_info* w);
uint64_t micro_int8_conv_scratch(const micro_tensor_info* w, const uint32_t* x);
/* linear / conv2d with an int8 weight (dynamic) and qlinear / qconv2d (static). */
void micro_int8_linear(const micro_node* n, const float* x, uint32_t rows_x, float* y, float* scratch);
void micro_int8_conv2d(const micro_node* n, const micro_value* xv, const micro_value* yv, const float* x, float* y,
                       float* scratch);

/* ---- int8 arithmetic (micro_int8.c) ---- */
/* q = clamp(round_half_even(x * inv), -127, 127), NaN -> 0 (FORMAT.md 2.5), as the host's quantize_one. */
static inline int32_t micro_quantize(float x, float inv) {
  float v = x * inv;
  if (v != v) return 0;
  v = v < -127.0f ? -127.0f : (v > 127.0f ? 127.0f : v);
  /* round half to even without libm: adding and subtracting 1.5 * 2^23 rounds |v| <= 2^22 to an integer in
   * the FPU's mode (to nearest, ties to even); the file is built with -ffp-contract=off */
  return (int32_t)((v + 12582912.0f) - 12582912.0f);
}
/* Where column c of a dense row goes in a vector of quantized activations, for micro_i8_dot: each group of
 * four columns c0 c1 c2 c3 is stored c0 c2 c1 c3 on the SMLAD path (the pairs SXTB16 makes of a weight word),
 * in order elsewhere. */
static inline uint32_t micro_i8_slot(uint32_t c) {
#if defined(__ARM_FEATURE_DSP)
  return (c & ~3u) | (c & 1u) << 1 | (c >> 1 & 1u);
#else
  return c;
#endif
}
/* fmaf with one rounding (FORMAT.md 2.5): VFMA.F32 where the FPU has it (Cortex-M4F, M7, M33: the builtin,
 * as under -ffreestanding fmaf would be a call to the C library's), else computed in double (micro_int8.c). */
#if defined(__GNUC__) && defined(__FP_FAST_FMAF)
#define micro_fmaf __builtin_fmaf
#else
float micro_fmaf(float a, float b, float c);
#endif
/* A sample's dynamic scale (FORMAT.md 2.5), m = max |x|: xs = m / 127, inv = 127 / m and 1 when m is finite
 * and > 0; else 0 (qx = 0), with xs = 0 (m = 0) or NaN (a NaN or an infinity in x). */
int micro_i8_dynamic_scale(const float* x, uint32_t n, float* xs, float* inv);
/* quantize(x[c], inv) (0 where !any) into int16: at micro_i8_slot(c) when slotted, else at c; zeros up to
 * micro_i8_kp(n). */
void micro_i8_quantize16(const float* x, uint32_t n, float inv, int any, int slotted, int16_t* q);
/* quantize(x[c], inv) (0 where !any) into int8, in order. */
void micro_i8_quantize8(const float* x, uint32_t n, float inv, int any, int8_t* q);
/* sum_c w[c] * x[c] over kp (a multiple of 4) columns: w a 4-byte aligned int8 row, x int16 in micro_i8_slot
 * order, 4-byte aligned. Exact in int32 (FORMAT.md 2.1 bounds the columns). */
int32_t micro_i8_dot(const int8_t* w, const int16_t* x, uint32_t kp);

#endif /* PYRT_MICRO_INTERNAL_H_ */
