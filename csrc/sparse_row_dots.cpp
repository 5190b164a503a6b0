// Sparse row dots: out[j] = <A[token(j)], W[latent(j)]> for every kept entry j.
#include "common.h"

namespace sae_fast {
namespace {

// Eight independent accumulators let the compiler vectorise without -ffast-math reassociation.
inline float dot(const float* __restrict__ a, const float* __restrict__ b, int64_t d) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= d; c += 8) {
    for (int u = 0; u < 8; ++u) acc[u] += a[c + u] * b[c + u];
  }
  float tail = 0.0f;
  for (; c < d; ++c) tail += a[c] * b[c];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

py::array_t<float> sparse_row_dots(const IndexArray& row_offsets, const IndexArray& latent_indices,
                                   const FloatArray& A, const FloatArray& W) {
  const MatrixView a = matrix_view(A, "A");
  const MatrixView w = matrix_view(W, "W");
  const CsrView csr = csr_view(row_offsets, latent_indices, w.rows);
  require(a.rows == csr.n_tokens,
          "A must have one row per token (" + std::to_string(csr.n_tokens) + "), got " + std::to_string(a.rows));
  require(a.cols == w.cols, "A and W must have the same number of columns, got " + std::to_string(a.cols) +
                                " and " + std::to_string(w.cols));
  const int64_t n = csr.n_tokens, d = a.cols;
  py::array_t<float> out(csr.nnz);
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(dynamic, 16) if (csr.nnz * d > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      const float* arow = a.data + i * d;
      for (int64_t j = csr.row_offsets[i]; j < csr.row_offsets[i + 1]; ++j) {
        o[j] = dot(arow, w.data + csr.latent_indices[j] * d, d);
      }
    }
  }
  return out;
}

}  // namespace

void register_sparse_row_dots(py::module_& m) {
  m.def("sparse_row_dots", &sparse_row_dots, py::arg("row_offsets"), py::arg("latent_indices"),
        py::arg("A"), py::arg("W"),
        "out[j] = <A[token(j)], W[latent_indices[j]]>; A float32 [n, d], W float32 [m, d], returns [nnz].");
}

}  // namespace sae_fast
