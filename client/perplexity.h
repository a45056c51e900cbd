// Perplexity the two ways people compute it, as windows of Score requests, and its statistics.
//
//   chunks  (llama.cpp's llama-perplexity) non-overlapping chunks of ctx tokens, the first token
//           of each replaced by BOS; only the second half of each chunk is scored, so every
//           scored token has at least ctx/2 tokens of context. A trailing partial chunk is
//           dropped.
//   stride  (Hugging Face's sliding window) windows of at most ctx tokens starting stride
//           apart; each scores the tokens no earlier window scored, so every token after the
//           first is scored once, with up to ctx - stride tokens of context.
#pragma once

#include <cstdint>
#include <vector>

namespace pkm::cli {

// One Score request: tokens[begin, end) (with tokens[begin] replaced by `first_token` when it is
// >= 0); its last `take` log-probabilities are kept.
struct ScoreWindowRequest {
  int begin = 0;
  int end = 0;
  int first_token = -1;
  int take = 0;
};

// Chunks of ctx >= 4 tokens; empty when n_tokens < ctx.
std::vector<ScoreWindowRequest> PlanChunks(int n_tokens, int ctx, int bos_id);
// Windows for n_tokens >= 2, ctx >= 2, stride in [1, ctx - 1]; empty otherwise.
std::vector<ScoreWindowRequest> PlanStride(int n_tokens, int ctx, int stride);

struct PerplexityStats {
  long count = 0;
  double mean_nll = 0;    // mean negative log-likelihood (nats per token)
  double perplexity = 0;  // exp(mean_nll)
  // Standard error of the mean NLL, sqrt(var / (n - 1)) with var the population variance of
  // the per-token NLLs (0 for one token), carried to the perplexity to first order:
  // ppl_error = perplexity * mean_nll_error. This is how llama-perplexity reports "+/-".
  double mean_nll_error = 0;
  double perplexity_error = 0;
};

// From per-token log-probabilities (nll = -logprob), accumulated in double.
PerplexityStats Summarize(const std::vector<float>& logprobs);

}  // namespace pkm::cli
