// PkmUsageWindow: coverage and KL to uniform against their definitions, recomputed from
// scratch over the window's tokens.
#include "engine/pkm_usage.h"

#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <random>
#include <set>
#include <utility>
#include <vector>

namespace pkm {
namespace {

TEST(PkmUsageWindow, HandComputedValues) {
  PkmUsageWindow u(/*n_slots=*/4, /*ids_per_token=*/1, /*window_tokens=*/4);
  EXPECT_EQ(u.Coverage(), 0.0);
  EXPECT_EQ(u.KlToUniform(), 0.0);  // nothing seen: defined as 0
  const int32_t ids[] = {0, 1};
  const float w[] = {1.0f, 1.0f};
  u.Add(ids, w, 2);
  EXPECT_DOUBLE_EQ(u.Coverage(), 0.5);
  // p = (1/2, 1/2, 0, 0): log 4 + 2 * (1/2) log(1/2) = log 2.
  EXPECT_NEAR(u.KlToUniform(), std::log(2.0), 1e-12);
  const int32_t more[] = {2, 3};
  u.Add(more, w, 2);
  EXPECT_DOUBLE_EQ(u.Coverage(), 1.0);
  EXPECT_NEAR(u.KlToUniform(), 0.0, 1e-12);  // uniform
  // Two more tokens on slot 0 evict the tokens on slots 0 and 1: p = (2/4, 0, 1/4, 1/4).
  const int32_t zeros[] = {0, 0};
  u.Add(zeros, w, 2);
  EXPECT_EQ(u.tokens(), 4);
  EXPECT_DOUBLE_EQ(u.Coverage(), 0.75);
  EXPECT_NEAR(u.KlToUniform(), std::log(4.0) + 0.5 * std::log(0.5) + 0.5 * std::log(0.25), 1e-12);
}

// Random lookups (heads * knn ids per token, weights a softmax per head), added in calls of
// random sizes, against a from-scratch computation over the last window_tokens tokens.
TEST(PkmUsageWindow, MatchesRecomputationOverTheWindow) {
  const int n_slots = 300, heads = 2, knn = 4, per_token = heads * knn, window = 37;
  PkmUsageWindow u(n_slots, per_token, window);
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> slot(0, n_slots - 1), call_tokens(1, 50);
  std::uniform_real_distribution<float> score(-2.0f, 2.0f);
  std::deque<std::vector<std::pair<int32_t, float>>> recent;
  for (int call = 0; call < 60; ++call) {
    const int tokens = call_tokens(rng);
    std::vector<int32_t> ids;
    std::vector<float> weights;
    for (int t = 0; t < tokens; ++t) {
      std::vector<std::pair<int32_t, float>> token;
      for (int h = 0; h < heads; ++h) {
        std::set<int32_t> distinct;  // a head selects knn distinct slots
        while (static_cast<int>(distinct.size()) < knn) distinct.insert(slot(rng));
        std::vector<float> e;
        float sum = 0;
        for (int j = 0; j < knn; ++j) sum += e.emplace_back(std::exp(score(rng)));
        int j = 0;
        for (int32_t id : distinct) {
          ids.push_back(id);
          weights.push_back(e[j++] / sum);
          token.emplace_back(id, weights.back());
        }
      }
      recent.push_back(token);
      if (static_cast<int>(recent.size()) > window) recent.pop_front();
    }
    u.Add(ids.data(), weights.data(), tokens);

    std::vector<double> z(n_slots, 0.0);
    for (const auto& token : recent) {
      for (const auto& [id, w] : token) z[id] += w;
    }
    double total = 0, hit = 0;
    for (double v : z) {
      total += v;
      hit += v > 0 ? 1 : 0;
    }
    double kl = 0;
    for (double v : z) {
      if (v > 0) kl += (v / total) * std::log((v / total) * n_slots);
    }
    ASSERT_EQ(u.tokens(), static_cast<int>(recent.size()));
    EXPECT_DOUBLE_EQ(u.Coverage(), hit / n_slots) << "call " << call;
    EXPECT_NEAR(u.KlToUniform(), kl, 1e-9) << "call " << call;
  }
}

}  // namespace
}  // namespace pkm
