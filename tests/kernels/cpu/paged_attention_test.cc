// PagedAttention: several sequences of different lengths at shuffled block ids, against a dense
// causal attention computed here in double; grouped-query attention against the same cache with
// each kv head repeated for its query heads; batch, chunk and thread-count invariance.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "tests/kernels/cpu/kernel_test_util.h"

namespace pkm::cpu {
namespace {

using testing::AllClose;
using testing::BitwiseEqual;
using testing::RandomFloats;
using testing::ScopedThreads;

// Sequences' keys and values, dense, and a paged cache that holds them at shuffled block ids.
// Cache rows not written yet are NaN: reading one (a position past the token's) shows. Queries
// have `heads` heads, the cache `kv_heads`.
class PagedCache {
 public:
  PagedCache(int heads, int kv_heads, int head_dim, int block_size, std::vector<int> lengths,
             uint32_t seed)
      : heads_(heads), kv_heads_(kv_heads), hd_(head_dim), bs_(block_size),
        lengths_(std::move(lengths)) {
    int blocks_needed = 0, longest = 0;
    for (int len : lengths_) {
      blocks_needed += (len + bs_ - 1) / bs_;
      longest = std::max(longest, len);
    }
    max_blocks_ = (longest + bs_ - 1) / bs_;
    const int num_blocks = blocks_needed + 3;  // some blocks belong to no sequence
    std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), std::mt19937(seed));
    tables_.assign(lengths_.size() * max_blocks_, -1);  // -1: never read
    size_t next = 0;
    for (size_t s = 0; s < lengths_.size(); ++s) {
      for (int b = 0; b < (lengths_[s] + bs_ - 1) / bs_; ++b)
        tables_[s * max_blocks_ + b] = ids[next++];
      k_.push_back(RandomFloats(static_cast<size_t>(lengths_[s]) * kv_row(),
                                seed + 1 + 2 * static_cast<uint32_t>(s)));
      v_.push_back(RandomFloats(static_cast<size_t>(lengths_[s]) * kv_row(),
                                seed + 2 + 2 * static_cast<uint32_t>(s)));
    }
    const size_t cache_floats = static_cast<size_t>(num_blocks) * bs_ * kv_row();
    k_cache_.assign(cache_floats, std::numeric_limits<float>::quiet_NaN());
    v_cache_.assign(cache_floats, std::numeric_limits<float>::quiet_NaN());
  }

  // Floats per token of the queries and the output, and of a cache row.
  size_t row() const { return static_cast<size_t>(heads_) * hd_; }
  size_t kv_row() const { return static_cast<size_t>(kv_heads_) * hd_; }

  // The same keys, values and cache as multi-head attention: kv head h / group repeated as
  // head h, the not-yet-written (NaN) rows included.
  PagedCache RepeatedKvHeads() const {
    PagedCache mha = *this;
    mha.kv_heads_ = heads_;
    auto repeat = [&](const std::vector<float>& rows) {
      const int group = heads_ / kv_heads_;
      const size_t count = rows.size() / kv_row();
      std::vector<float> out(count * row());
      for (size_t r = 0; r < count; ++r) {
        for (int h = 0; h < heads_; ++h) {
          std::copy_n(&rows[r * kv_row() + static_cast<size_t>(h / group) * hd_], hd_,
                      &out[r * row() + static_cast<size_t>(h) * hd_]);
        }
      }
      return out;
    };
    for (size_t s = 0; s < k_.size(); ++s) {
      mha.k_[s] = repeat(k_[s]);
      mha.v_[s] = repeat(v_[s]);
    }
    mha.k_cache_ = repeat(k_cache_);
    mha.v_cache_ = repeat(v_cache_);
    return mha;
  }

  // Copies position pos of sequence seq into the cache.
  void Write(int seq, int pos) {
    size_t block = static_cast<size_t>(tables_[seq * max_blocks_ + pos / bs_]);
    size_t at = (block * bs_ + pos % bs_) * kv_row();
    std::copy_n(&k_[seq][pos * kv_row()], kv_row(), &k_cache_[at]);
    std::copy_n(&v_[seq][pos * kv_row()], kv_row(), &v_cache_[at]);
  }
  void WriteAll() {
    for (size_t s = 0; s < lengths_.size(); ++s) {
      for (int p = 0; p < lengths_[s]; ++p) Write(static_cast<int>(s), p);
    }
  }

  // out [n, heads·head_dim] for the tokens (seq[t], pos[t]) with queries q [n, heads, head_dim].
  template <typename Kernel>
  std::vector<float> Run(Kernel kernel, const std::vector<float>& q,
                         const std::vector<int32_t>& seq, const std::vector<int32_t>& pos) const {
    std::vector<float> out(seq.size() * row());
    kernel(q.data(), static_cast<int>(seq.size()), heads_, kv_heads_, hd_, k_cache_.data(),
           v_cache_.data(), bs_, tables_.data(), max_blocks_, seq.data(), pos.data(), out.data());
    return out;
  }

  // The same, dense and naive: softmax(q·Kᵀ/√hd)·V over positions 0..pos, in double, query
  // head h on kv head h·kv_heads/heads (the same as h / (heads/kv_heads) when it divides).
  std::vector<float> Dense(const std::vector<float>& q, const std::vector<int32_t>& seq,
                           const std::vector<int32_t>& pos) const {
    std::vector<float> out(seq.size() * row());
    for (size_t t = 0; t < seq.size(); ++t) {
      const std::vector<float>& k = k_[seq[t]];
      const std::vector<float>& v = v_[seq[t]];
      for (int h = 0; h < heads_; ++h) {
        const float* qh = &q[t * row() + h * hd_];
        const size_t kv = static_cast<size_t>(h * kv_heads_ / heads_) * hd_;
        std::vector<double> s(static_cast<size_t>(pos[t]) + 1);
        for (int p = 0; p <= pos[t]; ++p) {
          double dot = 0;
          for (int i = 0; i < hd_; ++i)
            dot += static_cast<double>(qh[i]) * k[p * kv_row() + kv + i];
          s[p] = dot / std::sqrt(static_cast<double>(hd_));
        }
        double m = *std::max_element(s.begin(), s.end()), denom = 0;
        for (double& e : s) denom += (e = std::exp(e - m));
        for (int i = 0; i < hd_; ++i) {
          double acc = 0;
          for (int p = 0; p <= pos[t]; ++p) acc += s[p] * v[p * kv_row() + kv + i];
          out[t * row() + h * hd_ + i] = static_cast<float>(acc / denom);
        }
      }
    }
    return out;
  }

  const std::vector<int>& lengths() const { return lengths_; }

 private:
  int heads_, kv_heads_, hd_, bs_, max_blocks_;
  std::vector<int> lengths_;
  std::vector<int32_t> tables_;            // [seqs, max_blocks]
  std::vector<std::vector<float>> k_, v_;  // per sequence [len, kv_heads, head_dim]
  std::vector<float> k_cache_, v_cache_;   // [num_blocks, block_size, kv_heads, head_dim]
};

// Every position of every sequence, in a shuffled order (a ragged batch of mixed sequences).
void AllTokens(const std::vector<int>& lengths, uint32_t seed, std::vector<int32_t>* seq,
               std::vector<int32_t>* pos) {
  std::vector<std::pair<int32_t, int32_t>> tokens;
  for (size_t s = 0; s < lengths.size(); ++s) {
    for (int p = 0; p < lengths[s]; ++p) tokens.emplace_back(static_cast<int32_t>(s), p);
  }
  std::shuffle(tokens.begin(), tokens.end(), std::mt19937(seed));
  seq->clear();
  pos->clear();
  for (auto [s, p] : tokens) {
    seq->push_back(s);
    pos->push_back(p);
  }
}

struct AttentionCase {
  int heads, kv_heads, head_dim, block_size;
  std::vector<int> lengths;
};

std::string CaseName(const ::testing::TestParamInfo<AttentionCase>& info) {
  const AttentionCase& c = info.param;
  return testing::Format("heads%d_kv%d_hd%d_block%d_seqs%zu", c.heads, c.kv_heads, c.head_dim,
                         c.block_size, c.lengths.size());
}

class PagedAttentionTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(PagedAttentionTest, MatchesDenseCausalAttention) {
  const AttentionCase& c = GetParam();
  PagedCache cache(c.heads, c.kv_heads, c.head_dim, c.block_size, c.lengths, 1);
  cache.WriteAll();
  std::vector<int32_t> seq, pos;
  AllTokens(c.lengths, 2, &seq, &pos);
  std::vector<float> q = RandomFloats(seq.size() * cache.row(), 3, -2.0f, 2.0f);
  std::vector<float> dense = cache.Dense(q, seq, pos);
  std::vector<float> fast = cache.Run(PagedAttention, q, seq, pos);
  std::vector<float> reference = cache.Run(ref::PagedAttention, q, seq, pos);
  EXPECT_TRUE(AllClose(reference.data(), dense.data(), dense.size(), 1e-6)) << "reference";
  EXPECT_TRUE(AllClose(fast.data(), dense.data(), dense.size(), 1e-6)) << "fast";
  EXPECT_TRUE(AllClose(fast.data(), reference.data(), dense.size(), 1e-6)) << "fast vs reference";
}

TEST_P(PagedAttentionTest, TokenDoesNotDependOnBatchOrThreads) {
  const AttentionCase& c = GetParam();
  PagedCache cache(c.heads, c.kv_heads, c.head_dim, c.block_size, c.lengths, 4);
  cache.WriteAll();
  std::vector<int32_t> seq, pos;
  AllTokens(c.lengths, 5, &seq, &pos);
  std::vector<float> q = RandomFloats(seq.size() * cache.row(), 6, -2.0f, 2.0f);
  std::vector<float> alone(q.size());
  for (size_t t = 0; t < seq.size(); ++t) {
    std::vector<float> qt(q.begin() + t * cache.row(), q.begin() + (t + 1) * cache.row());
    std::vector<float> out = cache.Run(PagedAttention, qt, {seq[t]}, {pos[t]});
    std::copy(out.begin(), out.end(), alone.begin() + t * cache.row());
  }
  for (int threads : testing::kThreadCounts) {
    ScopedThreads scoped(threads);
    std::vector<float> batch = cache.Run(PagedAttention, q, seq, pos);
    EXPECT_TRUE(BitwiseEqual(batch.data(), alone.data(), batch.size())) << threads << " threads";
  }
}

// A prompt prefilled in chunks (each chunk's keys and values written just before its call, the
// rest of the cache still NaN) gives the same bits as the whole prompt in one call.
TEST_P(PagedAttentionTest, TokenDoesNotDependOnChunking) {
  const AttentionCase& c = GetParam();
  const int len = *std::max_element(c.lengths.begin(), c.lengths.end());
  const int longest =
      static_cast<int>(std::max_element(c.lengths.begin(), c.lengths.end()) - c.lengths.begin());
  std::vector<int32_t> all_pos(static_cast<size_t>(len));
  std::iota(all_pos.begin(), all_pos.end(), 0);
  std::vector<int32_t> all_seq(static_cast<size_t>(len), longest);

  PagedCache whole(c.heads, c.kv_heads, c.head_dim, c.block_size, c.lengths, 7);
  whole.WriteAll();
  const std::vector<float> q = RandomFloats(static_cast<size_t>(len) * whole.row(), 8);
  const std::vector<float> want = whole.Run(PagedAttention, q, all_seq, all_pos);

  for (int chunk : {1, 3, 7}) {
    PagedCache cache(c.heads, c.kv_heads, c.head_dim, c.block_size, c.lengths, 7);
    std::vector<float> got;
    for (int start = 0; start < len; start += chunk) {
      const int end = std::min(len, start + chunk);
      for (int p = start; p < end; ++p) cache.Write(longest, p);
      std::vector<float> qc(q.begin() + start * whole.row(), q.begin() + end * whole.row());
      std::vector<int32_t> seq(all_seq.begin() + start, all_seq.begin() + end);
      std::vector<int32_t> pos(all_pos.begin() + start, all_pos.begin() + end);
      std::vector<float> out = cache.Run(PagedAttention, qc, seq, pos);
      got.insert(got.end(), out.begin(), out.end());
    }
    EXPECT_TRUE(BitwiseEqual(got.data(), want.data(), want.size())) << "chunks of " << chunk;
  }
}

// Grouped-query attention is exactly multi-head attention on the cache with each kv head
// repeated for its query heads: the same rows read in the same order, so the same bits.
TEST_P(PagedAttentionTest, GroupedQueriesEqualRepeatedKvHeads) {
  const AttentionCase& c = GetParam();
  PagedCache cache(c.heads, c.kv_heads, c.head_dim, c.block_size, c.lengths, 9);
  cache.WriteAll();
  const PagedCache mha = cache.RepeatedKvHeads();
  std::vector<int32_t> seq, pos;
  AllTokens(c.lengths, 10, &seq, &pos);
  std::vector<float> q = RandomFloats(seq.size() * cache.row(), 11, -2.0f, 2.0f);
  EXPECT_TRUE(BitwiseEqual(cache.Run(PagedAttention, q, seq, pos).data(),
                           mha.Run(PagedAttention, q, seq, pos).data(), q.size()))
      << "fast";
  EXPECT_TRUE(BitwiseEqual(cache.Run(ref::PagedAttention, q, seq, pos).data(),
                           mha.Run(ref::PagedAttention, q, seq, pos).data(), q.size()))
      << "reference";
}

INSTANTIATE_TEST_SUITE_P(Shapes, PagedAttentionTest,
                         ::testing::Values(AttentionCase{1, 1, 8, 16, {1}},
                                           AttentionCase{4, 4, 64, 16, {1, 5, 16, 17, 40}},
                                           AttentionCase{3, 3, 7, 5, {3, 11, 26}},
                                           AttentionCase{2, 2, 256, 4, {9, 2}},
                                           AttentionCase{1, 1, 769, 3, {4, 7}},
                                           // Grouped-query (2 and 3 query heads per kv
                                           // head) and multi-query attention.
                                           AttentionCase{4, 2, 64, 16, {1, 5, 16, 17, 40}},
                                           AttentionCase{6, 2, 7, 5, {3, 11, 26}},
                                           AttentionCase{8, 1, 33, 4, {9, 2}}),
                         CaseName);

}  // namespace
}  // namespace pkm::cpu
