// Sparse transpose matmul: out[l] = sum_{j : latent(j) = l} values[j] * A[token(j)].
//
// A scatter over tokens would need atomics or per-thread [m, d] buffers and would make the float
// summation order depend on scheduling. Instead a stable counting sort groups entries by latent,
// and each thread owns whole output rows: deterministic for any thread count, no atomics.
#include "common.h"

namespace sae_fast {
namespace {

py::array_t<float> sparse_transpose_matmul(const IndexArray& row_offsets, const IndexArray& latent_indices,
                                           const FloatArray& values, const FloatArray& A, int64_t d_sae) {
  require(d_sae >= 0, "d_sae must be >= 0, got " + std::to_string(d_sae));
  const MatrixView a = matrix_view(A, "A");
  const CsrView csr = csr_view(row_offsets, latent_indices, d_sae);
  require(values.ndim() == 1 && values.shape(0) == csr.nnz,
          "values must be 1-D with one entry per latent index (" + std::to_string(csr.nnz) + ")");
  require(a.rows == csr.n_tokens,
          "A must have one row per token (" + std::to_string(csr.n_tokens) + "), got " + std::to_string(a.rows));
  const int64_t n = csr.n_tokens, d = a.cols, nnz = csr.nnz;
  py::array_t<float> out({d_sae, d});
  float* o = out.mutable_data();
  const float* vals = values.data();
  {
    py::gil_scoped_release release;
    // Counting sort of entry ids by latent; entries stay in ascending id (token) order per latent.
    std::vector<int64_t> start(d_sae + 1, 0), token(nnz), by_latent(nnz);
    for (int64_t j = 0; j < nnz; ++j) ++start[csr.latent_indices[j] + 1];
    for (int64_t l = 0; l < d_sae; ++l) start[l + 1] += start[l];
    std::vector<int64_t> cursor(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = csr.row_offsets[i]; j < csr.row_offsets[i + 1]; ++j) {
        token[j] = i;
        by_latent[cursor[csr.latent_indices[j]]++] = j;
      }
    }
#pragma omp parallel for schedule(dynamic, 8) if ((nnz + d_sae) * d > kParallelGrain)
    for (int64_t l = 0; l < d_sae; ++l) {
      float* __restrict__ row = o + l * d;
      std::fill(row, row + d, 0.0f);
      for (int64_t s = start[l]; s < start[l + 1]; ++s) {
        const int64_t j = by_latent[s];
        const float v = vals[j];
        const float* __restrict__ arow = a.data + token[j] * d;
        for (int64_t c = 0; c < d; ++c) row[c] += v * arow[c];
      }
    }
  }
  return out;
}

}  // namespace

void register_sparse_transpose_matmul(py::module_& m) {
  m.def("sparse_transpose_matmul", &sparse_transpose_matmul, py::arg("row_offsets"),
        py::arg("latent_indices"), py::arg("values"), py::arg("A"), py::arg("d_sae"),
        "out[l] = sum_{j: latent_indices[j] = l} values[j] * A[token(j)]; A float32 [n, d], returns "
        "float32 [d_sae, d].");
}

}  // namespace sae_fast
