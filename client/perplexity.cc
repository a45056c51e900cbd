#include "client/perplexity.h"

#include <algorithm>
#include <cmath>

namespace pkm::cli {

std::vector<ScoreWindowRequest> PlanChunks(int n_tokens, int ctx, int bos_id) {
  std::vector<ScoreWindowRequest> plan;
  if (ctx < 4) return plan;
  const int first = ctx / 2;
  for (int begin = 0; begin + ctx <= n_tokens; begin += ctx) {
    // Log-probability i of the request is that of its token i + 1: tokens first + 1 .. ctx - 1.
    plan.push_back({.begin = begin, .end = begin + ctx, .first_token = bos_id,
                    .take = ctx - 1 - first});
  }
  return plan;
}

std::vector<ScoreWindowRequest> PlanStride(int n_tokens, int ctx, int stride) {
  std::vector<ScoreWindowRequest> plan;
  if (n_tokens < 2 || ctx < 2 || stride < 1 || stride >= ctx) return plan;
  int scored_until = 1;  // token 0 is context only
  for (int begin = 0;; begin += stride) {
    const int end = std::min(begin + ctx, n_tokens);
    plan.push_back({.begin = begin, .end = end, .first_token = -1, .take = end - scored_until});
    if (end == n_tokens) break;
    scored_until = end;
  }
  return plan;
}

PerplexityStats Summarize(const std::vector<float>& logprobs) {
  PerplexityStats s;
  s.count = static_cast<long>(logprobs.size());
  if (s.count == 0) return s;
  double sum = 0, sum_sq = 0;
  for (float lp : logprobs) {
    const double nll = -static_cast<double>(lp);
    sum += nll;
    sum_sq += nll * nll;
  }
  const double n = static_cast<double>(s.count);
  s.mean_nll = sum / n;
  s.perplexity = std::exp(s.mean_nll);
  if (s.count > 1) {
    const double variance = std::max(0.0, sum_sq / n - s.mean_nll * s.mean_nll);
    s.mean_nll_error = std::sqrt(variance / (n - 1));
  }
  s.perplexity_error = s.perplexity * s.mean_nll_error;
  return s;
}

}  // namespace pkm::cli
