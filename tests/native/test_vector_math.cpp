// The f32 transcendental kernels (kernels/ref/vector_math.h) at every level this CPU has (ref included),
// against the float64 formulas written here with <cmath>, to tests/kernels/test_vector_math.py's tolerance
// |y - y64| <= 1e-6 + 1e-5 |y64| (NaN exactly where y64 is NaN, equal infinities):
// - gelu (erf and tanh forms), silu, sigmoid, tanh over [-20, 20] every 1e-3, exp's range edges, subnormals,
//   huge values, +-inf, NaN, +-0 and a wide random spread; the limits exactly (f(+-inf), -0 keeps its sign);
//   every result independent of its position in a call (all offsets into a vector, lengths 1..9), in place;
// - leaky_relu bit for bit;
// - softmax_rows and layer_norm_rows (no affine / weight / weight and bias) on rows of 1, 3, 4, 5, 7, 8, 16,
//   17, 768 and 3072 (the tails of 4- and 8-float loops), shifted and scaled rows, NaN / +inf / all -inf rows,
//   constant rows; a block of rows gives the bits of each row alone.
#include <cstring>
#include <limits>

#include "harness.h"
#include "kernels/ref/vector_math.h"

using namespace pyrt::kernels;
using pyrt_test::Rng;

namespace {

constexpr double kAtol = 1e-6, kRtol = 1e-5;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<Isa> all_levels() {
  std::vector<Isa> v{Isa::ref};
  for (Isa isa : pyrt_test::fast_isas()) v.push_back(isa);
  return v;
}

double gelu_erf64(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
double gelu_tanh64(double x) {  // 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)); -inf: -inf / inf = NaN, as torch
  const double u = 0.79788456080286535588 * (x + 0.044715 * x * x * x);  // sqrt(2 / pi) (x + 0.044715 x^3)
  return x / (1.0 + std::exp(-2.0 * u));
}
double silu64(double x) { return x / (1.0 + std::exp(-x)); }
double sigmoid64(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double tanh64(double x) { return std::tanh(x); }

struct Activation {
  const char* name;
  void (*MathKernels::*fn)(const float*, float*, size_t);
  double (*f64)(double);
  bool keeps_sign;  // f(-0) = -0
};
const Activation kActivations[] = {
    {"gelu_erf", &MathKernels::gelu_erf, gelu_erf64, true}, {"gelu_tanh", &MathKernels::gelu_tanh, gelu_tanh64, true},
    {"silu", &MathKernels::silu, silu64, true},             {"sigmoid", &MathKernels::sigmoid, sigmoid64, false},
    {"tanh", &MathKernels::tanh, tanh64, true},
};

// Index of the first element outside |y - y64| <= atol + rtol |y64| (NaN only where y64 is NaN), or -1.
long first_bad(const float* y, const double* want, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double g = y[i], w = want[i];
    if (std::isnan(w) || std::isnan(g)) {
      if (std::isnan(w) != std::isnan(g)) return long(i);
      continue;
    }
    if (std::isinf(w) || std::isinf(g)) {
      if (g != w) return long(i);
      continue;
    }
    if (std::fabs(g - w) > kAtol + kRtol * std::fabs(w)) return long(i);
  }
  return -1;
}

std::vector<float> sweep() {
  std::vector<float> x;
  for (int i = -20000; i <= 20000; ++i) x.push_back(static_cast<float>(i * 1e-3));
  const float big = std::numeric_limits<float>::max(), tiny = std::numeric_limits<float>::min();
  const float specials[] = {kInf,  kNaN,  0.0f,   1e-45f, 1e-40f, tiny,   1e-30f, 1e-8f,  0x1p-13f, 0.3f,
                            0.625f, 0.6250001f, 1.0f, 5.5f, 9.0f,  10.0f,  30.0f,  44.0f,  44.4f,    80.0f,
                            87.3f, 87.34f, 88.0f, 88.7f, 88.72f, 88.73f, 89.0f,  100.0f, 103.0f,   104.0f,
                            110.0f, 200.0f, 1e4f, 1e10f, 1e19f,  3e19f,  1e30f,  big};
  for (float s : specials) {
    x.push_back(s);
    x.push_back(-s);
  }
  Rng rng(7);
  for (int i = 0; i < 4096; ++i) x.push_back(rng.uniform(-1.f, 1.f) * std::exp(rng.uniform(-30.f, 30.f)));
  return x;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

}  // namespace

PYRT_TEST(activations_match_float64) {
  const std::vector<float> x = sweep();
  std::vector<float> y(x.size());
  std::vector<double> want(x.size());
  for (const Activation& a : kActivations) {
    for (size_t i = 0; i < x.size(); ++i) want[i] = a.f64(x[i]);
    for (Isa isa : all_levels()) {
      (math_kernels(isa).*a.fn)(x.data(), y.data(), x.size());
      const long bad = first_bad(y.data(), want.data(), y.size());
      CHECK(bad < 0, a.name, " at ", isa_name(isa), ": f(", x[bad < 0 ? 0 : bad], ") = ", y[bad < 0 ? 0 : bad],
            ", float64 ", want[bad < 0 ? 0 : bad]);
    }
  }
}

PYRT_TEST(activation_limits_and_signs) {
  const float x[] = {kInf, -kInf, kNaN, -kNaN, 0.0f, -0.0f, -1e-45f, 1e-45f};
  constexpr size_t n = sizeof(x) / sizeof(x[0]);
  for (const Activation& a : kActivations)
    for (Isa isa : all_levels()) {
      float y[n];
      (math_kernels(isa).*a.fn)(x, y, n);
      for (size_t i = 0; i < n; ++i) {
        const float want = static_cast<float>(a.f64(x[i]));  // gelu / silu (-inf): NaN, as torch
        CHECK(std::isnan(want) == std::isnan(y[i]) && (std::isnan(want) || want == y[i]), a.name, " at ",
              isa_name(isa), ": f(", x[i], ") = ", y[i], ", float64 ", want);
      }
      if (a.keeps_sign) CHECK(std::signbit(y[5]) && !std::signbit(y[4]), a.name, " at ", isa_name(isa), ": sign of 0");
    }
}

PYRT_TEST(activations_independent_of_position) {
  Rng rng(3);
  std::vector<float> x(41);
  for (float& v : x) v = rng.uniform(-8.f, 8.f);
  x[3] = kNaN;
  x[10] = -kInf;
  for (const Activation& a : kActivations)
    for (Isa isa : pyrt_test::fast_isas()) {
      const auto fn = math_kernels(isa).*a.fn;
      std::vector<float> whole(x.size());
      fn(x.data(), whole.data(), x.size());
      for (size_t off = 0; off < 9; ++off)
        for (size_t len = 1; off + len <= x.size(); len += (len < 9 ? 1 : 7)) {
          std::vector<float> part(len);
          fn(x.data() + off, part.data(), len);
          for (size_t i = 0; i < len; ++i)
            CHECK(same_bits(part[i], whole[off + i]), a.name, " at ", isa_name(isa), ": x[", off + i,
                  "] in a call of ", len, " from ", off, " gives other bits");
        }
      std::vector<float> inplace = x;
      fn(inplace.data(), inplace.data(), inplace.size());
      CHECK(std::memcmp(inplace.data(), whole.data(), 4 * x.size()) == 0, a.name, " at ", isa_name(isa), ": in place");
    }
}

PYRT_TEST(leaky_relu_is_exact) {
  const std::vector<float> x = sweep();
  std::vector<float> y(x.size());
  for (float slope : {0.01f, 0.2f, -1.5f})
    for (Isa isa : all_levels()) {
      math_kernels(isa).leaky_relu(x.data(), y.data(), x.size(), slope);
      for (size_t i = 0; i < x.size(); ++i) {
        const float want = x[i] >= 0.0f ? x[i] : slope * x[i];
        CHECK(std::isnan(want) ? std::isnan(y[i]) : same_bits(y[i], want), "leaky_relu(", x[i], ", ", slope,
              ") at ", isa_name(isa), " = ", y[i], ", want ", want);
      }
    }
}

namespace {

constexpr size_t kRowLengths[] = {1, 3, 4, 5, 7, 8, 16, 17, 768, 3072};

std::vector<double> softmax64(const std::vector<float>& x, size_t rows, size_t n) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * n;
    double m = xr[0];
    for (size_t i = 1; i < n; ++i) m = std::isnan(xr[i]) ? xr[i] : std::max<double>(m, xr[i]);
    if (std::isnan(m)) {
      for (size_t i = 0; i < n; ++i) y[r * n + i] = m;
      continue;
    }
    double s = 0.0;
    for (size_t i = 0; i < n; ++i) s += y[r * n + i] = std::exp(double(xr[i]) - m);  // inf - inf: NaN
    for (size_t i = 0; i < n; ++i) y[r * n + i] /= s;
  }
  return y;
}

std::vector<double> layer_norm64(const std::vector<float>& x, size_t rows, size_t n, const float* w, const float* b,
                                 float eps) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * n;
    double mean = 0.0, var = 0.0;
    for (size_t i = 0; i < n; ++i) mean += xr[i];
    mean /= double(n);
    for (size_t i = 0; i < n; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= double(n);
    for (size_t i = 0; i < n; ++i)
      y[r * n + i] = (xr[i] - mean) / std::sqrt(var + double(eps)) * (w ? w[i] : 1.0) + (b ? b[i] : 0.0);
  }
  return y;
}

}  // namespace

PYRT_TEST(softmax_rows_match_float64) {
  constexpr size_t rows = 5;
  for (size_t n : kRowLengths) {
    Rng rng(n);
    for (auto [scale, shift] : {std::pair{1.f, 0.f}, {8.f, 0.f}, {3.f, 1e4f}, {30.f, -500.f}}) {
      std::vector<float> x(rows * n), y(rows * n), one(n);
      for (float& v : x) v = rng.uniform() * scale * 1.7f + shift;
      const std::vector<double> want = softmax64(x, rows, n);
      for (Isa isa : all_levels()) {
        math_kernels(isa).softmax_rows(x.data(), y.data(), rows, n);
        const long bad = first_bad(y.data(), want.data(), y.size());
        CHECK(bad < 0, "softmax n=", n, " scale ", scale, " at ", isa_name(isa), ": y[", bad, "] = ",
              y[bad < 0 ? 0 : bad], ", float64 ", want[bad < 0 ? 0 : bad]);
        for (size_t r = 0; r < rows; ++r) {
          math_kernels(isa).softmax_rows(x.data() + r * n, one.data(), 1, n);
          CHECK(std::memcmp(one.data(), y.data() + r * n, 4 * n) == 0, "softmax n=", n, " at ", isa_name(isa),
                ": row ", r, " alone differs");
        }
      }
    }
  }
}

PYRT_TEST(softmax_rows_specials) {
  constexpr size_t rows = 5;
  for (size_t n : kRowLengths) {
    Rng rng(100 + n);
    std::vector<float> x(rows * n), y(rows * n);
    for (float& v : x) v = rng.uniform(-2.f, 2.f);
    x[n - 1] = -kInf;                                              // an ordinary 0 (all -inf when n = 1)
    for (size_t i = 0; i < n; ++i) x[n + i] = -kInf;               // all -inf: NaN
    x[2 * n + n / 2] = kNaN;                                       // NaN
    x[3 * n + n - 1] = kInf;                                       // +inf: NaN
    for (Isa isa : all_levels()) {
      math_kernels(isa).softmax_rows(x.data(), y.data(), rows, n);
      for (size_t i = n; i < 4 * n; ++i)
        CHECK(std::isnan(y[i]), "softmax n=", n, " at ", isa_name(isa), ": y[", i, "]");
      for (size_t i = 4 * n; i < 5 * n; ++i) CHECK(std::isfinite(y[i]), "softmax n=", n, " at ", isa_name(isa));
      if (n > 1) CHECK(y[n - 1] == 0.0f && std::isfinite(y[0]), "softmax n=", n, " at ", isa_name(isa), ": -inf entry");
      const std::vector<double> want = softmax64(x, rows, n);
      const long bad = first_bad(y.data(), want.data(), y.size());
      CHECK(bad < 0, "softmax specials n=", n, " at ", isa_name(isa), ": y[", bad, "] = ", y[bad < 0 ? 0 : bad],
            ", float64 ", want[bad < 0 ? 0 : bad]);
    }
  }
}

PYRT_TEST(layer_norm_rows_match_float64) {
  constexpr size_t rows = 4;
  const float eps = 1e-5f;
  for (size_t n : kRowLengths) {
    Rng rng(200 + n);
    std::vector<float> w(n), b(n);
    for (size_t i = 0; i < n; ++i) w[i] = rng.uniform(-3.f, 3.f), b[i] = rng.uniform(-1.5f, 1.5f);
    for (int affine = 0; affine < 3; ++affine) {
      const float* wp = affine >= 1 ? w.data() : nullptr;
      const float* bp = affine == 2 ? b.data() : nullptr;
      for (auto [scale, shift] : {std::pair{1.f, 0.f}, {3.f, -2.f}, {1e-2f, 1e4f}, {1e3f, 5e4f}}) {
        std::vector<float> x(rows * n), y(rows * n), one(n);
        for (float& v : x) v = rng.uniform() * scale * 1.7f + shift;
        const std::vector<double> want = layer_norm64(x, rows, n, wp, bp, eps);
        for (Isa isa : all_levels()) {
          math_kernels(isa).layer_norm_rows(x.data(), y.data(), rows, n, wp, bp, eps);
          const long bad = first_bad(y.data(), want.data(), y.size());
          CHECK(bad < 0, "layer_norm n=", n, " affine ", affine, " shift ", shift, " at ", isa_name(isa), ": y[", bad,
                "] = ", y[bad < 0 ? 0 : bad], ", float64 ", want[bad < 0 ? 0 : bad]);
          for (size_t r = 0; r < rows; ++r) {
            math_kernels(isa).layer_norm_rows(x.data() + r * n, one.data(), 1, n, wp, bp, eps);
            CHECK(std::memcmp(one.data(), y.data() + r * n, 4 * n) == 0, "layer_norm n=", n, " at ", isa_name(isa),
                  ": row ", r, " alone differs");
          }
          std::vector<float> inplace = x;
          math_kernels(isa).layer_norm_rows(inplace.data(), inplace.data(), rows, n, wp, bp, eps);
          CHECK(inplace == y, "layer_norm n=", n, " at ", isa_name(isa), ": in place");
        }
      }
    }
  }
}

PYRT_TEST(layer_norm_rows_specials) {
  constexpr size_t rows = 4;
  for (size_t n : kRowLengths) {
    Rng rng(300 + n);
    std::vector<float> x(rows * n), y(rows * n), w(n), b(n);
    for (size_t i = 0; i < n; ++i) w[i] = rng.uniform(-3.f, 3.f), b[i] = rng.uniform(-1.5f, 1.5f);
    for (float& v : x) v = rng.uniform(-2.f, 2.f);
    x[n / 2] = kNaN;
    x[n + n - 1] = kInf;
    for (size_t i = 0; i < n; ++i) x[2 * n + i] = 2.5f;  // constant: the bias
    for (Isa isa : all_levels()) {
      math_kernels(isa).layer_norm_rows(x.data(), y.data(), rows, n, w.data(), b.data(), 1e-5f);
      for (size_t i = 0; i < 2 * n; ++i)
        CHECK(std::isnan(y[i]), "layer_norm n=", n, " at ", isa_name(isa), ": y[", i, "]");
      for (size_t i = 0; i < n; ++i)
        CHECK(y[2 * n + i] == b[i], "layer_norm n=", n, " at ", isa_name(isa), ": constant row gives ", y[2 * n + i]);
      for (size_t i = 3 * n; i < 4 * n; ++i) CHECK(std::isfinite(y[i]), "layer_norm n=", n, " at ", isa_name(isa));
      math_kernels(isa).layer_norm_rows(x.data() + 2 * n, y.data(), 1, n, w.data(), b.data(), 0.0f);  // eps 0: 0 * inf
      for (size_t i = 0; i < n; ++i) CHECK(std::isnan(y[i]), "layer_norm eps 0, n=", n, " at ", isa_name(isa));
    }
  }
}
