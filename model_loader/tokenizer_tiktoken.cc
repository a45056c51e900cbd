// The tiktoken BPE tokenizer: the PCRE2 pre-tokenizer and tiktoken's byte-pair merge (tiktoken
// src/lib.rs, _byte_pair_merge), whose choice of pair at each step MergePiece reproduces, ties
// included. The ranks file is parsed in tiktoken_ranks.cc.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "model_loader/tokenizer_tiktoken.h"

#include <pcre2.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <queue>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "common/utf8.h"
#include "model_loader/file_util.h"
#include "model_loader/tiktoken_ranks.h"

namespace pkm {
namespace {

using internal_tiktoken::ParseRanks;
using internal_tiktoken::RankMap;

constexpr uint32_t kNoRank = std::numeric_limits<uint32_t>::max();

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};
struct MatchContextDeleter {
  void operator()(pcre2_match_context* context) const { pcre2_match_context_free(context); }
};
struct JitStackDeleter {
  void operator()(pcre2_jit_stack* stack) const { pcre2_jit_stack_free(stack); }
};

class TiktokenTokenizer final : public Tokenizer {
 public:
  std::string_view kind() const override { return "tiktoken"; }
  TiktokenTokenizer(RankMap ranks, std::vector<std::pair<std::string, int32_t>> specials,
                    std::unique_ptr<pcre2_code, CodeDeleter> regex, int32_t bos, int32_t eos)
      : ranks_(std::move(ranks)),
        specials_(std::move(specials)),
        regex_(std::move(regex)),
        bos_(bos),
        eos_(eos) {
    int32_t size = 0;
    for (const auto& [bytes, id] : ranks_) size = std::max(size, id + 1);
    for (const auto& [text, id] : specials_) size = std::max(size, id + 1);
    pieces_.resize(static_cast<size_t>(size));
    for (const auto& [bytes, id] : ranks_) pieces_[static_cast<size_t>(id)] = bytes;
    for (const auto& [text, id] : specials_) pieces_[static_cast<size_t>(id)] = text;
  }

  std::vector<int32_t> Encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    // Where each special next occurs at or after `pos`, refreshed only once passed, so the text
    // is searched once per special however many specials it holds (Llama-3 has 256).
    std::vector<size_t> next(specials_.size(), 0);
    for (size_t i = 0; i < specials_.size(); ++i) next[i] = text.find(specials_[i].first);
    size_t pos = 0;
    while (pos < text.size()) {
      // The earliest special from `pos`, the longest of those starting there.
      size_t best = std::string_view::npos;
      size_t chosen = 0;
      for (size_t i = 0; i < specials_.size(); ++i) {
        if (next[i] < pos) next[i] = text.find(specials_[i].first, pos);
        if (next[i] < best || (next[i] == best && best != std::string_view::npos &&
                               specials_[i].first.size() > specials_[chosen].first.size())) {
          best = next[i];
          chosen = i;
        }
      }
      if (best == std::string_view::npos) {
        EncodeOrdinary(text.substr(pos), &ids);
        break;
      }
      EncodeOrdinary(text.substr(pos, best - pos), &ids);
      ids.push_back(specials_[chosen].second);
      pos = best + specials_[chosen].first.size();
    }
    return ids;
  }

  // Text for the API's string fields: bytes that do not form UTF-8 become U+FFFD (a character
  // cut between two ids, at the end, becomes one, which streaming holds back until it is whole).
  std::string Decode(std::span<const int32_t> ids) const override {
    std::string bytes;
    for (int32_t id : ids) {
      if (id >= 0 && id < vocab_size()) bytes += pieces_[static_cast<size_t>(id)];
    }
    return ReplaceInvalidUtf8(bytes);
  }

  std::string IdToPiece(int32_t id) const override {
    if (id < 0 || id >= vocab_size()) return {};
    return ReplaceInvalidUtf8(pieces_[static_cast<size_t>(id)]);
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  int32_t bos_id() const override { return bos_; }
  int32_t eos_id() const override { return eos_; }

 private:
  // `text` holds no special token: regex pieces, each merged.
  void EncodeOrdinary(std::string_view text, std::vector<int32_t>* ids) const {
    if (text.empty()) return;
    // Per call, since match data and JIT stacks must not be shared between threads. The JIT
    // stack is larger than PCRE2's 32 KiB default so long runs of spaces do not exhaust it.
    std::unique_ptr<pcre2_match_data, MatchDataDeleter> match(
        pcre2_match_data_create_from_pattern(regex_.get(), nullptr));
    std::unique_ptr<pcre2_match_context, MatchContextDeleter> context(
        pcre2_match_context_create(nullptr));
    std::unique_ptr<pcre2_jit_stack, JitStackDeleter> stack(
        pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr));
    if (stack != nullptr) pcre2_jit_stack_assign(context.get(), nullptr, stack.get());
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t pos = 0;
    while (pos < text.size()) {
      const int rc =
          pcre2_match(regex_.get(), subject, text.size(), pos, 0, match.get(), context.get());
      if (rc < 0) {  // no match (only invalid UTF-8 is left) or a matching limit
        MergePiece(text.substr(pos), ids);
        return;
      }
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
      const size_t start = ovector[0];
      // An empty match cannot come from the shipped patterns; a custom one moves on a byte.
      const size_t end = std::max(ovector[1], start + (ovector[1] == start ? 1 : 0));
      if (start > pos) MergePiece(text.substr(pos, start - pos), ids);  // invalid UTF-8
      MergePiece(text.substr(start, end - start), ids);
      pos = end;
    }
  }

  uint32_t RankOf(std::string_view bytes) const {
    const auto it = ranks_.find(bytes);
    return it == ranks_.end() ? kNoRank : static_cast<uint32_t>(it->second);
  }

  void MergePiece(std::string_view piece, std::vector<int32_t>* ids) const {
    if (piece.empty()) return;
    if (const uint32_t rank = RankOf(piece); rank != kNoRank) {
      ids->push_back(static_cast<int32_t>(rank));
      return;
    }
    // tiktoken's rule: merge the adjacent pair whose concatenation has the lowest rank, the
    // leftmost on ties, until no pair has a rank. tiktoken rescans all pairs after each merge,
    // quadratic in the piece; a prompt of 100 kB of punctuation (one piece) would take seconds.
    // Here parts are a linked list over byte offsets and pairs wait in a heap ordered by
    // (rank, offset), which picks the same pair each step; entries made stale by a merge are
    // skipped when they surface.
    const size_t n = piece.size();
    std::vector<size_t> next(n);    // part at byte i (if alive) ends where part next[i] starts
    std::vector<size_t> prev(n);    // n when none
    std::vector<uint32_t> rank(n);  // of part i joined with its successor
    for (size_t i = 0; i < n; ++i) {
      next[i] = i + 1;
      prev[i] = i == 0 ? n : i - 1;
    }
    auto joined_rank = [&](size_t i) {
      const size_t j = next[i];
      if (j >= n) return kNoRank;
      return RankOf(piece.substr(i, next[j] - i));
    };
    using Entry = std::pair<uint32_t, size_t>;
    std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap;
    for (size_t i = 0; i < n; ++i) {
      rank[i] = joined_rank(i);
      if (rank[i] != kNoRank) heap.emplace(rank[i], i);
    }
    std::vector<bool> alive(n, true);
    while (!heap.empty()) {
      const auto [r, i] = heap.top();
      heap.pop();
      if (!alive[i] || rank[i] != r) continue;
      const size_t j = next[i];
      alive[j] = false;
      next[i] = next[j];
      if (next[j] < n) prev[next[j]] = i;
      rank[i] = joined_rank(i);
      if (rank[i] != kNoRank) heap.emplace(rank[i], i);
      if (const size_t p = prev[i]; p < n) {
        rank[p] = joined_rank(p);
        if (rank[p] != kNoRank) heap.emplace(rank[p], p);
      }
    }
    for (size_t i = 0; i < n; i = next[i]) {
      // Only a single byte can be missing here: the vocabulary cannot represent it.
      if (const uint32_t r = RankOf(piece.substr(i, next[i] - i)); r != kNoRank) {
        ids->push_back(static_cast<int32_t>(r));
      }
    }
  }

  RankMap ranks_;
  std::vector<std::pair<std::string, int32_t>> specials_;
  std::unique_ptr<pcre2_code, CodeDeleter> regex_;
  std::vector<std::string> pieces_;  // by id; "" for ids that name nothing
  int32_t bos_;
  int32_t eos_;
};

StatusOr<std::unique_ptr<pcre2_code, CodeDeleter>> CompilePattern(const std::string& pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  std::unique_ptr<pcre2_code, CodeDeleter> code(
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr));
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return InvalidArgumentError("tiktoken pattern does not compile at offset " +
                                std::to_string(offset) + ": " +
                                reinterpret_cast<const char*>(message));
  }
  // JIT is an optimisation only: without it (no JIT support on this CPU) matching still works.
  pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE);
  return code;
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> LoadTiktokenTokenizer(const std::string& path,
                                                           const TiktokenOptions& options) {
  PKM_ASSIGN_OR_RETURN(const std::string contents, internal_loader::ReadFileToString(path, ""));
  PKM_ASSIGN_OR_RETURN(RankMap ranks, ParseRanks(path, contents));
  PKM_ASSIGN_OR_RETURN(auto regex, CompilePattern(options.pattern));
  std::unordered_set<int32_t> ordinary_ids;
  for (const auto& [bytes, id] : ranks) ordinary_ids.insert(id);
  std::unordered_map<int32_t, std::string> special_ids;
  std::unordered_set<std::string> special_texts;
  for (const auto& [text, id] : options.special_tokens) {
    if (text.empty() || id < 0 || id == std::numeric_limits<int32_t>::max()) {
      return InvalidArgumentError(path + ": special token '" + text + "' (id " +
                                  std::to_string(id) + ") needs a text and an id >= 0");
    }
    if (ordinary_ids.contains(id)) {
      return InvalidArgumentError(path + ": special token '" + text + "' has id " +
                                  std::to_string(id) + ", which is a rank of the file");
    }
    if (!special_ids.emplace(id, text).second) {
      return InvalidArgumentError(path + ": special tokens '" + special_ids[id] + "' and '" + text +
                                  "' share id " + std::to_string(id));
    }
    if (!special_texts.insert(text).second) {
      return InvalidArgumentError(path + ": special token '" + text + "' is listed twice");
    }
  }
  for (const auto& [name, id] : {std::pair{"bos", options.bos_id}, {"eos", options.eos_id}}) {
    if (id != -1 && !ordinary_ids.contains(id) && !special_ids.contains(id)) {
      return InvalidArgumentError(path + ": " + name + " id " + std::to_string(id) +
                                  " is neither a rank of the file nor a special token");
    }
  }
  return std::unique_ptr<Tokenizer>(std::make_unique<TiktokenTokenizer>(
      std::move(ranks), options.special_tokens, std::move(regex), options.bos_id, options.eos_id));
}

}  // namespace pkm
