// The sae_fast._C module: one register_<op> call per op file. To add an op, write
// csrc/<op>.cpp exposing `void register_<op>(pybind11::module_&)`, then declare and call it here.
#include <pybind11/pybind11.h>

#include "common.h"

namespace sae_fast {
void register_batch_topk_select(pybind11::module_& m);
void register_topk_select(pybind11::module_& m);
void register_threshold_select(pybind11::module_& m);
void register_sparse_decode(pybind11::module_& m);
void register_nested_sparse_decode(pybind11::module_& m);
void register_sparse_row_dots(pybind11::module_& m);
void register_sparse_transpose_matmul(pybind11::module_& m);
void register_union_find(pybind11::module_& m);
}  // namespace sae_fast

PYBIND11_MODULE(_C, m) {
  m.doc() = "sae_fast CPU kernels (OpenMP, float32 values, int64 indices, numpy buffers).";
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
  // The ops use OpenMP's thread count of the calling thread; the Python wrappers set it to
  // torch.get_num_threads() so torch.set_num_threads governs both libraries.
  m.def("set_num_threads", [](int n) {
    sae_fast::require(n >= 1, "set_num_threads needs n >= 1");
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
  }, pybind11::arg("n"));
  m.def("get_num_threads", &sae_fast::max_threads);
  sae_fast::register_batch_topk_select(m);
  sae_fast::register_topk_select(m);
  sae_fast::register_threshold_select(m);
  sae_fast::register_sparse_decode(m);
  sae_fast::register_nested_sparse_decode(m);
  sae_fast::register_sparse_row_dots(m);
  sae_fast::register_sparse_transpose_matmul(m);
  sae_fast::register_union_find(m);
}
