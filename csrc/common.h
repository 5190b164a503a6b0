// Shared plumbing for the sae_fast CPU ops: array views, input checks, CSR emission, OpenMP shims.
//
// The ops take numpy arrays (zero-copy views of contiguous torch tensors) instead of torch tensors
// so the extension never includes the PyTorch headers and builds in seconds.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace sae_fast {

namespace py = pybind11;

// forcecast only ever copies when a caller passes the wrong dtype or a strided view; the Python
// wrappers hand over contiguous float32/int64 tensors, so in practice these are zero-copy.
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

// Below this many scalar operations a parallel region costs more than it saves.
constexpr int64_t kParallelGrain = 1 << 15;

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int num_threads_in_region() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// std::invalid_argument is translated to Python's ValueError by pybind11.
inline void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

struct MatrixView {
  const float* data;
  int64_t rows;
  int64_t cols;
};

inline MatrixView matrix_view(const FloatArray& a, const char* name) {
  require(a.ndim() == 2, std::string(name) + " must be 2-D, got " + std::to_string(a.ndim()) + "-D");
  return {a.data(), static_cast<int64_t>(a.shape(0)), static_cast<int64_t>(a.shape(1))};
}

// A validated CSR pattern: after construction every offset and latent index is in range, so the
// kernels can index without further checks (a bad pattern would otherwise read out of bounds).
struct CsrView {
  const int64_t* row_offsets;
  const int64_t* latent_indices;
  int64_t n_tokens;
  int64_t nnz;
};

inline CsrView csr_view(const IndexArray& row_offsets, const IndexArray& latent_indices, int64_t d_sae) {
  require(row_offsets.ndim() == 1 && row_offsets.shape(0) >= 1,
          "row_offsets must be a 1-D array of length n_tokens + 1");
  require(latent_indices.ndim() == 1, "latent_indices must be 1-D");
  CsrView v{row_offsets.data(), latent_indices.data(), static_cast<int64_t>(row_offsets.shape(0)) - 1,
            static_cast<int64_t>(latent_indices.shape(0))};
  require(v.row_offsets[0] == 0, "row_offsets[0] must be 0");
  require(v.row_offsets[v.n_tokens] == v.nnz,
          "row_offsets[-1] (" + std::to_string(v.row_offsets[v.n_tokens]) +
              ") must equal the number of entries (" + std::to_string(v.nnz) + ")");
  for (int64_t i = 0; i < v.n_tokens; ++i) {
    require(v.row_offsets[i] <= v.row_offsets[i + 1], "row_offsets must be non-decreasing");
  }
  bool in_range = true;
  const int64_t* idx = v.latent_indices;
  const int64_t nnz = v.nnz;
#pragma omp parallel for reduction(&& : in_range) if (nnz > kParallelGrain)
  for (int64_t j = 0; j < nnz; ++j) in_range = in_range && idx[j] >= 0 && idx[j] < d_sae;
  require(in_range, "latent_indices must lie in [0, " + std::to_string(d_sae) + ")");
  return v;
}

// The decode ops' per-entry values and optional bias, checked against the pattern and W's width.
inline const float* decode_values(const FloatArray& values, const CsrView& csr) {
  require(values.ndim() == 1 && values.shape(0) == csr.nnz,
          "values must be 1-D with one entry per latent index (" + std::to_string(csr.nnz) + ")");
  return values.data();
}

inline const float* decode_bias(const std::optional<FloatArray>& bias, int64_t d) {
  if (!bias) return nullptr;
  require(bias->ndim() == 1 && bias->shape(0) == d, "bias must be 1-D of length d = " + std::to_string(d));
  return bias->data();
}

// Exclusive prefix sum of per-row counts into row offsets (n + 1 entries).
inline void counts_to_offsets(const std::vector<int64_t>& counts, int64_t* offsets) {
  offsets[0] = 0;
  for (size_t i = 0; i < counts.size(); ++i) offsets[i + 1] = offsets[i] + counts[i];
}

// Builds the (row_offsets, latent_indices, values) triple from per-row counts. `fill_row(row,
// idx_out, val_out)` writes exactly counts[row] entries in ascending latent order; rows are filled
// in parallel without the GIL because each owns a disjoint output slice. Call with the GIL held.
template <class FillRow>
py::tuple emit_csr(const std::vector<int64_t>& counts, int64_t work, FillRow fill_row) {
  const int64_t n = static_cast<int64_t>(counts.size());
  py::array_t<int64_t> offsets(n + 1);
  int64_t* off = offsets.mutable_data();
  counts_to_offsets(counts, off);
  const int64_t nnz = off[n];
  py::array_t<int64_t> latent_indices(nnz);
  py::array_t<float> values(nnz);
  int64_t* idx = latent_indices.mutable_data();
  float* val = values.mutable_data();
  {
    py::gil_scoped_release release;
#pragma omp parallel for schedule(static) if (work > kParallelGrain)
    for (int64_t r = 0; r < n; ++r) {
      if (counts[r] > 0) fill_row(r, idx + off[r], val + off[r]);
    }
  }
  return py::make_tuple(offsets, latent_indices, values);
}

// The selection rule shared by the top-k ops: keep entries strictly above `cut`, then the first
// `ties` entries equal to `cut` in column order (ties go to the lower flat index).
inline int64_t count_above(const float* row, int64_t m, float cut, int64_t* equal) {
  int64_t gt = 0, eq = 0;
  for (int64_t c = 0; c < m; ++c) {
    const float v = row[c];
    gt += v > cut;
    eq += v == cut;
  }
  *equal = eq;
  return gt;
}

// Blocks of 8 with no entry >= cut (almost all of a row, since few entries are kept) are skipped
// with one branch; the compare loop vectorises.
inline void write_above(const float* row, int64_t m, float cut, int64_t ties, int64_t* idx, float* val) {
  int64_t w = 0;
  for (int64_t start = 0; start < m; start += 8) {
    const int64_t stop = std::min(start + 8, m);
    int any = 0;
    for (int64_t c = start; c < stop; ++c) any |= row[c] >= cut;
    if (!any) continue;
    for (int64_t c = start; c < stop; ++c) {
      const float v = row[c];
      if (v > cut || (v == cut && ties > 0)) {
        ties -= (v == cut);
        idx[w] = c;
        val[w] = v;
        ++w;
      }
    }
  }
}

}  // namespace sae_fast
