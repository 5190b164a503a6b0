// Sparse transpose matmul: out[l] = sum_{j : latent(j) = l} values[j] * A[token(j)].
//
// With `transposed`, the result is written as [d, d_sae] (out[:, l]) instead: the encoder's weight
// gradient has W_enc's [d_in, d_sae] layout, and transposing a [d_sae, d] result costs a full pass
// over it (about 50 ms at d_sae = 24576 on 2 cores).
//
// A scatter over tokens would need atomics or per-thread [m, d] buffers and would make the float
// summation order depend on scheduling. Instead a stable counting sort groups entries by latent,
// and each thread owns whole output rows: deterministic for any thread count, no atomics.
#include "common.h"

namespace sae_fast {
namespace {

// 16 floats: one 64-byte cache line of a transposed output row per column.
constexpr int64_t kLatentsPerTask = 16;

py::array_t<float> sparse_transpose_matmul(const IndexArray& row_offsets, const IndexArray& latent_indices,
                                           const FloatArray& values, const FloatArray& A, int64_t d_sae,
                                           bool transposed) {
  require(d_sae >= 0, "d_sae must be >= 0, got " + std::to_string(d_sae));
  const MatrixView a = matrix_view(A, "A");
  const CsrView csr = csr_view(row_offsets, latent_indices, d_sae);
  require(values.ndim() == 1 && values.shape(0) == csr.nnz,
          "values must be 1-D with one entry per latent index (" + std::to_string(csr.nnz) + ")");
  require(a.rows == csr.n_tokens,
          "A must have one row per token (" + std::to_string(csr.n_tokens) + "), got " + std::to_string(a.rows));
  const int64_t n = csr.n_tokens, d = a.cols, nnz = csr.nnz;
  py::array_t<float> out = transposed ? py::array_t<float>({d, d_sae}) : py::array_t<float>({d_sae, d});
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
    // Each task owns kLatentsPerTask whole output rows: summed in a local buffer, then written as
    // rows, or as kLatentsPerTask-float runs of every column when transposed (one cache line each).
    const int64_t n_tasks = (d_sae + kLatentsPerTask - 1) / kLatentsPerTask;
#pragma omp parallel for schedule(dynamic, 1) if ((nnz + d_sae) * d > kParallelGrain)
    for (int64_t task = 0; task < n_tasks; ++task) {
      const int64_t first = task * kLatentsPerTask, count = std::min(kLatentsPerTask, d_sae - first);
      std::vector<float> rows(transposed ? count * d : 0);
      for (int64_t r = 0; r < count; ++r) {
        const int64_t l = first + r;
        float* __restrict__ row = transposed ? rows.data() + r * d : o + l * d;
        std::fill(row, row + d, 0.0f);
        for (int64_t s = start[l]; s < start[l + 1]; ++s) {
          const int64_t j = by_latent[s];
          const float v = vals[j];
          const float* __restrict__ arow = a.data + token[j] * d;
          for (int64_t c = 0; c < d; ++c) row[c] += v * arow[c];
        }
      }
      if (transposed) {
        for (int64_t c = 0; c < d; ++c) {
          for (int64_t r = 0; r < count; ++r) o[c * d_sae + first + r] = rows[r * d + c];
        }
      }
    }
  }
  return out;
}

}  // namespace

void register_sparse_transpose_matmul(py::module_& m) {
  m.def("sparse_transpose_matmul", &sparse_transpose_matmul, py::arg("row_offsets"),
        py::arg("latent_indices"), py::arg("values"), py::arg("A"), py::arg("d_sae"), py::arg("transposed") = false,
        "out[l] = sum_{j: latent_indices[j] = l} values[j] * A[token(j)]; A float32 [n, d], returns "
        "float32 [d_sae, d], or its transpose [d, d_sae] with transposed=True.");
}

}  // namespace sae_fast
