// Window plans of pkm score and its perplexity statistics, against values worked out by hand.
#include "client/perplexity.h"

#include <gtest/gtest.h>

#include <cmath>

#include "client/bench_stats.h"

namespace pkm::cli {
namespace {

TEST(PlanChunks, ScoresTheSecondHalfOfWholeChunks) {
  const auto plan = PlanChunks(/*n_tokens=*/21, /*ctx=*/8, /*bos_id=*/1);
  ASSERT_EQ(plan.size(), 2u);  // the trailing 5 tokens do not make a chunk
  EXPECT_EQ(plan[0].begin, 0);
  EXPECT_EQ(plan[0].end, 8);
  EXPECT_EQ(plan[1].begin, 8);
  EXPECT_EQ(plan[1].first_token, 1);
  EXPECT_EQ(plan[1].take, 3);  // tokens 5, 6, 7 of the chunk, each after >= 4 of context
  EXPECT_TRUE(PlanChunks(7, 8, 1).empty());
  EXPECT_TRUE(PlanChunks(100, 3, 1).empty());
}

TEST(PlanStride, ScoresEveryTokenAfterTheFirstOnce) {
  for (int n : {2, 9, 10, 11, 100}) {
    for (auto [ctx, stride] : {std::pair{4, 1}, {4, 3}, {10, 5}, {256, 128}}) {
      const auto plan = PlanStride(n, ctx, stride);
      ASSERT_FALSE(plan.empty());
      int scored = 0;
      int next_target = 1;
      for (const auto& w : plan) {
        EXPECT_LE(w.end - w.begin, ctx);
        EXPECT_LE(w.take, w.end - w.begin - 1);  // a window never scores its first token
        EXPECT_EQ(w.end - w.take, next_target);
        next_target = w.end;
        scored += w.take;
      }
      EXPECT_EQ(scored, n - 1) << n << " " << ctx << " " << stride;
    }
  }
  const auto plan = PlanStride(10, 4, 2);  // windows [0,4) [2,6) [4,8) [6,10)
  ASSERT_EQ(plan.size(), 4u);
  EXPECT_EQ(plan[1].begin, 2);
  EXPECT_EQ(plan[1].take, 2);
  EXPECT_TRUE(PlanStride(10, 4, 4).empty());
}

TEST(Summarize, PerplexityAndItsStandardError) {
  // NLLs 1, 2, 3: mean 2, population variance 2/3, stderr sqrt((2/3) / 2).
  const PerplexityStats s = Summarize({-1.0f, -2.0f, -3.0f});
  EXPECT_EQ(s.count, 3);
  EXPECT_DOUBLE_EQ(s.mean_nll, 2.0);
  EXPECT_DOUBLE_EQ(s.perplexity, std::exp(2.0));
  EXPECT_NEAR(s.mean_nll_error, std::sqrt(1.0 / 3.0), 1e-12);
  EXPECT_NEAR(s.perplexity_error, std::exp(2.0) * std::sqrt(1.0 / 3.0), 1e-9);
  EXPECT_EQ(Summarize({-0.5f}).mean_nll_error, 0.0);
  EXPECT_EQ(Summarize({}).count, 0);
}

// 1, 2, ..., 100 ms in shuffled order: numpy.percentile gives 50.5, 90.1 and 99.01.
TEST(LatencyStats, PercentilesInterpolateBetweenClosestRanks) {
  std::vector<double> samples;
  for (int i = 0; i < 100; ++i) samples.push_back((i * 37) % 100 + 1);  // a permutation
  for (double& x : samples) x /= 1000.0;
  const LatencySummary s = SummarizeLatencies(samples);
  EXPECT_EQ(s.count, 100);
  EXPECT_NEAR(s.mean, 0.0505, 1e-12);
  EXPECT_NEAR(s.p50, 0.0505, 1e-12);
  EXPECT_NEAR(s.p90, 0.0901, 1e-12);
  EXPECT_NEAR(s.p99, 0.09901, 1e-12);
  EXPECT_NEAR(s.max, 0.1, 1e-12);
  EXPECT_EQ(Percentile({}, 50), 0.0);
  EXPECT_EQ(Percentile({7.0}, 99), 7.0);
  EXPECT_EQ(SummarizeLatencies({}).count, 0);
}

}  // namespace
}  // namespace pkm::cli
