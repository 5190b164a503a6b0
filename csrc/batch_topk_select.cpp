// BatchTopK selection: keep the k_total largest positive entries of the whole [n, m] batch.
//
// O(n*m), no sort, exact. Usually one pass: a random sample bounds the cut from below, one pass
// collects the few entries above the bound, and the cut is selected among them. When the sample
// misleads, an exact radix select runs instead: for positive floats the IEEE-754 bit pattern, read
// as an unsigned integer, is monotonic in the value, so two histogram passes (high 16 bits, then
// the low 16 bits inside the bucket holding the k_total-th largest) find the exact cut. Either
// way ties at the cut are admitted in row-major order, the reference's tie rule.
#include <cmath>
#include <cstring>
#include <functional>

#include "common.h"

namespace sae_fast {
namespace {

inline uint32_t float_bits(float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

inline float bits_to_float(uint32_t b) {
  float v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

constexpr uint32_t kPositiveHighBins = 1u << 15;  // high halves of positive floats (sign bit 0)
constexpr uint32_t kLowBins = 1u << 16;
constexpr int kCopies = 4;

// Bin of v's high 16 bits; entries that are not > 0 (zeros, negatives, NaN) land in bins >= 2^15,
// which are ignored. Arithmetic rather than a branch: half the entries of a ReLU output are zeros,
// and a branch on that mispredicts every other entry.
inline uint32_t high_bin(float v) {
  return (float_bits(v) >> 16) | (static_cast<uint32_t>(!(v > 0.0f)) << 15);
}

// Histogram of bucket(x[i]) over `size` bins. Each thread keeps kCopies interleaved tables so runs
// of one bin (zeros) do not serialise on a single counter, then merges them (O(size * threads)).
template <class Bucket>
std::vector<int64_t> histogram(const float* x, int64_t total, uint32_t size, Bucket bucket) {
  std::vector<int64_t> merged(size, 0);
#pragma omp parallel if (total > kParallelGrain)
  {
    std::vector<int64_t> local(static_cast<size_t>(kCopies) * size, 0);
    int64_t* h = local.data();
    const int threads = num_threads_in_region(), t = thread_id();
    const int64_t begin = total * t / threads, end = total * (t + 1) / threads;
    int64_t i = begin;
    for (; i + kCopies <= end; i += kCopies) {
      for (int u = 0; u < kCopies; ++u) ++h[u * int64_t{size} + bucket(x[i + u])];
    }
    for (; i < end; ++i) ++h[bucket(x[i])];
#pragma omp critical
    for (uint32_t b = 0; b < size; ++b) {
      for (int u = 0; u < kCopies; ++u) merged[b] += h[u * int64_t{size} + b];
    }
  }
  return merged;
}

// Histogram of the low 16 bits of the positive entries whose high 16 bits are `hb`. Few entries
// share the bin of the k_total-th largest, so here a branch is cheap (almost never taken).
std::vector<int64_t> low_histogram(const float* x, int64_t total, uint32_t hb) {
  std::vector<int64_t> merged(kLowBins, 0);
#pragma omp parallel if (total > kParallelGrain)
  {
    std::vector<int64_t> local(kLowBins, 0);
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < total; ++i) {
      const uint32_t b = float_bits(x[i]);
      if ((b >> 16) == hb && x[i] > 0.0f) ++local[b & 0xFFFFu];
    }
#pragma omp critical
    for (uint32_t bin = 0; bin < kLowBins; ++bin) merged[bin] += local[bin];
  }
  return merged;
}

// Walks bins from the top; returns the bin holding the `rank`-th largest (1-based) and sets
// `above` to the number of entries in higher bins.
int64_t bin_of_rank(const std::vector<int64_t>& hist, int64_t rank, int64_t* above) {
  int64_t seen = 0;
  for (int64_t b = static_cast<int64_t>(hist.size()) - 1; b >= 0; --b) {
    if (seen + hist[b] >= rank) {
      *above = seen;
      return b;
    }
    seen += hist[b];
  }
  throw std::logic_error("batch_topk_select: rank exceeds the histogram total");
}

// Exact path, any input: radix select of the cut over the whole batch (four passes).
py::tuple radix_select(const MatrixView& x, int64_t k_total) {
  const int64_t n = x.rows, m = x.cols, total = n * m;
  std::vector<int64_t> counts(n, 0), ties(n, 0);
  float cut = 0.0f;  // keep everything > cut, plus ties[r] entries == cut in row r
  bool keep_any = k_total > 0 && total > 0;
  {
    py::gil_scoped_release release;
    std::vector<int64_t> high;
    int64_t positives = 0;
    if (keep_any) {
      high = histogram(x.data, total, 2 * kPositiveHighBins, [](float v) { return high_bin(v); });
      high.resize(kPositiveHighBins);
      for (int64_t c : high) positives += c;
      keep_any = positives > 0;
    }
    if (keep_any && k_total >= positives) {
      // Budget covers every positive entry: cut = 0 keeps exactly those.
#pragma omp parallel for schedule(static) if (total > kParallelGrain)
      for (int64_t r = 0; r < n; ++r) {
        int64_t eq;
        counts[r] = count_above(x.data + r * m, m, 0.0f, &eq);
      }
    } else if (keep_any) {
      int64_t above_high = 0;
      const int64_t hb = bin_of_rank(high, k_total, &above_high);
      const std::vector<int64_t> low = low_histogram(x.data, total, static_cast<uint32_t>(hb));
      int64_t above_low = 0;
      const int64_t lb = bin_of_rank(low, k_total - above_high, &above_low);
      cut = bits_to_float(static_cast<uint32_t>((hb << 16) | lb));
      int64_t need = k_total - above_high - above_low;  // ties at `cut` still to admit, >= 1
      std::vector<int64_t> equal(n, 0);
#pragma omp parallel for schedule(static) if (total > kParallelGrain)
      for (int64_t r = 0; r < n; ++r) counts[r] = count_above(x.data + r * m, m, cut, &equal[r]);
      for (int64_t r = 0; r < n && need > 0; ++r) {
        ties[r] = std::min(equal[r], need);
        need -= ties[r];
        counts[r] += ties[r];
      }
    }
  }
  return emit_csr(counts, total, [&](int64_t r, int64_t* idx, float* val) {
    write_above(x.data + r * m, m, cut, ties[r], idx, val);
  });
}

// Fast path (one pass over the batch): a random sample gives a lower bound L that about
// 1.1 * k_total + margin entries exceed; one pass collects those candidates (v > L) in row-major
// order, and the exact cut is selected among them. Every entry >= cut is a candidate because
// cut > L, so the result is exact. Fails (returns false) when the sample was unlucky: fewer than
// k_total candidates, or far too many (then the exact radix path runs instead).
struct Candidates {
  std::vector<int64_t> row_offsets, cols, counts, ties;
  std::vector<float> values;
  float cut = 0.0f;
};

inline uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

bool sampled_select(const MatrixView& x, int64_t k_total, Candidates& out) {
  const int64_t n = x.rows, m = x.cols, total = n * m;
  constexpr int64_t kSamples = 1 << 16;
  const int64_t samples = std::min(total, kSamples);
  std::vector<float> sample(samples);
  for (int64_t i = 0; i < samples; ++i) {
    const float v = samples == total ? x.data[i] : x.data[splitmix64(i) % static_cast<uint64_t>(total)];
    sample[i] = v > 0.0f ? v : 0.0f;  // no NaN may reach nth_element (it needs a strict weak order)
  }
  const double expected = static_cast<double>(k_total) * samples / total;
  const int64_t rank = static_cast<int64_t>(1.1 * expected + 4.0 * std::sqrt(expected) + 16.0);
  if (rank >= samples) return false;  // budget near the batch size: the bound would not filter
  std::nth_element(sample.begin(), sample.begin() + rank, sample.end(), std::greater<float>());
  const float bound = std::max(sample[rank], 0.0f);

  const int threads_max = max_threads();
  const int64_t cap_per_thread = 4 * k_total / threads_max + 65536;
  std::vector<std::vector<int64_t>> t_cols(threads_max);
  std::vector<std::vector<float>> t_vals(threads_max);
  std::vector<int64_t> t_first_row(threads_max + 1, n);
  std::vector<char> overflow(threads_max, 0);
  out.counts.assign(n, 0);
#pragma omp parallel if (total > kParallelGrain)
  {
    const int threads = num_threads_in_region(), t = thread_id();
    const int64_t r0 = n * t / threads, r1 = n * (t + 1) / threads;
    t_first_row[t] = r0;
    std::vector<int64_t>& cols = t_cols[t];
    std::vector<float>& vals = t_vals[t];
    for (int64_t r = r0; r < r1 && !overflow[t]; ++r) {
      const float* row = x.data + r * m;
      const size_t before = cols.size();
      for (int64_t start = 0; start < m; start += 8) {
        const int64_t stop = std::min(start + 8, m);
        int any = 0;
        for (int64_t c = start; c < stop; ++c) any |= row[c] > bound;
        if (!any) continue;
        for (int64_t c = start; c < stop; ++c) {
          if (row[c] > bound) {
            cols.push_back(c);
            vals.push_back(row[c]);
          }
        }
      }
      out.counts[r] = static_cast<int64_t>(cols.size() - before);  // candidates for now
      if (static_cast<int64_t>(cols.size()) > cap_per_thread) overflow[t] = 1;
    }
  }
  for (char o : overflow) {
    if (o) return false;
  }
  out.row_offsets.resize(n + 1);
  counts_to_offsets(out.counts, out.row_offsets.data());
  const int64_t found = out.row_offsets[n];
  if (found < k_total) return false;
  out.cols.resize(found);
  out.values.resize(found);
  for (int t = 0; t < threads_max; ++t) {
    if (t_cols[t].empty()) continue;
    const int64_t at = out.row_offsets[t_first_row[t]];
    std::copy(t_cols[t].begin(), t_cols[t].end(), out.cols.begin() + at);
    std::copy(t_vals[t].begin(), t_vals[t].end(), out.values.begin() + at);
  }
  std::vector<float> ranked(out.values);
  std::nth_element(ranked.begin(), ranked.begin() + (k_total - 1), ranked.end(), std::greater<float>());
  out.cut = ranked[k_total - 1];
  int64_t need = k_total;
  std::vector<int64_t> equal(n, 0);
  for (int64_t r = 0; r < n; ++r) {
    int64_t gt = 0, eq = 0;
    for (int64_t j = out.row_offsets[r]; j < out.row_offsets[r + 1]; ++j) {
      gt += out.values[j] > out.cut;
      eq += out.values[j] == out.cut;
    }
    out.counts[r] = gt;
    equal[r] = eq;
    need -= gt;
  }
  out.ties.assign(n, 0);
  for (int64_t r = 0; r < n && need > 0; ++r) {
    out.ties[r] = std::min(equal[r], need);
    need -= out.ties[r];
    out.counts[r] += out.ties[r];
  }
  return true;
}

py::tuple batch_topk_select(const FloatArray& pre, int64_t k_total, bool exact_path) {
  const MatrixView x = matrix_view(pre, "pre");
  require(k_total >= 0, "k_total must be >= 0, got " + std::to_string(k_total));
  if (!exact_path && k_total > 0 && x.rows * x.cols > 0) {
    Candidates cand;
    bool ok;
    {
      py::gil_scoped_release release;
      ok = sampled_select(x, k_total, cand);
    }
    if (ok) {
      return emit_csr(cand.counts, static_cast<int64_t>(cand.values.size()),
                      [&](int64_t r, int64_t* idx, float* val) {
                        int64_t ties = cand.ties[r], w = 0;
                        for (int64_t j = cand.row_offsets[r]; j < cand.row_offsets[r + 1]; ++j) {
                          const float v = cand.values[j];
                          if (v > cand.cut || (v == cand.cut && ties > 0)) {
                            ties -= (v == cand.cut);
                            idx[w] = cand.cols[j];
                            val[w] = v;
                            ++w;
                          }
                        }
                      });
    }
  }
  return radix_select(x, k_total);
}

}  // namespace

void register_batch_topk_select(py::module_& m) {
  m.def("batch_topk_select", &batch_topk_select, py::arg("pre"), py::arg("k_total"),
        py::arg("exact_path") = false,
        "Keep the k_total largest positive entries of a float32 [n, m] array (ties: lower row-major "
        "index). Returns (row_offsets[n+1], latent_indices[nnz], values[nnz]). exact_path=True "
        "skips the sampled fast path (same result; lets tests cover both paths).");
}

}  // namespace sae_fast
