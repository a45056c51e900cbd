// "Did you mean": the nearest known name for a typo, a prefix, or nothing when none is close.
#include "common/nearest_name.h"

#include <gtest/gtest.h>

namespace pkm {
namespace {

const std::vector<std::string> kFlags = {"--max-tokens", "--temperature", "--top-k", "--top-p",
                                         "--max-batch-tokens"};

TEST(NearestName, SuggestsTheClosestForATypo) {
  EXPECT_EQ(NearestName("--temprature", kFlags), "--temperature");
  EXPECT_EQ(NearestName("--max-token", kFlags), "--max-tokens");
  EXPECT_EQ(NearestName("--top-q", kFlags), "--top-k");  // ties go to the first listed
}

TEST(NearestName, APrefixIsANearMiss) {
  EXPECT_EQ(NearestName("--max-batch", kFlags), "--max-batch-tokens");
}

TEST(NearestName, NothingWhenNoNameIsClose) {
  EXPECT_EQ(NearestName("--listen", kFlags), "");
  EXPECT_EQ(NearestName("x", {}), "");
}

}  // namespace
}  // namespace pkm
