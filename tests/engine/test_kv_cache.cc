#include "engine/kv_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace pkm {
namespace {

TEST(KvCacheTest, ReservesWholeBlocksAndFreesThem) {
  KvCache kv(/*heads=*/2, /*head_dim=*/4, /*num_blocks=*/5);
  EXPECT_EQ(kv.free_blocks(), 5);
  ASSERT_TRUE(kv.Reserve(1, 1));
  EXPECT_EQ(kv.BlockTable(1).size(), 1u);
  ASSERT_TRUE(kv.Reserve(1, KvCache::kBlockSize));  // still one block
  EXPECT_EQ(kv.used_blocks(), 1);
  ASSERT_TRUE(kv.Reserve(1, KvCache::kBlockSize + 1));
  EXPECT_EQ(kv.used_blocks(), 2);
  ASSERT_TRUE(kv.Reserve(2, 3 * KvCache::kBlockSize));
  EXPECT_DOUBLE_EQ(kv.usage(), 1.0);
  std::set<int32_t> ids(kv.BlockTable(1).begin(), kv.BlockTable(1).end());
  ids.insert(kv.BlockTable(2).begin(), kv.BlockTable(2).end());
  EXPECT_EQ(ids.size(), 5u) << "a block was handed out twice";
  kv.Release(1);
  EXPECT_EQ(kv.free_blocks(), 2);
  EXPECT_FALSE(kv.Contains(1));
  EXPECT_TRUE(kv.BlockTable(1).empty());
}

TEST(KvCacheTest, FailedReserveChangesNothing) {
  KvCache kv(1, 8, 2);
  ASSERT_TRUE(kv.Reserve(1, 20));
  EXPECT_EQ(kv.BlocksNeeded(2, 17), 2);
  EXPECT_FALSE(kv.Reserve(2, 17));
  EXPECT_FALSE(kv.Contains(2));
  EXPECT_EQ(kv.free_blocks(), 0);
  EXPECT_FALSE(kv.Reserve(1, 33));
  EXPECT_EQ(kv.BlockTable(1).size(), 2u);
  kv.Release(42);  // unknown ids are ignored
  EXPECT_EQ(kv.used_blocks(), 2);
}

TEST(KvCacheTest, SizesFollowTheModel) {
  EXPECT_EQ(KvCache::BytesPerPosition(6, 8, 32), 2u * 6 * 8 * 32 * sizeof(float));
  KvCache kv(8, 32, 10);
  EXPECT_EQ(kv.floats_per_layer(), 10u * KvCache::kBlockSize * 8 * 32);
}

}  // namespace
}  // namespace pkm
