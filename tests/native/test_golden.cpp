// The golden files (tests/data/golden_v*.pyrt, written once by tests/data/make_golden.py and never
// regenerated) through the C API, as an embedded program loads them: from a buffer, a path and a mapped
// file, on 1 and 2 threads, at every ISA level this CPU has, against the outputs recorded beside them
// (golden_v*_expected.npz) at the Python suite's tolerances (tests/format/test_golden.py).
#include <cstring>

#include "harness.h"
#include "npz.h"
#include "pyruntime.h"

using pyrt_test::NpyArray;

namespace {

struct Golden {
  const char* stem;
  double rtol, atol;
};

void check_golden(const Golden& g) {
  const std::string dir = pyrt_test::data_dir();
  const std::string file = dir + "/" + g.stem + ".pyrt";
  const auto expected = pyrt_test::read_npz(dir + "/" + g.stem + "_expected.npz");
  const std::vector<uint8_t> bytes = pyrt_test::read_file(file);
  const pyrt::kernels::Isa previous = pyrt::kernels::active_isa();
  for (int mode = 0; mode < 3; ++mode) {
    pyrt_model* model = nullptr;
    const pyrt_status st = mode == 0   ? pyrt_model_load_buffer(bytes.data(), bytes.size(), &model)
                           : mode == 1 ? pyrt_model_load_file(file.c_str(), &model)
                                       : pyrt_model_load_file_mapped(file.c_str(), &model);
    CHECK(st == PYRT_OK, file, " (load mode ", mode, "): ", pyrt_last_error());
    const size_t n_in = pyrt_model_num_inputs(model), n_out = pyrt_model_num_outputs(model);
    const auto named = [&](const char* base, size_t k, size_t n) -> const NpyArray& {
      const std::string key = n == 1 && expected.count(base) ? std::string(base) : base + std::to_string(k);
      auto it = expected.find(key);
      CHECK(it != expected.end(), g.stem, "_expected.npz has no ", key);
      return it->second;
    };
    const size_t batch = named("input", 0, n_in).shape.at(0);
    std::vector<std::vector<int32_t>> ids(n_in);
    std::vector<std::vector<float>> values(n_in);
    std::vector<const void*> inputs(n_in);
    for (size_t k = 0; k < n_in; ++k) {
      pyrt_dtype dtype;
      size_t rank, dims[4];
      CHECK(pyrt_model_input_info(model, k, &dtype, &rank, dims) == PYRT_OK, pyrt_last_error());
      const NpyArray& a = named("input", k, n_in);
      if (dtype == PYRT_I32) {
        CHECK(a.descr == "<i4", g.stem, " input ", k, " is i32 in the model, ", a.descr, " in the npz");
        ids[k].resize(a.numel());
        std::memcpy(ids[k].data(), a.bytes.data(), a.bytes.size());
        inputs[k] = ids[k].data();
      } else {
        values[k] = a.as_f32();
        inputs[k] = values[k].data();
      }
    }
    for (size_t threads : {size_t(1), size_t(2)}) {
      CHECK(pyrt_model_set_threads(model, threads) == PYRT_OK, pyrt_last_error());
      pyrt_session* session = nullptr;
      CHECK(pyrt_session_create(model, batch, &session) == PYRT_OK, pyrt_last_error());
      for (pyrt::kernels::Isa isa : pyrt::kernels::supported_isas()) {
        pyrt::kernels::set_isa(isa);
        std::vector<std::vector<float>> outs(n_out);
        std::vector<float*> out_ptrs(n_out);
        for (size_t k = 0; k < n_out; ++k) {
          outs[k].assign(named("output", k, n_out).numel(), -12345.f);
          out_ptrs[k] = outs[k].data();
        }
        const pyrt_status run = pyrt_session_run_multi(session, inputs.data(), batch, out_ptrs.data());
        pyrt::kernels::set_isa(previous);
        CHECK(run == PYRT_OK, g.stem, " at ", pyrt::kernels::isa_name(isa), ": ", pyrt_last_error());
        for (size_t k = 0; k < n_out; ++k) {
          const std::vector<float> want = named("output", k, n_out).as_f32();
          for (size_t i = 0; i < want.size(); ++i) {
            const double err = std::fabs(double(outs[k][i]) - double(want[i]));
            CHECK(err <= g.atol + g.rtol * std::fabs(double(want[i])), g.stem, " output ", k, "[", i, "] = ",
                  outs[k][i], ", expected ", want[i], " (", pyrt::kernels::isa_name(isa), ", ", threads,
                  " threads, load mode ", mode, ")");
          }
        }
      }
      pyrt_session_free(session);
    }
    pyrt_model_free(model);
  }
}

}  // namespace

PYRT_TEST(golden_v1_linear_codebook) { check_golden({"golden_v1", 1e-5, 1e-6}); }
PYRT_TEST(golden_v2_convolutions) { check_golden({"golden_v2", 1e-5, 1e-6}); }
PYRT_TEST(golden_v3_int8) { check_golden({"golden_v3", 1e-6, 1e-7}); }
PYRT_TEST(golden_v5_typed_inputs_attention) { check_golden({"golden_v5", 1e-5, 1e-6}); }

PYRT_TEST(npz_reader_refuses_what_it_cannot_read) {
  bool threw = false;
  try {
    pyrt_test::read_npz(pyrt_test::data_dir() + "/golden_v1.pyrt");
  } catch (const std::runtime_error& e) {
    threw = std::strstr(e.what(), "golden_v1.pyrt") != nullptr;
  }
  CHECK(threw, "a .pyrt read as .npz must be refused, naming the file");
}
