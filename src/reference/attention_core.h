// The arithmetic every reference operation shares: one query row attending to a set of key rows, in Acc precision
// (float or double). V of a key is the first d_v values of its row (MLA "MQA mode": K and V share storage).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace flashmla::ref {

/// Unnormalized state of one row after attending to some keys: m = max scaled logit (natural units; -inf when no
/// key), l = sum exp(logit - m) (0 when no key), o = sum exp(logit - m) * v (d_v values, owned by the caller).
template <typename Acc>
struct RowState {
  Acc m = -std::numeric_limits<Acc>::infinity();
  Acc l = 0;
  bool empty() const { return !(l > 0); }
  Acc lse() const { return m + std::log(l); }  // natural log; only when !empty()
};

template <typename Acc>
inline Acc dot(const Acc* a, const Acc* b, int n) {
  // Eight independent partial sums: vectorizes, and keeps the float32 rounding error small over 576 terms.
  Acc s[8] = {};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
  }
  for (; i < n; ++i) s[0] += a[i] * b[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/// Attends q (d_qk values) to keys [k_begin, k_end) of `keys` (row-major, d_qk per row). Two passes: logits and
/// their max, then exp and P.V. `logits` is scratch of at least k_end - k_begin values; o gets d_v values.
template <typename Acc>
RowState<Acc> attend(const Acc* q, const Acc* keys, int64_t k_begin, int64_t k_end, int d_qk, int d_v, Acc scale,
                     std::vector<Acc>& logits, Acc* o) {
  RowState<Acc> st;
  for (int j = 0; j < d_v; ++j) o[j] = 0;
  const int64_t n = k_end - k_begin;
  if (n <= 0) return st;
  if (static_cast<int64_t>(logits.size()) < n) logits.resize(n);
  for (int64_t k = 0; k < n; ++k) {
    logits[k] = scale * dot(q, keys + (k_begin + k) * d_qk, d_qk);
    if (logits[k] > st.m) st.m = logits[k];
  }
  for (int64_t k = 0; k < n; ++k) {
    const Acc p = std::exp(logits[k] - st.m);
    st.l += p;
    const Acc* v = keys + (k_begin + k) * d_qk;
    for (int j = 0; j < d_v; ++j) o[j] += p * v[j];
  }
  return st;
}

/// Factor the attention sink applies to a row's output: exp(lse) / (exp(lse) + exp(sink)) = 1 / (1 + exp(sink -
/// lse)); 0 for sink = +inf, 1 for sink = -inf.
template <typename Acc>
inline Acc sink_factor(Acc lse, Acc sink) {
  return Acc(1) / (Acc(1) + std::exp(sink - lse));
}

}  // namespace flashmla::ref
