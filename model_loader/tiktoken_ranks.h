// Parsing of tiktoken ranks files, kept apart from the tokenizer so that each file stays small.
// Private to pkm_tiktoken.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

namespace pkm::internal_tiktoken {

// Lookups by std::string_view without building a std::string per lookup.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using RankMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Standard base64 with padding, as tiktoken writes it; false on any other byte.
bool DecodeBase64(std::string_view in, std::string* out);

// `contents` of the file at `path`: token bytes -> rank. kDataLoss naming `path:line` for a
// malformed line, a token or rank given twice, or a file with no ranks.
StatusOr<RankMap> ParseRanks(const std::string& path, std::string_view contents);

}  // namespace pkm::internal_tiktoken
