// Fuzzes the tokenizers' entry points: Encode and Decode of each kind on fixed vocabularies, and
// the tiktoken ranks and XLM dictionary/codes readers on fuzzed files. Properties checked beyond
// "no crash": Encode's ids are in the vocabulary; Decode returns valid UTF-8 (the Tokenizer
// contract); tiktoken with every single byte in its ranks gives Decode(Encode(x)) == x for
// UTF-8 x; every refusal says why.
//
// Input: one byte choosing the entry point, then its bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/utf8.h"
#include "model_loader/tokenizer_sentencepiece.h"
#include "model_loader/tokenizer_tiktoken.h"
#include "model_loader/tokenizer_xlm.h"
#include "tests/fuzz/fuzz_files.h"
#include "tests/model_loader/test_model_writer.h"

namespace {

using pkm::Tokenizer;

void Require(bool ok) {
  if (!ok) std::abort();
}

std::string Base64(std::string_view bytes) {
  static constexpr char kDigits[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    if (i + 2 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 2]);
    out += kDigits[(v >> 18) & 63];
    out += kDigits[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kDigits[(v >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kDigits[v & 63] : '=';
  }
  return out;
}

std::unique_ptr<Tokenizer> Must(pkm::StatusOr<std::unique_ptr<Tokenizer>> t) {
  Require(t.ok());
  return std::move(*t);
}

// Every single byte (ranks 0-255), a few merges and two specials.
std::unique_ptr<Tokenizer> MakeTiktoken(const pkm::testing::TempDir& dir) {
  std::string ranks;
  for (int b = 0; b < 256; ++b) {
    ranks += Base64(std::string(1, static_cast<char>(b))) + " " + std::to_string(b) + "\n";
  }
  int rank = 256;
  for (const char* merged : {"th", "he", "the", " t", " the", "in", "ing", "é", "\xe2\x82"}) {
    ranks += Base64(merged) + " " + std::to_string(rank++) + "\n";
  }
  pkm::testing::WriteFile(dir.Join("ranks.tiktoken"), ranks);
  pkm::TiktokenOptions options;
  options.special_tokens = {{"<|endoftext|>", rank}, {"<|fim|>", rank + 1}};
  options.eos_id = rank;
  return Must(pkm::LoadTiktokenTokenizer(dir.Join("ranks.tiktoken"), options));
}

std::unique_ptr<Tokenizer> MakeXlm(const pkm::testing::TempDir& dir) {
  std::string words = "<s>\n</s>\n<pad>\n<unk>\n";
  for (int i = 0; i < 10; ++i) words += "<special" + std::to_string(i) + ">\n";
  for (const char* w : {"the", "ca@@", "t", "low@@", "er", "low", "b@@", "a@@", "é@@", "té"}) {
    words += std::string(w) + "\n";
  }
  pkm::testing::WriteFile(dir.Join("xlm_dictionary.txt"), words);
  pkm::testing::WriteFile(dir.Join("xlm_bpe_codes.txt"),
                          "t h 90\nth e</w> 80\nc a 70\nca t</w> 60\nl o 50\nlo w</w> 40\nlo w 30\n"
                          "e r</w> 20\nb a 10\nba t</w> 9\nt é</w> 8\n");
  return Must(pkm::LoadXlmTokenizer(dir.Join("xlm_dictionary.txt"),
                                    dir.Join("xlm_bpe_codes.txt"), 24, 1, 1));
}

struct Fixtures {
  pkm::testing::TempDir dir;
  std::unique_ptr<Tokenizer> sentencepiece =
      Must(pkm::LoadSentencePieceTokenizer(pkm::fuzz::SourcePath("models/pkm-small/tokenizer.model")));
  std::unique_ptr<Tokenizer> tiktoken = MakeTiktoken(dir);
  std::unique_ptr<Tokenizer> xlm = MakeXlm(dir);
};

std::vector<int32_t> Ids(std::string_view bytes) {
  std::vector<int32_t> ids(bytes.size() / sizeof(int32_t));
  if (!ids.empty()) std::memcpy(ids.data(), bytes.data(), ids.size() * sizeof(int32_t));
  return ids;
}

// Encode and Decode of one tokenizer, with the contract's properties.
void Exercise(const Tokenizer& t, std::string_view bytes, bool round_trips) {
  const std::vector<int32_t> encoded = t.Encode(bytes);
  for (int32_t id : encoded) Require(id >= 0 && id < t.vocab_size());
  const std::string decoded = t.Decode(encoded);
  Require(!pkm::FirstInvalidUtf8(decoded).has_value());
  if (round_trips && !pkm::FirstInvalidUtf8(bytes).has_value()) Require(decoded == bytes);
  // Arbitrary ids, out of range ones included, and each id's piece.
  const std::vector<int32_t> ids = Ids(bytes);
  Require(!pkm::FirstInvalidUtf8(t.Decode(ids)).has_value());
  for (int32_t id : ids) (void)t.IdToPiece(id);
}

void ReadRanks(const pkm::testing::TempDir& dir, std::string_view file) {
  pkm::testing::WriteFile(dir.Join("fuzzed.tiktoken"), file);
  auto t = pkm::LoadTiktokenTokenizer(dir.Join("fuzzed.tiktoken"), {});
  if (!t.ok()) {
    Require(!t.status().message().empty());
    return;
  }
  Exercise(**t, "the thing, é\n", false);
}

// Input: two bytes of vocabulary size, the dictionary, a NUL, the codes (no NUL: no codes).
void ReadXlm(const pkm::testing::TempDir& dir, std::string_view input) {
  if (input.size() < 2) return;
  const int32_t vocab = static_cast<unsigned char>(input[0]) | static_cast<unsigned char>(input[1]) << 8;
  input.remove_prefix(2);
  const size_t split = input.find('\0');
  pkm::testing::WriteFile(dir.Join("fuzzed_dictionary.txt"), input.substr(0, split));
  std::string codes;
  if (split != std::string_view::npos) {
    pkm::testing::WriteFile(dir.Join("fuzzed_codes.txt"), input.substr(split + 1));
    codes = dir.Join("fuzzed_codes.txt");
  }
  auto t = pkm::LoadXlmTokenizer(dir.Join("fuzzed_dictionary.txt"), codes, vocab, 1, 1);
  if (!t.ok()) {
    Require(!t.status().message().empty());
    return;
  }
  const std::vector<int32_t> encoded = (*t)->Encode("the lower cat té");
  for (int32_t id : encoded) Require(id >= 0 && id < vocab);
  (void)(*t)->Decode(Ids(input));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixtures* fixtures = new Fixtures();
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0: Exercise(*fixtures->sentencepiece, rest, false); break;
    case 1: Exercise(*fixtures->tiktoken, rest, true); break;
    case 2: Exercise(*fixtures->xlm, rest, false); break;
    case 3: ReadRanks(fixtures->dir, rest); break;
    case 4: ReadXlm(fixtures->dir, rest); break;
  }
  return 0;
}
