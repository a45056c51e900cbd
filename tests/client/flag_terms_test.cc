// The server's messages in the terms of pkm's flags: whole field names only.
#include <gtest/gtest.h>

#include "client/connection.h"

namespace pkm::cli {
namespace {

const FlagTerms kTerms = {{"max_new_tokens", "--max-tokens"}, {"truncate", "--truncate"},
                          {"stop", "--stop"}};

TEST(InFlagTerms, ReplacesWholeFieldNames) {
  EXPECT_EQ(InFlagTerms("max_new_tokens must be in [1, 255] (the server's "
                        "limits.max_new_tokens; 0: as many as fit), got 9",
                        kTerms),
            "--max-tokens must be in [1, 255] (the server's limits.max_new_tokens; 0: as many "
            "as fit), got 9");
  EXPECT_EQ(InFlagTerms("set truncate to keep the last tokens", kTerms),
            "set --truncate to keep the last tokens");
  EXPECT_EQ(InFlagTerms("stop[1] must be 1 to 64 bytes", kTerms), "--stop[1] must be 1 to 64 bytes");
}

TEST(InFlagTerms, LeavesPartsOfOtherWordsAlone) {
  EXPECT_EQ(InFlagTerms("nonstop truncated stops", kTerms), "nonstop truncated stops");
  EXPECT_EQ(InFlagTerms("--stop and max_new_tokens_x", kTerms), "--stop and max_new_tokens_x");
  EXPECT_EQ(InFlagTerms("no terms here", {}), "no terms here");
}

}  // namespace
}  // namespace pkm::cli
