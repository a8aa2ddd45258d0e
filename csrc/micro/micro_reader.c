/*
 * micro_reader.c -- the whole-file parse of the bare-metal runtime: header, section table, checksums,
 * tensors, the graph (FORMAT.md 1, 2, 6, in the order section 6 gives, as csrc/format/model_file.cpp), then
 * shapes and the plan (micro_plan.c) and, when given an arena, the model built into it.
 *
 * One function serves pyrt_micro_memory_bytes (arena NULL: validate and count) and pyrt_micro_load (arena:
 * the same walk writing tables, decoded weights and value pointers). The per-value bookkeeping of the walk
 * lives on the stack (micro_graph_scratch, about 3.5 KB); nothing else is kept outside the arena.
 */
#include "micro_internal.h"

/* Tensor section `index` of a file whose table micro_parse accepted. */
int micro_find_tensor(const uint8_t* file, uint32_t index, const uint8_t** payload, size_t* size, uint32_t* section) {
  const uint32_t count = micro_u32(file + 24);
  uint32_t i, seen = 0;
  for (i = 0; i < count; ++i) {
    const uint8_t* e = file + MICRO_HEADER + (size_t)i * MICRO_SECTION_ENTRY;
    if (micro_u32(e) != MICRO_SEC_TENSOR) continue;
    if (seen++ == index) {
      *payload = file + micro_u64(e + 8);
      *size = (size_t)micro_u64(e + 16);
      *section = i;
      return 1;
    }
  }
  return 0;
}

/* FORMAT.md 6.1 and 6.2: header, table, every section's bounds and checksum, every tensor (validate only).
 * verified: the file passed this check a moment ago (the load's second pass): skip the checksums and the
 * tensor decoding, keep the bounds. */
static pyrt_status check_file(const uint8_t* file, size_t size, int verified, uint32_t* version, uint32_t* n_tensors,
                              const uint8_t** graph, size_t* graph_size) {
  static const uint8_t magic[8] = {0x50, 0x59, 0x52, 0x54, 0x0D, 0x0A, 0x1A, 0x0A};
  uint32_t count, i, tensors = 0, flags;
  uint64_t table_end, prev_end, file_size;
  int have_graph = 0;
  pyrt_status st;
  if (size < MICRO_HEADER)
    return micro_fail(PYRT_BAD_FORMAT, "file header: file is %L bytes, shorter than the 64-byte header",
                      (unsigned long long)size);
  if (memcmp(file, magic, 8) != 0)
    return micro_fail(PYRT_BAD_FORMAT, "file header: wrong magic (not a .pyrt model file)");
  *version = micro_u32(file + 8);
  flags = micro_u32(file + 12);
  file_size = micro_u64(file + 16);
  count = micro_u32(file + 24);
  if (*version < 1) return micro_fail(PYRT_BAD_FORMAT, "file header: version 0 is not a valid version");
  if (*version > MICRO_FORMAT_VERSION)
    return micro_fail(PYRT_BAD_FORMAT, "file header: file format version %u is newer than this reader (reads versions "
                      "1..5); upgrade pyruntime", *version);
  if (!verified && micro_crc32(file, 60) != micro_u32(file + 60))
    return micro_fail(PYRT_BAD_FORMAT, "file header: checksum mismatch (header corrupted)");
  if (flags != 0)
    return micro_fail(PYRT_BAD_FORMAT, "file header: flags %u are not defined (this reader knows none)", flags);
  if (file_size != size)
    return micro_fail(PYRT_BAD_FORMAT, "file header: file should be %L bytes, got %L%s", (unsigned long long)file_size,
                      (unsigned long long)size, file_size > size ? " (truncated)" : " (trailing data)");
  if (count < 1 || count > 65536)
    return micro_fail(PYRT_BAD_FORMAT, "file header: section count %u not in 1..65536", count);
  table_end = MICRO_HEADER + (uint64_t)count * MICRO_SECTION_ENTRY;
  if (table_end > size)
    return micro_fail(PYRT_BAD_FORMAT, "section table: %u entries run past the end of the file", count);
  if (!verified && micro_crc32(file + MICRO_HEADER, (size_t)(table_end - MICRO_HEADER)) != micro_u32(file + 28))
    return micro_fail(PYRT_BAD_FORMAT, "section table: checksum mismatch (table corrupted)");
  prev_end = table_end;
  for (i = 0; i < count; ++i) {
    const uint8_t* e = file + MICRO_HEADER + (size_t)i * MICRO_SECTION_ENTRY;
    const uint32_t type = micro_u32(e), sflags = micro_u32(e + 4);
    const uint64_t off = micro_u64(e + 8), sz = micro_u64(e + 16);
    const uint8_t* p;
    if (off % MICRO_PAYLOAD_ALIGN != 0)
      return micro_fail(PYRT_BAD_FORMAT, "section %u: offset %L is not 64-byte aligned", i, (unsigned long long)off);
    if (off < prev_end || off > size || sz > size - off)
      return micro_fail(PYRT_BAD_FORMAT, "section %u: bytes [%L, +%L) overlap another section or run past the end of "
                        "the file (%L bytes)", i, (unsigned long long)off, (unsigned long long)sz,
                        (unsigned long long)size);
    prev_end = off + sz;
    p = file + off;
    if (!verified && micro_crc32(p, (size_t)sz) != micro_u32(e + 24))
      return micro_fail(PYRT_BAD_FORMAT, "section %u (type %u): checksum mismatch (payload corrupted)", i, type);
    if (type == MICRO_SEC_GRAPH) {
      if (have_graph) return micro_fail(PYRT_BAD_FORMAT, "section %u: a second graph section", i);
      have_graph = 1;
      *graph = p;
      *graph_size = (size_t)sz;
    } else if (type == MICRO_SEC_TENSOR) {
      char who[48];
      micro_tensor_info info;
      micro_format(who, sizeof who, "section %u (tensor #%u)", i, tensors);
      if (!verified && (st = micro_tensor_read(p, (size_t)sz, who, *version, &info, NULL, NULL, 0)) != PYRT_OK) return st;
      ++tensors;
    } else if (type != MICRO_SEC_METADATA && (sflags & 1u)) {
      return micro_fail(PYRT_BAD_FORMAT, "section %u: unknown required section type %u (this reader knows 1..3; "
                        "optional sections of unknown type are skipped)", i, type);
    }
  }
  if (prev_end != size)
    return micro_fail(PYRT_BAD_FORMAT, "file: %L bytes after the end of the last section (section %u)",
                      (unsigned long long)(size - prev_end), count - 1);
  if (!have_graph) return micro_fail(PYRT_BAD_FORMAT, "file has no graph section");
  *n_tensors = tensors;
  return PYRT_OK;
}

static pyrt_status read_dims(micro_reader* r, uint32_t input, uint32_t* dims) {
  uint32_t rank, i;
  pyrt_status st;
  if ((st = micro_get_u32(r, &rank)) != PYRT_OK) return st;
  for (i = 0; i < 4; ++i)
    if ((st = micro_get_u32(r, &dims[i])) != PYRT_OK) return st;
  if (rank < 1 || rank > 4)
    return micro_fail(PYRT_BAD_FORMAT, "graph section: input rank %u not in 1..4 (input %u)", rank, input);
  for (i = 0; i < 4; ++i)
    if (i < rank ? dims[i] == 0 : dims[i] != 0)
      return micro_fail(PYRT_BAD_FORMAT, "graph section: input dimension %u is %u (input %u)", i, dims[i], input);
  return PYRT_OK;
}

/* The graph section's structure (FORMAT.md 2): counts, inputs, outputs and every node's fixed fields. Leaves
 * *nodes at the first node. The micro limits (one f32 input, one output, MICRO_MAX_NODES) come after. */
static pyrt_status check_graph_layout(const uint8_t* p, size_t size, uint32_t version, uint32_t* input_dims,
                                      uint32_t* n_nodes, uint32_t* output, const uint8_t** nodes) {
  micro_reader r;
  uint32_t count, reserved, n_in = 1, n_out = 1, i, k, in_type = 0;
  pyrt_status st;
  r.p = p;
  r.size = size;
  r.pos = 0;
  r.what = "graph section";
  *output = 0xFFFFFFFFu;
  if (version >= 5) {
    if ((st = micro_get_u32(&r, &n_in)) || (st = micro_get_u32(&r, &n_out)) || (st = micro_get_u32(&r, &count)) ||
        (st = micro_get_u32(&r, &reserved)))
      return st;
    if (n_in < 1 || n_in > 16) return micro_fail(PYRT_BAD_FORMAT, "graph section: input count %u not in 1..16", n_in);
    if (n_out < 1 || n_out > 16)
      return micro_fail(PYRT_BAD_FORMAT, "graph section: output count %u not in 1..16", n_out);
    for (k = 0; k < n_in; ++k) {
      uint32_t type, dims[4];
      if ((st = micro_get_u32(&r, &type)) != PYRT_OK) return st;
      if (type > 1)
        return micro_fail(PYRT_BAD_FORMAT, "graph section: input %u has type %u (0 = f32, 1 = i32)", k, type);
      if ((st = read_dims(&r, k, dims)) != PYRT_OK) return st;
      if (k == 0) {
        memcpy(input_dims, dims, sizeof dims);
        in_type = type;
      }
    }
    for (k = 0; k < n_out; ++k) {
      uint32_t v;
      if ((st = micro_get_u32(&r, &v)) != PYRT_OK) return st;
      if (k == 0) *output = v;
    }
  } else {
    if ((st = read_dims(&r, 0, input_dims)) || (st = micro_get_u32(&r, &count)) || (st = micro_get_u32(&r, &reserved)))
      return st;
  }
  if (count < 1 || count > 65536)
    return micro_fail(PYRT_BAD_FORMAT, "graph section: node count %u not in 1..65536", count);
  if ((uint64_t)count * 8u > r.size - r.pos)
    return micro_fail(PYRT_BAD_FORMAT, "graph section: %u nodes cannot fit in %L bytes", count,
                      (unsigned long long)(r.size - r.pos));
  *nodes = p + r.pos;
  for (i = 0; i < count; ++i) {
    const uint8_t* h;
    uint32_t op, ni, nt, attr, min_in, max_in, min_t, max_t, words;
    if ((st = micro_take(&r, 8, &h)) != PYRT_OK) return st;
    op = (uint32_t)h[0] | (uint32_t)h[1] << 8;
    ni = h[2];
    nt = h[3];
    attr = micro_u32(h + 4);
    if (op < 1 || op > MICRO_OP_COUNT)
      return micro_fail(PYRT_BAD_FORMAT, "graph section: node %u has unknown op code %u (this reader knows 1..33)", i,
                        op);
    if (micro_op_version(op) > version)
      return micro_fail(PYRT_BAD_FORMAT, "graph section: node %u (%s) needs format version %u, the file says %u", i,
                        micro_op_name(op), micro_op_version(op), version);
    if (ni > 16 || nt > 16)
      return micro_fail(PYRT_BAD_FORMAT, "graph section: node %u has too many inputs or tensors", i);
    if (attr > 1024 || attr % 4 != 0)
      return micro_fail(PYRT_BAD_FORMAT, "graph section: node %u has attribute size %u", i, attr);
    if ((st = micro_take(&r, 4u * (ni + nt), NULL)) != PYRT_OK) return st;
    micro_op_arity(op, &min_in, &max_in, &min_t, &max_t, &words);
    if (attr != words * 4)
      return micro_fail(PYRT_BAD_FORMAT, "graph section: node %u (%s) has %u attribute bytes, the op takes %u", i,
                        micro_op_name(op), attr, words * 4);
    if ((st = micro_take(&r, attr, NULL)) != PYRT_OK) return st;
  }
  if (r.pos != r.size)
    return micro_fail(PYRT_BAD_FORMAT, "graph section: %L trailing bytes", (unsigned long long)(r.size - r.pos));
  if (version < 5) *output = count; /* the last node's output */
  *n_nodes = count;
  if (n_in != 1 || in_type != 0)
    return micro_fail(PYRT_UNSUPPORTED, "graph: %u inputs (input 0 %s); the micro runtime runs one f32 input", n_in,
                      in_type ? "i32" : "f32");
  if (n_out != 1)
    return micro_fail(PYRT_UNSUPPORTED, "graph: %u outputs; the micro runtime runs one output", n_out);
  return PYRT_OK;
}

/* Node i's fields (at *p, advanced past it), checked against the op's arity and the values and tensors that
 * exist (csrc/common/model_def.cpp check_graph). */
static pyrt_status read_node(const uint8_t** p, uint32_t i, uint32_t n_tensors, micro_node* n) {
  const uint8_t* h = *p;
  uint32_t min_in, max_in, min_t, max_t, words, k;
  memset(n, 0, sizeof *n);
  n->op = (uint16_t)(h[0] | h[1] << 8);
  n->n_inputs = h[2];
  n->n_tensors = h[3];
  micro_op_arity(n->op, &min_in, &max_in, &min_t, &max_t, &words);
  *p = h + 8 + 4u * (n->n_inputs + n->n_tensors) + 4u * words;
  if (n->n_inputs < min_in || n->n_inputs > max_in)
    return micro_fail(PYRT_BAD_FORMAT, "node %u (%s): expects %u..%u inputs, has %u", i, micro_op_name(n->op), min_in,
                      max_in, (unsigned)n->n_inputs);
  for (k = 0; k < n->n_inputs; ++k) {
    const uint32_t v = micro_u32(h + 8 + 4 * k);
    if (v >= i + 1)
      return micro_fail(PYRT_BAD_FORMAT, "node %u (%s): reads value %u, which is not defined before it", i,
                        micro_op_name(n->op), v);
    n->inputs[k] = (uint8_t)v; /* < MICRO_MAX_VALUES: checked by the caller before any node is read */
    if (k == 0) n->in0 = v;
    if (k == 1) n->in1 = v;
  }
  if (n->n_tensors < min_t || n->n_tensors > max_t)
    return micro_fail(PYRT_BAD_FORMAT, "node %u (%s): takes %u..%u tensors, has %u", i, micro_op_name(n->op), min_t,
                      max_t, (unsigned)n->n_tensors);
  for (k = 0; k < n->n_tensors; ++k) {
    const uint32_t t = micro_u32(h + 8 + 4u * (n->n_inputs + k));
    if (t >= n_tensors)
      return micro_fail(PYRT_BAD_FORMAT, "node %u (%s): references tensor %u but the file has %u", i,
                        micro_op_name(n->op), t, n_tensors);
    if (k < 2) n->tensor[k] = t;
  }
  for (k = 0; k < words && k < 10; ++k) n->attr[k] = micro_u32(h + 8 + 4u * (n->n_inputs + n->n_tensors + k));
  if (n->op == MICRO_OP_QLINEAR || n->op == MICRO_OP_QCONV2D) /* the int8 words: after conv2d's 9 for qconv2d */
    for (k = 0; k < 4; ++k)
      n->qattr[k] = micro_f32(h + 8 + 4u * (n->n_inputs + n->n_tensors + k + (n->op == MICRO_OP_QCONV2D ? 9u : 0u)));
  n->has_weight = (n->op == MICRO_OP_LINEAR || n->op == MICRO_OP_CONV2D || n->op == MICRO_OP_QLINEAR ||
                   n->op == MICRO_OP_QCONV2D) && n->n_tensors >= 1;
  n->has_bias = n->has_weight && n->n_tensors == 2;
  return PYRT_OK;
}

pyrt_status micro_parse(const uint8_t* file, size_t size, uint32_t flags, uint8_t* arena, pyrt_micro_sizes* sizes,
                        pyrt_micro_model** out_model) {
  const int stream = (flags & PYRT_MICRO_STREAM_WEIGHTS) != 0;
  micro_graph_scratch g;
  micro_alloc tables = {NULL, 0}, weights = {NULL, 0};
  pyrt_micro_model* m = NULL;
  const uint8_t *graph = NULL, *nodes = NULL, *np;
  size_t graph_size = 0;
  uint32_t version = 0, n_tensors = 0, n_nodes = 0, output = 0, i, max_scratch = 0, input_dims[4] = {0, 0, 0, 0};
  uint64_t peak, act_bytes;
  pyrt_status st;
  if ((st = check_file(file, size, arena != NULL, &version, &n_tensors, &graph, &graph_size)) != PYRT_OK) return st;
  if ((st = check_graph_layout(graph, graph_size, version, input_dims, &n_nodes, &output, &nodes)) != PYRT_OK)
    return st;
  if (micro_numel(input_dims) > (1ull << 31)) return micro_fail(PYRT_BAD_FORMAT, "graph: input 0 is too large");
  if (output >= n_nodes + 1)
    return micro_fail(PYRT_BAD_FORMAT, "graph: output value %u does not exist (the graph has %u values)", output,
                      n_nodes + 1);
  if (n_nodes > MICRO_MAX_NODES)
    return micro_fail(PYRT_UNSUPPORTED, "graph: %u nodes, the micro runtime runs at most %u", n_nodes, MICRO_MAX_NODES);
  g.n_nodes = n_nodes;
  g.output = output;
  memcpy(g.dims[0], input_dims, sizeof input_dims);
  memset(g.last_read, 0xFF, sizeof g.last_read); /* never read */
  /* shapes: every node checked in order (FORMAT.md 6.4) */
  np = nodes;
  for (i = 0; i < n_nodes; ++i) {
    micro_node n;
    uint32_t scratch, j;
    if ((st = read_node(&np, i, n_tensors, &n)) != PYRT_OK) return st;
    if ((st = micro_node_shape(file, version, i, &n, &g, &scratch)) != PYRT_OK) return st;
    for (j = 0; j < n.n_inputs; ++j) g.last_read[n.inputs[j]] = (uint8_t)i;
    if (micro_numel(g.dims[i + 1]) > (1ull << 31))
      return micro_fail(PYRT_BAD_FORMAT, "node %u (%s): output shape is too large (at most 2^31 values per sample)", i,
                        micro_op_name(n.op));
    g.op[i] = (uint8_t)n.op;
    g.in0[i] = (uint8_t)n.in0;
    g.in1[i] = n.n_inputs > 1 ? (uint8_t)n.in1 : 0xFF;
    g.weight[i] = n.has_weight ? n.tensor[0] : 0xFFFFFFFFu;
    if (scratch > max_scratch) max_scratch = scratch;
  }
  peak = micro_plan(&g);
  act_bytes = (peak + max_scratch) * 4u;
  if (peak > 0xFFFFFFFFull || act_bytes > (uint64_t)((size_t)-1) / 4u)
    return micro_fail(PYRT_UNSUPPORTED, "graph: activations of %L floats do not fit this machine's memory",
                      (unsigned long long)(peak + max_scratch));
  /* the arena: model, nodes, values | decoded weights | activations and scratch */
  if (arena) {
    tables.base = arena;
  }
  m = (pyrt_micro_model*)micro_bump(&tables, sizeof *m);
  {
    micro_node* node_table = (micro_node*)micro_bump(&tables, sizeof(micro_node) * n_nodes);
    micro_value* value_table = (micro_value*)micro_bump(&tables, sizeof(micro_value) * (n_nodes + 1));
    if (m) {
      m->n_nodes = n_nodes;
      m->n_values = n_nodes + 1;
      m->output_value = output;
      m->nodes = node_table;
      m->values = value_table;
      m->input = NULL;
    }
    weights.base = arena ? arena + tables.used : NULL;
    np = nodes;
    for (i = 0; i < n_nodes; ++i) {
      micro_node n;
      uint32_t j;
      read_node(&np, i, n_tensors, &n); /* checked above */
      if (n.has_weight) {
        for (j = 0; j < i && g.weight[j] != g.weight[i]; ++j) {
        }
        if (j < i) { /* a tensor shared with an earlier node: its decoded layout too */
          if (node_table) n.w = node_table[j].w;
        } else {
          const uint8_t* p;
          size_t psize;
          uint32_t section;
          char who[48];
          micro_tensor_info info;
          micro_find_tensor(file, n.tensor[0], &p, &psize, &section);
          micro_format(who, sizeof who, "section %u (tensor #%u)", section, n.tensor[0]);
          if ((st = micro_tensor_read(p, psize, who, version, &info, &n.w, &weights, stream)) != PYRT_OK)
            return st;
        }
      }
      if (n.has_bias) {
        const uint8_t* p;
        size_t psize;
        uint32_t section;
        micro_find_tensor(file, n.tensor[1], &p, &psize, &section);
        n.bias = p + (psize - 4u * (size_t)micro_u32(p + 8)); /* the dense values end the payload */
      }
      if (n.op == MICRO_OP_CONV2D || n.op == MICRO_OP_QCONV2D) { /* the kernel width, for the kernel (micro_ops.c) */
        const uint8_t* p;
        size_t psize;
        uint32_t section;
        micro_tensor_info info;
        micro_find_tensor(file, n.tensor[0], &p, &psize, &section);
        micro_tensor_head(p, &info);
        n.attr[9] = info.dims[3];
      }
      n.out = i + 1;
      if (node_table) node_table[i] = n;
    }
    if (m) {
      float* act = (float*)(arena + tables.used + weights.used);
      for (i = 0; i < n_nodes + 1; ++i) {
        micro_value* v = &value_table[i];
        memcpy(v->dims, g.dims[i], sizeof v->dims);
        v->rank = 0;
        while (v->rank < 4 && v->dims[v->rank]) v->rank++;
        v->numel = (uint32_t)micro_numel(g.dims[i]);
        v->data = micro_root(&g, i) == 0 ? NULL : act + g.offset[i];
      }
      m->scratch = act + peak;
      *out_model = m;
    }
  }
  sizes->model_bytes = tables.used;
  sizes->weight_bytes = weights.used;
  sizes->activation_bytes = (size_t)((act_bytes + MICRO_ALIGN - 1) / MICRO_ALIGN * MICRO_ALIGN);
  sizes->arena_bytes = (MICRO_ALIGN - 1) + sizes->model_bytes + sizes->weight_bytes + sizes->activation_bytes;
  return PYRT_OK;
}
