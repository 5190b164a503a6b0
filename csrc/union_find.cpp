// Connected components of an undirected graph by union-find (union by size, path halving).
//
// Used to group SAE latents into swappable sets: nodes are the latents of two SAEs, edges the
// pairs whose decoder cosine clears the threshold. Edge lists reach millions of pairs for large
// dictionaries, where a Python loop over edges is the bottleneck; this is one pass, near O(E).
//
// Labels are canonical: every node is labelled by the smallest node index in its component, so
// the result does not depend on edge order and matches the Python reference exactly.

#include <string>
#include <utility>
#include <vector>

#include "common.h"

namespace sae_fast {

namespace {

int64_t find_root(std::vector<int64_t>& parent, int64_t x) {
  while (parent[x] != x) {
    parent[x] = parent[parent[x]];  // path halving keeps trees shallow without recursion
    x = parent[x];
  }
  return x;
}

// Every endpoint is checked before the GIL is released, so the union loop indexes without checks.
void check_endpoints(const int64_t* endpoints, int64_t n_edges, int64_t n_nodes, const char* name) {
  for (int64_t e = 0; e < n_edges; ++e) {
    require(endpoints[e] >= 0 && endpoints[e] < n_nodes,
            std::string(name) + "[" + std::to_string(e) + "] = " + std::to_string(endpoints[e]) +
                " lies outside [0, n_nodes = " + std::to_string(n_nodes) + ")");
  }
}

py::array_t<int64_t> connected_components(int64_t n_nodes, const IndexArray& u, const IndexArray& v) {
  require(n_nodes >= 0, "n_nodes must be non-negative, got " + std::to_string(n_nodes));
  require(u.ndim() == 1 && v.ndim() == 1 && u.shape(0) == v.shape(0),
          "edge endpoint arrays u and v must be 1-D and of equal length");
  const int64_t n_edges = u.shape(0);
  const int64_t* pu = u.data();
  const int64_t* pv = v.data();
  check_endpoints(pu, n_edges, n_nodes, "u");
  check_endpoints(pv, n_edges, n_nodes, "v");
  std::vector<int64_t> parent(n_nodes), size(n_nodes, 1);
  py::array_t<int64_t> labels(n_nodes);
  int64_t* out = labels.mutable_data();
  {
    py::gil_scoped_release release;
    for (int64_t i = 0; i < n_nodes; ++i) parent[i] = i;
    for (int64_t e = 0; e < n_edges; ++e) {
      int64_t a = find_root(parent, pu[e]);
      int64_t b = find_root(parent, pv[e]);
      if (a == b) continue;
      if (size[a] < size[b]) std::swap(a, b);
      parent[b] = a;
      size[a] += size[b];
    }
    // Canonical label: the smallest member. Scanning nodes in ascending order, the first member
    // seen of each root's component is its smallest.
    std::vector<int64_t> smallest(n_nodes, -1);
    for (int64_t i = 0; i < n_nodes; ++i) {
      const int64_t r = find_root(parent, i);
      if (smallest[r] < 0) smallest[r] = i;
      out[i] = smallest[r];
    }
  }
  return labels;
}

}  // namespace

void register_union_find(py::module_& m) {
  m.def("connected_components", &connected_components, py::arg("n_nodes"), py::arg("u"), py::arg("v"),
        "Label every node of an undirected graph by the smallest node index in its component.");
}

}  // namespace sae_fast

#ifdef SAE_FAST_UNION_FIND_STANDALONE
// Lets tests build this file on its own before the package extension exists.
PYBIND11_MODULE(SAE_FAST_UNION_FIND_STANDALONE, m) { sae_fast::register_union_find(m); }
#endif
