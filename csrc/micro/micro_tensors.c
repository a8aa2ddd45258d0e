/*
 * micro_tensors.c -- tensor sections (FORMAT.md 3) and their symbol streams (4) for the bare-metal runtime.
 *
 * Every field is checked before use, every length against the bytes left, as csrc/format/tensor_codec.cpp
 * and symbol_stream.cpp do. Streams are decoded one symbol at a time straight into the execution layout,
 * with no intermediate buffer: packed streams by bit offset, canonical-Huffman streams bit by bit the way
 * zlib's puff does (a count per code length and the symbols sorted by length; 25 + 256 bytes of stack).
 * What is kept, when the caller asks for the weight: dense values and centroids stay in the file (read in
 * place); codebook indices are packed at index_bits bits each (1..8, fixed width: random access); CSR
 * becomes rowptr (u16 below 65536 nonzeros, else u32) and absolute columns (u8 for up to 256 columns, u16
 * up to 65536, else u32), the fillers resolved; int8 values are decoded to bytes, a dense int8 weight's rows
 * padded to a multiple of 4 bytes (micro_i8_kp) with zeros. In stream mode the f32 encodings' streams are
 * decoded here only to be checked, and what is kept is each stream's table (micro_sym_table) for the run.
 */
#include "micro_internal.h"

typedef struct micro_stream {
  const uint8_t* payload;
  uint32_t payload_bytes, count, bits, huffman;
  uint32_t used;        /* symbols read so far */
  uint64_t bit;         /* next stream bit */
  uint16_t len_count[MICRO_MAX_CODE_LENGTH + 1];
  uint8_t sorted[256];  /* symbols by code length, then by value */
  const char* what;
} micro_stream;

/* Reads a stream header and its tables (FORMAT.md 4), checks them, and leaves the reader after the stream. */
static pyrt_status stream_open(micro_reader* r, uint32_t bits, uint64_t min_count, uint64_t max_count,
                               const char* what, micro_stream* s) {
  const uint8_t* h;
  pyrt_status st = micro_take(r, 16, &h);
  if (st) return st;
  s->what = what;
  s->bits = bits;
  s->count = micro_u32(h + 4);
  s->payload_bytes = micro_u32(h + 8);
  s->used = 0;
  s->bit = 0;
  if (h[0] > 1) return micro_fail(PYRT_BAD_FORMAT, "%s: unknown stream coding %u", what, (unsigned)h[0]);
  if (h[1] != bits)
    return micro_fail(PYRT_BAD_FORMAT, "%s: stream has %u-bit symbols, expected %u", what, (unsigned)h[1], bits);
  if (s->count < min_count || s->count > max_count)
    return micro_fail(PYRT_BAD_FORMAT, "%s: stream declares %u symbols, expected between %L and %L", what, s->count,
                      (unsigned long long)min_count, (unsigned long long)max_count);
  s->huffman = h[0];
  if (!s->huffman) {
    const uint64_t need = ((uint64_t)s->count * bits + 7u) / 8u;
    if (s->payload_bytes != need)
      return micro_fail(PYRT_BAD_FORMAT, "%s: packed stream of %u %u-bit symbols needs %L bytes, header says %u", what,
                        s->count, bits, (unsigned long long)need, s->payload_bytes);
    if ((st = micro_take(r, s->payload_bytes, &s->payload)) != PYRT_OK) return st;
    return micro_skip_to(r, 4);
  }
  {
    const uint8_t* lengths;
    const uint32_t n = 1u << bits;
    uint32_t i, len, at = 0;
    int64_t left = 1;
    if ((st = micro_take(r, n, &lengths)) != PYRT_OK || (st = micro_skip_to(r, 4)) != PYRT_OK) return st;
    if ((uint64_t)s->count > (uint64_t)s->payload_bytes * 8u)
      return micro_fail(PYRT_BAD_FORMAT, "%s: %u symbols cannot fit in %u bytes of Huffman payload", what, s->count,
                        s->payload_bytes);
    if ((st = micro_take(r, s->payload_bytes, &s->payload)) != PYRT_OK || (st = micro_skip_to(r, 4)) != PYRT_OK)
      return st;
    memset(s->len_count, 0, sizeof s->len_count);
    memset(s->sorted, 0, sizeof s->sorted);
    for (i = 0; i < n; ++i) {
      if (lengths[i] > MICRO_MAX_CODE_LENGTH)
        return micro_fail(PYRT_BAD_FORMAT, "%s: Huffman code length %u exceeds %u", what, (unsigned)lengths[i],
                          MICRO_MAX_CODE_LENGTH);
      s->len_count[lengths[i]]++;
    }
    s->len_count[0] = 0;
    for (len = 1; len <= MICRO_MAX_CODE_LENGTH; ++len) {
      left = left * 2 - s->len_count[len];
      if (left < 0) return micro_fail(PYRT_BAD_FORMAT, "%s: Huffman code lengths are over-subscribed", what);
    }
    for (len = 1; len <= MICRO_MAX_CODE_LENGTH; ++len)
      for (i = 0; i < n; ++i)
        if (lengths[i] == len) s->sorted[at++] = (uint8_t)i;
    if (at == 0) return micro_fail(PYRT_BAD_FORMAT, "%s: Huffman table has no codes", what);
  }
  return PYRT_OK;
}

/* The next symbol; the caller never asks for more than count. */
static pyrt_status stream_next(micro_stream* s, uint32_t* sym) {
  s->used++;
  if (!s->huffman) { /* payload size checked at open: every bit is there */
    uint32_t v = 0, k;
    for (k = 0; k < s->bits; ++k, ++s->bit) v |= (uint32_t)((s->payload[s->bit >> 3] >> (s->bit & 7u)) & 1u) << k;
    *sym = v;
    return PYRT_OK;
  }
  {
    int32_t code = 0, first = 0, index = 0;
    uint32_t len;
    const uint64_t end = (uint64_t)s->payload_bytes * 8u;
    for (len = 1; len <= MICRO_MAX_CODE_LENGTH; ++len) {
      int32_t count;
      if (s->bit >= end) return micro_fail(PYRT_BAD_FORMAT, "%s: Huffman payload ends early", s->what);
      code |= (int32_t)((s->payload[s->bit >> 3] >> (s->bit & 7u)) & 1u);
      s->bit++;
      count = (int32_t)s->len_count[len];
      if (code - first < count) {
        *sym = s->sorted[index + (code - first)];
        return PYRT_OK;
      }
      index += count;
      first = (first + count) << 1;
      code <<= 1;
    }
  }
  return micro_fail(PYRT_BAD_FORMAT, "%s: invalid Huffman code in stream", s->what);
}

/* After the last symbol: a Huffman payload is consumed exactly (no whole trailing byte). */
static pyrt_status stream_finish(const micro_stream* s) {
  if (s->huffman && (s->bit + 7u) / 8u != s->payload_bytes)
    return micro_fail(PYRT_BAD_FORMAT, "%s: Huffman payload has %L trailing bytes", s->what,
                      (unsigned long long)(s->payload_bytes - (s->bit + 7u) / 8u));
  return PYRT_OK;
}

/* Stream mode: the table of an opened stream, in an allocator block (counted only while measuring). */
static const micro_sym_table* keep_stream(const micro_stream* s, micro_alloc* a) {
  micro_sym_table* t = (micro_sym_table*)micro_bump(a, micro_sym_table_bytes(s->bits, s->huffman));
  if (t) {
    t->payload = s->payload;
    t->payload_bytes = s->payload_bytes;
    t->bits = (uint8_t)s->bits;
    t->huffman = (uint8_t)s->huffman;
    memcpy(t->len_count, s->len_count, sizeof t->len_count);
    if (s->huffman) memcpy(t->sorted, s->sorted, (size_t)1u << s->bits);
  }
  return t;
}

/* Reads `count` indices (< k) into out (NULL: checked and dropped), packed at `bits` bits each (micro_idx);
 * with keep (stream mode), checked and its table kept in *keep from the allocator a. */
static pyrt_status read_indices(micro_reader* r, uint32_t bits, uint32_t k, uint64_t count, const char* what,
                                uint8_t* out, const uint8_t** keep, micro_alloc* a) {
  micro_stream s;
  uint64_t i;
  uint32_t sym = 0;
  pyrt_status st = stream_open(r, bits, count, count, what, &s);
  if (st == PYRT_OK && keep) *keep = (const uint8_t*)(const void*)keep_stream(&s, a); /* micro_idx_stream */
  if (st == PYRT_OK && out) memset(out, 0, micro_idx_bytes(count, bits));
  for (i = 0; st == PYRT_OK && i < count; ++i) {
    if ((st = stream_next(&s, &sym)) != PYRT_OK) break;
    if (sym >= k)
      return micro_fail(PYRT_BAD_FORMAT, "%s: codebook index %u >= codebook size %u at position %L", what, sym, k,
                        (unsigned long long)i);
    if (out) {
      const uint64_t bit = i * bits;
      const uint32_t shifted = sym << (bit & 7u);
      out[bit >> 3] |= (uint8_t)shifted;
      out[(bit >> 3) + 1] |= (uint8_t)(shifted >> 8);
    }
  }
  return st ? st : stream_finish(&s);
}

/* Reads `count` int8 values (-127..127) into out (NULL: checked and dropped): rows of `cols` at a stride of
 * `stride` bytes, the bytes between left zero (cols 0: one contiguous run). */
static pyrt_status read_int8_values(micro_reader* r, uint64_t count, uint32_t cols, uint32_t stride, const char* what,
                                    int8_t* out) {
  micro_stream s;
  uint64_t i;
  uint32_t sym = 0, c = 0;
  int8_t* row = out;
  pyrt_status st = stream_open(r, 8, count, count, what, &s);
  if (st == PYRT_OK && out && cols) memset(out, 0, (size_t)(count / cols) * stride);
  for (i = 0; st == PYRT_OK && i < count; ++i) {
    if ((st = stream_next(&s, &sym)) != PYRT_OK) break;
    if (sym == 0x80u)
      return micro_fail(PYRT_BAD_FORMAT, "%s: int8 value -128 at position %L (values are -127..127)", what,
                        (unsigned long long)i);
    if (out) {
      row[c] = (int8_t)(sym < 0x80u ? (int32_t)sym : (int32_t)sym - 256); /* two's complement byte */
      if (++c == cols) {
        c = 0;
        row += stride;
      }
    }
  }
  return st ? st : stream_finish(&s);
}

static pyrt_status get_floats(micro_reader* r, uint64_t n, const char* what, const char* field, const uint8_t** out) {
  if (n * 4u > (uint64_t)(r->size - r->pos))
    return micro_fail(PYRT_BAD_FORMAT, "%s: %s needs %L bytes, %L left", what, field, (unsigned long long)(n * 4u),
                      (unsigned long long)(r->size - r->pos));
  return micro_take(r, n * 4u, out);
}

static pyrt_status nonnegative_scales(const uint8_t* p, uint64_t rows, const char* what, const char* field) {
  uint64_t i;
  for (i = 0; i < rows; ++i) {
    const float v = micro_f32(p + 4 * i);
    if (!micro_isfinite(v) || v < 0.0f)
      return micro_fail(PYRT_BAD_FORMAT, "%s: %s of row %L is not finite and >= 0", what, field, (unsigned long long)i);
  }
  return PYRT_OK;
}

static pyrt_status codebook_header(micro_reader* r, uint32_t* k, uint32_t* bits) {
  pyrt_status st;
  if ((st = micro_get_u32(r, k)) != PYRT_OK || (st = micro_get_u32(r, bits)) != PYRT_OK) return st;
  return PYRT_OK;
}

static pyrt_status check_codebook(const char* what, uint32_t k, uint32_t bits) {
  if (k < 1 || k > 256) return micro_fail(PYRT_BAD_FORMAT, "%s: codebook size %u not in 1..256", what, k);
  if (bits < 1 || bits > 8 || (1u << bits) < k)
    return micro_fail(PYRT_BAD_FORMAT, "%s: index_bits %u cannot index %u centroids", what, bits, k);
  return PYRT_OK;
}

/* CSR structure (3.3, 3.5): row counts, then the gap stream resolved into columns. */
static pyrt_status read_csr(micro_reader* r, const micro_tensor_info* t, uint32_t nnz, uint32_t gap_bits,
                            uint32_t width, const char* what, micro_weight* w, micro_alloc* a, int stream) {
  const uint8_t* counts;
  const uint64_t rows = t->rows, cols = t->cols;
  const int store = w != NULL && !stream;
  const int wide_rowptr = nnz >= 65536u;
  const uint32_t col_bytes = cols <= 256u ? 1u : cols <= 65536u ? 2u : 4u;
  void* rowptr = NULL;
  void* col = NULL;
  uint64_t i, total = 0;
  uint32_t j = 0, m = (1u << gap_bits) - 1u, sym = 0;
  char gwhat[120];
  micro_stream s;
  pyrt_status st;
  if ((st = micro_take(r, rows * width, &counts)) != PYRT_OK || (st = micro_skip_to(r, 4)) != PYRT_OK) return st;
  if (store) {
    rowptr = micro_bump(a, (size_t)(rows + 1) * (wide_rowptr ? 4u : 2u));
    col = micro_bump(a, (size_t)nnz * col_bytes);
    w->rowptr = rowptr;
    w->col = col;
    w->wide_rowptr = (uint8_t)wide_rowptr;
    w->col_bytes = (uint8_t)col_bytes;
  }
  for (i = 0; i < rows; ++i) {
    uint32_t c = counts[i * width];
    if (width >= 2) c |= (uint32_t)counts[i * width + 1] << 8;
    if (width == 4) c |= (uint32_t)counts[i * width + 2] << 16 | (uint32_t)counts[i * width + 3] << 24;
    if (c > cols)
      return micro_fail(PYRT_BAD_FORMAT, "%s: row %L has %u nonzeros but only %L columns", what,
                        (unsigned long long)i, c, (unsigned long long)cols);
    total += c;
    if (total > nnz)
      return micro_fail(PYRT_BAD_FORMAT, "%s: row counts exceed nnz = %u at row %L", what, nnz, (unsigned long long)i);
  }
  if (total != nnz)
    return micro_fail(PYRT_BAD_FORMAT, "%s: row counts sum to %L, header says nnz = %u", what,
                      (unsigned long long)total, nnz);
  micro_format(gwhat, sizeof gwhat, "%s column gaps", what);
  if ((st = stream_open(r, gap_bits, nnz, rows * cols, gwhat, &s)) != PYRT_OK) return st;
  if (w && stream) { /* the fields micro_row_count, micro_next_col and micro_gap_stream read */
    w->streamed = 1;
    w->rowptr = counts;
    w->wide_rowptr = (uint8_t)width;
    w->col_bytes = (uint8_t)gap_bits;
    w->col = keep_stream(&s, a);
  }
  for (i = 0; i < rows; ++i) {
    uint32_t c = counts[i * width], k;
    uint64_t pos = 0;
    if (width >= 2) c |= (uint32_t)counts[i * width + 1] << 8;
    if (width == 4) c |= (uint32_t)counts[i * width + 2] << 16 | (uint32_t)counts[i * width + 3] << 24;
    if (rowptr) {
      if (wide_rowptr) ((uint32_t*)rowptr)[i] = j;
      else ((uint16_t*)rowptr)[i] = (uint16_t)j;
    }
    for (k = 0; k < c; ++k, ++j) {
      for (;;) {
        if (s.used == s.count)
          return micro_fail(PYRT_BAD_FORMAT, "%s: column gap stream ends early in row %L", what, (unsigned long long)i);
        if ((st = stream_next(&s, &sym)) != PYRT_OK) return st;
        if (sym == m) {
          pos += m;
          if (pos >= cols)
            return micro_fail(PYRT_BAD_FORMAT, "%s: filler runs past the last column in row %L", what,
                              (unsigned long long)i);
          continue;
        }
        pos += sym;
        break;
      }
      if (pos >= cols)
        return micro_fail(PYRT_BAD_FORMAT, "%s: column %L out of range in row %L", what, (unsigned long long)pos,
                          (unsigned long long)i);
      if (col) {
        if (col_bytes == 1) ((uint8_t*)col)[j] = (uint8_t)pos;
        else if (col_bytes == 2) ((uint16_t*)col)[j] = (uint16_t)pos;
        else ((uint32_t*)col)[j] = (uint32_t)pos;
      }
      ++pos;
    }
  }
  if (rowptr) {
    if (wide_rowptr) ((uint32_t*)rowptr)[rows] = j;
    else ((uint16_t*)rowptr)[rows] = (uint16_t)j;
  }
  if (s.used != s.count)
    return micro_fail(PYRT_BAD_FORMAT, "%s: %u unused column gaps", what, s.count - s.used);
  return stream_finish(&s);
}

pyrt_status micro_tensor_read(const uint8_t* payload, size_t size, const char* who, uint32_t file_version,
                              micro_tensor_info* t, micro_weight* w, micro_alloc* a, int stream) {
  static const char* const enc_names[7] = {"dense_f32", "csr",      "codebook", "csr_codebook",
                                           "int8",      "csr_int8", "binary"};
  micro_reader r;
  const uint8_t *h, *name, *p;
  char what[120], iwhat[140];
  uint32_t i, name_len, enc;
  uint64_t numel;
  pyrt_status st;
  r.p = payload;
  r.size = size;
  r.pos = 0;
  r.what = who;
  if ((st = micro_take(&r, 32, &h)) != PYRT_OK) return st;
  enc = micro_u32(h);
  t->encoding = enc;
  t->rank = micro_u32(h + 4);
  for (i = 0; i < 4; ++i) t->dims[i] = micro_u32(h + 8 + 4 * i);
  name_len = micro_u32(h + 24);
  t->nnz = 0;
  if (name_len > 255) return micro_fail(PYRT_BAD_FORMAT, "%s: name length %u exceeds 255", who, name_len);
  if ((st = micro_take(&r, name_len, &name)) != PYRT_OK) return st;
  if (!micro_utf8_valid(name, name_len)) return micro_fail(PYRT_BAD_FORMAT, "%s: name is not valid UTF-8", who);
  {
    size_t n = name_len < sizeof t->name - 1 ? name_len : sizeof t->name - 1;
    while (n < name_len && n > 0 && (name[n] & 0xC0) == 0x80) --n; /* cut at a character boundary */
    memcpy(t->name, name, n);
    t->name[n] = '\0';
  }
  if ((st = micro_skip_to(&r, 8)) != PYRT_OK) return st;
  micro_format(what, sizeof what, "%s: tensor '%s'", who, t->name);
  r.what = what;
  if (enc > MICRO_ENC_BINARY)
    return micro_fail(PYRT_BAD_FORMAT, "%s: unknown encoding %u (this reader knows 0..6)", what, enc);
  if (t->rank < 1 || t->rank > 4) return micro_fail(PYRT_BAD_FORMAT, "%s: rank %u not in 1..4", what, t->rank);
  t->rows = t->dims[0];
  t->cols = 1;
  for (i = 0; i < 4; ++i) {
    if (i < t->rank ? t->dims[i] == 0 : t->dims[i] != 0)
      return micro_fail(PYRT_BAD_FORMAT, "%s: dimension %u is %u", what, i, t->dims[i]);
    if (i >= 1 && i < t->rank) t->cols *= t->dims[i];
  }
  if (t->cols > 0xFFFFFFFFull || t->rows * t->cols > (1ull << 40))
    return micro_fail(PYRT_BAD_FORMAT, "%s: shape too large", what);
  numel = t->rows * t->cols;
  if (w) {
    memset(w, 0, sizeof *w);
    w->encoding = enc;
    w->rows = (uint32_t)t->rows;
    w->cols = (uint32_t)t->cols;
  }
  switch (enc) {
    case MICRO_ENC_DENSE:
      if ((st = micro_skip_to(&r, 64)) != PYRT_OK) return st;
      if ((st = get_floats(&r, numel, what, "dense values", &p)) != PYRT_OK) return st;
      if (w) w->values = p;
      break;
    case MICRO_ENC_CODEBOOK: {
      uint32_t k, bits;
      uint8_t* idx = NULL;
      if ((st = codebook_header(&r, &k, &bits)) != PYRT_OK || (st = check_codebook(what, k, bits)) != PYRT_OK)
        return st;
      if ((st = get_floats(&r, k, what, "centroids", &p)) != PYRT_OK) return st;
      if (w) {
        w->centroids = p;
        w->idx_bits = (uint8_t)bits;
        w->streamed = (uint8_t)stream;
        if (!stream) idx = (uint8_t*)micro_bump(a, micro_idx_bytes(numel, bits));
        w->idx = idx;
      }
      micro_format(iwhat, sizeof iwhat, "%s indices", what);
      if ((st = read_indices(&r, bits, k, numel, iwhat, idx, w && stream ? &w->idx : NULL, a)) != PYRT_OK)
        return st;
      break;
    }
    case MICRO_ENC_INT8: {
      int8_t* q = NULL;
      if ((st = get_floats(&r, t->rows, what, "scales", &p)) != PYRT_OK) return st;
      if ((st = nonnegative_scales(p, t->rows, what, "scale")) != PYRT_OK) return st;
      if (w) {
        w->scales = p;
        q = (int8_t*)micro_bump(a, (size_t)t->rows * micro_i8_kp((uint32_t)t->cols));
        w->q = q;
      }
      micro_format(iwhat, sizeof iwhat, "%s int8 values", what);
      if ((st = read_int8_values(&r, numel, (uint32_t)t->cols, micro_i8_kp((uint32_t)t->cols), iwhat, q)) != PYRT_OK)
        return st;
      break;
    }
    case MICRO_ENC_BINARY: {
      const uint64_t words = (t->cols + 63u) / 64u, tail = t->cols % 64u;
      uint64_t row;
      if (t->cols > (1u << 24))
        return micro_fail(PYRT_BAD_FORMAT, "%s: a binary weight has at most 2^24 = 16777216 columns, this one %L",
                          what, (unsigned long long)t->cols);
      if ((st = get_floats(&r, t->rows, what, "alphas", &p)) != PYRT_OK) return st;
      if ((st = nonnegative_scales(p, t->rows, what, "alpha")) != PYRT_OK) return st;
      if ((st = micro_skip_to(&r, 8)) != PYRT_OK) return st;
      if (t->rows * words * 8u > (uint64_t)(r.size - r.pos))
        return micro_fail(PYRT_BAD_FORMAT, "%s: sign words need %L bytes, %L left", what,
                          (unsigned long long)(t->rows * words * 8u), (unsigned long long)(r.size - r.pos));
      if ((st = micro_take(&r, t->rows * words * 8u, &p)) != PYRT_OK) return st;
      for (row = 0; tail && row < t->rows; ++row) {
        const uint64_t last = micro_u64(p + (row * words + words - 1) * 8u);
        if (last >> tail)
          return micro_fail(PYRT_BAD_FORMAT, "%s: row %L has sign bits set past column %L", what,
                            (unsigned long long)row, (unsigned long long)(t->cols - 1));
      }
      break;
    }
    default: { /* the three CSR encodings */
      const int cb = enc == MICRO_ENC_CSR_CODEBOOK, q8 = enc == MICRO_ENC_CSR_INT8;
      uint32_t nnz, gap_bits, width, k = 0, bits = 0, reserved;
      const uint8_t* centroids = NULL;
      if ((st = micro_get_u32(&r, &nnz)) != PYRT_OK || (st = micro_get_u32(&r, &gap_bits)) != PYRT_OK ||
          (st = micro_get_u32(&r, &width)) != PYRT_OK)
        return st;
      if (cb && (st = codebook_header(&r, &k, &bits)) != PYRT_OK) return st;
      if ((st = micro_get_u32(&r, &reserved)) != PYRT_OK) return st;
      if (nnz > numel)
        return micro_fail(PYRT_BAD_FORMAT, "%s: %u nonzeros in a tensor of %L elements", what, nnz,
                          (unsigned long long)numel);
      if (gap_bits < 1 || gap_bits > 8)
        return micro_fail(PYRT_BAD_FORMAT, "%s: gap_bits %u not in 1..8", what, gap_bits);
      if (width != 1 && width != 2 && width != 4)
        return micro_fail(PYRT_BAD_FORMAT, "%s: row count width %u not 1, 2 or 4", what, width);
      t->nnz = nnz;
      if (w) w->nnz = nnz;
      if (cb) {
        if ((st = check_codebook(what, k, bits)) != PYRT_OK) return st;
        if ((st = get_floats(&r, k, what, "centroids", &centroids)) != PYRT_OK) return st;
        if (w) w->centroids = centroids;
      }
      if (q8) {
        if ((st = get_floats(&r, t->rows, what, "scales", &p)) != PYRT_OK) return st;
        if ((st = nonnegative_scales(p, t->rows, what, "scale")) != PYRT_OK) return st;
        if (w) w->scales = p;
      }
      if ((st = read_csr(&r, t, nnz, gap_bits, width, what, w, a, stream && !q8)) != PYRT_OK) return st;
      if (cb) {
        uint8_t* idx = w && !stream ? (uint8_t*)micro_bump(a, micro_idx_bytes(nnz, bits)) : NULL;
        if (w) {
          w->idx = idx;
          w->idx_bits = (uint8_t)bits;
        }
        micro_format(iwhat, sizeof iwhat, "%s indices", what);
        if ((st = read_indices(&r, bits, k, nnz, iwhat, idx, w && stream ? &w->idx : NULL, a)) != PYRT_OK)
          return st;
      } else if (q8) {
        int8_t* q = w ? (int8_t*)micro_bump(a, nnz) : NULL;
        if (w) w->q = q;
        micro_format(iwhat, sizeof iwhat, "%s int8 values", what);
        if ((st = read_int8_values(&r, nnz, 0, 0, iwhat, q)) != PYRT_OK) return st;
      } else {
        if ((st = get_floats(&r, nnz, what, "csr values", &p)) != PYRT_OK) return st;
        if (w) w->values = p;
      }
      break;
    }
  }
  if (r.pos != r.size)
    return micro_fail(PYRT_BAD_FORMAT, "%s: %L bytes after the end of the %s body", what,
                      (unsigned long long)(r.size - r.pos), enc_names[enc]);
  {
    const uint32_t needs =
        enc == MICRO_ENC_BINARY ? 4u : (enc == MICRO_ENC_INT8 || enc == MICRO_ENC_CSR_INT8) ? 3u : 1u;
    if (needs > file_version)
      return micro_fail(PYRT_BAD_FORMAT, "%s: encoding %s needs format version %u, the file says %u", what,
                        enc_names[enc], needs, file_version);
  }
  return PYRT_OK;
}

void micro_tensor_head(const uint8_t* payload, micro_tensor_info* t) {
  const uint32_t name_len = micro_u32(payload + 24);
  size_t n = name_len < sizeof t->name - 1 ? name_len : sizeof t->name - 1;
  uint32_t i;
  t->encoding = micro_u32(payload);
  t->rank = micro_u32(payload + 4);
  t->rows = micro_u32(payload + 8);
  t->cols = 1;
  for (i = 0; i < 4; ++i) {
    t->dims[i] = micro_u32(payload + 8 + 4 * i);
    if (i >= 1 && i < t->rank) t->cols *= t->dims[i];
  }
  while (n < name_len && n > 0 && (payload[32 + n] & 0xC0) == 0x80) --n;
  memcpy(t->name, payload + 32, n);
  t->name[n] = '\0';
  t->nnz = 0;
}
