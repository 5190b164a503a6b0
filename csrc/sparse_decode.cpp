// Sparse decode: out[i] = bias + sum_{j in row i} values[j] * W[latent(j)], parallel over tokens.
#include <pybind11/stl.h>

#include "common.h"

namespace sae_fast {
namespace {

py::array_t<float> sparse_decode(const IndexArray& row_offsets, const IndexArray& latent_indices,
                                 const FloatArray& values, const FloatArray& W,
                                 const std::optional<FloatArray>& bias) {
  const MatrixView w = matrix_view(W, "W");
  const CsrView csr = csr_view(row_offsets, latent_indices, w.rows);
  const float* vals = decode_values(values, csr);
  const float* b = decode_bias(bias, w.cols);
  const int64_t n = csr.n_tokens, d = w.cols;
  py::array_t<float> out({n, d});
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(dynamic, 16) if ((csr.nnz + n) * d > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      float* __restrict__ row = o + i * d;
      if (b) {
        std::copy(b, b + d, row);
      } else {
        std::fill(row, row + d, 0.0f);
      }
      for (int64_t j = csr.row_offsets[i]; j < csr.row_offsets[i + 1]; ++j) {
        const float v = vals[j];
        const float* __restrict__ wrow = w.data + csr.latent_indices[j] * d;
        for (int64_t c = 0; c < d; ++c) row[c] += v * wrow[c];
      }
    }
  }
  return out;
}

}  // namespace

void register_sparse_decode(py::module_& m) {
  m.def("sparse_decode", &sparse_decode, py::arg("row_offsets"), py::arg("latent_indices"),
        py::arg("values"), py::arg("W"), py::arg("bias") = py::none(),
        "out[i] = bias + sum_{j in row i} values[j] * W[latent_indices[j]]; W float32 [m, d], "
        "returns float32 [n, d].");
}

}  // namespace sae_fast
