// JumpReLU selection: keep entries strictly above a scalar or per-latent threshold (and above 0).
#include "common.h"

namespace sae_fast {
namespace {

// Step 0 reads one scalar threshold, step 1 one per latent; a template so both loops vectorise.
template <int Step>
py::tuple select_above(const MatrixView& x, const float* thr) {
  const int64_t n = x.rows, m = x.cols;
  std::vector<int64_t> counts(n, 0);
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(static) if (n * m > kParallelGrain)
    for (int64_t r = 0; r < n; ++r) {
      const float* row = x.data + r * m;
      int64_t kept = 0;
      for (int64_t c = 0; c < m; ++c) kept += (row[c] > thr[c * Step]) & (row[c] > 0.0f);
      counts[r] = kept;
    }
  }
  return emit_csr(counts, n * m, [&](int64_t r, int64_t* idx, float* val) {
    const float* row = x.data + r * m;
    int64_t w = 0;
    for (int64_t c = 0; c < m; ++c) {
      const float v = row[c];
      if (v > thr[c * Step] && v > 0.0f) {
        idx[w] = c;
        val[w] = v;
        ++w;
      }
    }
  });
}

py::tuple threshold_select(const FloatArray& pre, const FloatArray& threshold) {
  const MatrixView x = matrix_view(pre, "pre");
  const bool scalar = threshold.size() == 1 && threshold.ndim() <= 1;
  require(scalar || (threshold.ndim() == 1 && threshold.shape(0) == x.cols),
          "threshold must be a scalar or a 1-D array of length d_sae = " + std::to_string(x.cols));
  return scalar ? select_above<0>(x, threshold.data()) : select_above<1>(x, threshold.data());
}

}  // namespace

void register_threshold_select(py::module_& m) {
  m.def("threshold_select", &threshold_select, py::arg("pre"), py::arg("threshold"),
        "Keep entries of a float32 [n, m] array that are > threshold (scalar or [m]) and > 0. "
        "Returns (row_offsets[n+1], latent_indices[nnz], values[nnz]).");
}

}  // namespace sae_fast
