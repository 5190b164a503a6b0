// Nested sparse decode: out[l, i] = bias + sum_{j in row i, latent(j) < widths[l]} values[j] * W[latent(j)].
//
// Latents ascend within a row, so one walk over a row's entries meets the levels in order: each
// time the walk crosses a level's end, the running sum so far is that prefix's reconstruction.
// Every level costs one row copy; no entry is decoded twice.
#include <pybind11/stl.h>

#include "common.h"

namespace sae_fast {
namespace {

py::array_t<float> nested_sparse_decode(const IndexArray& row_offsets, const IndexArray& latent_indices,
                                        const FloatArray& values, const FloatArray& W,
                                        const std::optional<FloatArray>& bias, const IndexArray& widths) {
  const MatrixView w = matrix_view(W, "W");
  const CsrView csr = csr_view(row_offsets, latent_indices, w.rows);
  const float* vals = decode_values(values, csr);
  require(widths.ndim() == 1 && widths.shape(0) >= 1, "widths must be a non-empty 1-D array of prefix widths");
  const int64_t n_levels = widths.shape(0);
  const int64_t* ends = widths.data();
  for (int64_t l = 0; l < n_levels; ++l) {
    require(ends[l] > (l ? ends[l - 1] : 0), "widths must be positive and strictly increasing");
  }
  require(ends[n_levels - 1] == w.rows, "the last width must equal d_sae = " + std::to_string(w.rows) +
                                            " (the whole dictionary), got " + std::to_string(ends[n_levels - 1]));
  const float* b = decode_bias(bias, w.cols);
  const int64_t n = csr.n_tokens, d = w.cols;
  py::array_t<float> out({n_levels, n, d});
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(dynamic, 16) if ((csr.nnz + n * n_levels) * d > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      // Accumulate in the last level's row (the full reconstruction), copying it out at each level end.
      float* __restrict__ acc = o + ((n_levels - 1) * n + i) * d;
      if (b) {
        std::copy(b, b + d, acc);
      } else {
        std::fill(acc, acc + d, 0.0f);
      }
      int64_t level = 0;
      for (int64_t j = csr.row_offsets[i]; j < csr.row_offsets[i + 1]; ++j) {
        const int64_t latent = csr.latent_indices[j];
        for (; latent >= ends[level]; ++level) std::copy(acc, acc + d, o + (level * n + i) * d);
        const float v = vals[j];
        const float* __restrict__ wrow = w.data + latent * d;
        for (int64_t c = 0; c < d; ++c) acc[c] += v * wrow[c];
      }
      for (; level < n_levels - 1; ++level) std::copy(acc, acc + d, o + (level * n + i) * d);
    }
  }
  return out;
}

}  // namespace

void register_nested_sparse_decode(py::module_& m) {
  m.def("nested_sparse_decode", &nested_sparse_decode, py::arg("row_offsets"), py::arg("latent_indices"),
        py::arg("values"), py::arg("W"), py::arg("bias"), py::arg("widths"),
        "out[l, i] = bias + sum_{j in row i, latent_indices[j] < widths[l]} values[j] * W[latent_indices[j]]; "
        "W float32 [m, d], widths int64 strictly increasing ending at m; returns float32 [L, n, d].");
}

}  // namespace sae_fast
