// tiktoken ranks files: `base64(token bytes) rank` per line.
#include "model_loader/tiktoken_ranks.h"

#include <charconv>
#include <limits>

namespace pkm::internal_tiktoken {

// Standard base64 with padding, as tiktoken writes it; false on any other byte.
bool DecodeBase64(std::string_view in, std::string* out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.empty() || in.size() % 4 != 0) return false;
  out->clear();
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    const size_t pad = last ? (in[i + 3] == '=') + (in[i + 2] == '=' && in[i + 3] == '=') : 0;
    uint32_t bits = 0;
    for (size_t j = 0; j < 4; ++j) {
      const int v = j >= 4 - pad ? 0 : value(in[i + j]);
      if (v < 0) return false;
      bits = bits << 6 | static_cast<uint32_t>(v);
    }
    out->push_back(static_cast<char>(bits >> 16));
    if (pad < 2) out->push_back(static_cast<char>(bits >> 8 & 0xFF));
    if (pad < 1) out->push_back(static_cast<char>(bits & 0xFF));
  }
  return true;
}

StatusOr<RankMap> ParseRanks(const std::string& path, std::string_view contents) {
  RankMap ranks;
  std::unordered_map<int32_t, size_t> line_of_rank;
  size_t line_number = 0;
  std::string bytes;
  while (!contents.empty()) {
    ++line_number;
    const size_t newline = contents.find('\n');
    std::string_view line = contents.substr(0, newline);
    contents = newline == std::string_view::npos ? "" : contents.substr(newline + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(line_number) + ": ";
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) {
      return DataLossError(where + "expected `base64(token) rank`, found no space");
    }
    const std::string_view encoded = line.substr(0, space);
    const std::string_view rank_text = line.substr(space + 1);
    if (!DecodeBase64(encoded, &bytes)) {
      return DataLossError(where + "token '" + std::string(encoded) + "' is not base64");
    }
    int32_t rank = -1;
    const auto [end, ec] =
        std::from_chars(rank_text.data(), rank_text.data() + rank_text.size(), rank);
    if (ec != std::errc() || end != rank_text.data() + rank_text.size() || rank < 0 ||
        rank == std::numeric_limits<int32_t>::max()) {
      return DataLossError(where + "rank '" + std::string(rank_text) +
                           "' is not an integer in [0, 2^31 - 1)");
    }
    if (const auto it = line_of_rank.find(rank); it != line_of_rank.end()) {
      return DataLossError(where + "rank " + std::to_string(rank) + " was already given on line " +
                           std::to_string(it->second));
    }
    if (!ranks.emplace(bytes, rank).second) {
      return DataLossError(where + "token '" + std::string(encoded) + "' appears twice (rank " +
                           std::to_string(ranks.find(bytes)->second) + " and " +
                           std::to_string(rank) + ")");
    }
    line_of_rank.emplace(rank, line_number);
  }
  if (ranks.empty()) return DataLossError(path + ": no ranks (an empty tiktoken file)");
  return ranks;
}

}  // namespace pkm::internal_tiktoken
