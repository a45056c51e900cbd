// The C++ side of tiktoken_ref: encodes the corpus with LoadTiktokenTokenizer on the ranks file
// that reference.cjs extracted from the tiktoken package, and decodes each result again.
//
//   tiktoken_encode RANKS META CORPUS OUT
// META is reference.cjs's cl100k_base.meta.json: its special tokens are used, and its pattern
// must be kCl100kPattern (a new tiktoken release with another pattern fails here, by name).
// OUT gets {"name": ..., "ids": [...], "round_trip": bool} per corpus line.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "model_loader/tokenizer_tiktoken.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: tiktoken_encode RANKS META CORPUS OUT\n";
    return 2;
  }
  std::ifstream meta_file(argv[2]);
  const nlohmann::json meta = nlohmann::json::parse(meta_file);
  if (meta.at("pat_str").get<std::string>() != pkm::kCl100kPattern) {
    std::cerr << argv[2] << ": the tiktoken package's cl100k pattern\n  "
              << meta.at("pat_str").get<std::string>() << "\nis not kCl100kPattern\n  "
              << pkm::kCl100kPattern << "\n";
    return 1;
  }
  pkm::TiktokenOptions options;
  for (const auto& [text, id] : meta.at("special_tokens").items()) {
    options.special_tokens.emplace_back(text, id.get<int32_t>());
  }
  auto tokenizer = pkm::LoadTiktokenTokenizer(argv[1], options);
  if (!tokenizer.ok()) {
    std::cerr << tokenizer.status() << "\n";
    return 1;
  }
  std::ifstream corpus(argv[3]);
  std::ofstream out(argv[4]);
  std::string line;
  size_t bytes = 0;
  size_t tokens = 0;
  double seconds = 0;
  while (std::getline(corpus, line)) {
    if (line.empty()) continue;
    const nlohmann::json doc = nlohmann::json::parse(line);
    const std::string text = doc.at("text").get<std::string>();
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = (*tokenizer)->Encode(text);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const bool round_trip = (*tokenizer)->Decode(ids) == text;
    out << nlohmann::json{{"name", doc.at("name")}, {"ids", ids}, {"round_trip", round_trip}}.dump()
        << "\n";
    bytes += text.size();
    tokens += ids.size();
  }
  std::printf("tiktoken_encode: %zu bytes -> %zu tokens in %.2f s (%.1f MB/s)\n", bytes, tokens,
              seconds, seconds > 0 ? static_cast<double>(bytes) / seconds / 1e6 : 0.0);
  return out.good() ? 0 : 1;
}
