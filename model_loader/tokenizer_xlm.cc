// XLM's dictionary and fastBPE codes (tokenizer_xlm.h): applybpe's merge loop and its
// vocabulary check (fastBPE.hpp, process_bpe / limitVocab / decompose), written from their
// documented behaviour.
#include "model_loader/tokenizer_xlm.h"

#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model_loader/file_util.h"

namespace pkm {
namespace {

constexpr std::string_view kEndOfWord = "</w>";
constexpr std::string_view kContinued = "@@";

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Splits at ASCII whitespace, dropping empty fields.
std::vector<std::string_view> Words(std::string_view text) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && IsAsciiSpace(text[i])) ++i;
    const size_t start = i;
    while (i < text.size() && !IsAsciiSpace(text[i])) ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  return words;
}

// The lines of `contents` with their 1-based numbers, blank lines skipped.
template <typename Fn>
Status ForEachLine(std::string_view contents, Fn&& fn) {
  size_t number = 0;
  size_t start = 0;
  while (start < contents.size()) {
    size_t end = contents.find('\n', start);
    if (end == std::string_view::npos) end = contents.size();
    std::string_view line = contents.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++number;
    start = end + 1;
    if (line.empty()) continue;
    PKM_RETURN_IF_ERROR(fn(number, line));
  }
  return Status();
}

// XLM's specials that stand for no text: BOS, EOS, padding and <special0>..<special9>.
bool IsSilentSpecial(std::string_view word) {
  if (word == "<s>" || word == "</s>" || word == "<pad>") return true;
  return word.size() >= 10 && word.substr(0, 8) == "<special" && word.back() == '>';
}

struct Codes {
  // "left right" -> rank (the line's position), and merged -> (left, right).
  std::unordered_map<std::string, uint32_t> rank;
  std::unordered_map<std::string, std::pair<std::string, std::string>> parts;
};

class XlmTokenizer final : public Tokenizer {
 public:
  XlmTokenizer(std::vector<std::string> words, std::unordered_map<std::string, int32_t> ids,
               std::unique_ptr<Codes> codes, int32_t unk, int32_t bos, int32_t eos)
      : words_(std::move(words)),
        ids_(std::move(ids)),
        codes_(std::move(codes)),
        unk_(unk),
        bos_(bos),
        eos_(eos) {}

  std::vector<int32_t> Encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    if (!codes_) return ids;
    for (std::string_view word : Words(text)) {
      for (const std::string& piece : Pieces(word)) {
        auto it = ids_.find(piece);
        ids.push_back(it == ids_.end() ? unk_ : it->second);
      }
    }
    return ids;
  }

  std::string Decode(std::span<const int32_t> ids) const override {
    std::string text;
    bool space_before_next = false;
    for (int32_t id : ids) {
      if (id < 0 || id >= vocab_size()) continue;
      std::string_view word = words_[static_cast<size_t>(id)];
      if (IsSilentSpecial(word)) continue;
      if (space_before_next) text += ' ';
      space_before_next = !EndsWith(word, kContinued);
      if (!space_before_next) word.remove_suffix(kContinued.size());
      text += word;
    }
    return text;
  }

  std::string IdToPiece(int32_t id) const override {
    return id >= 0 && id < vocab_size() ? words_[static_cast<size_t>(id)] : "";
  }

  bool can_encode() const override { return codes_ != nullptr; }
  std::string_view missing_text_reason() const override {
    return "its XLM dictionary came without the fastBPE codes it was trained with "
           "(xlm_bpe_codes.txt)";
  }
  std::string_view kind() const override { return "xlm"; }
  int32_t vocab_size() const override { return static_cast<int32_t>(words_.size()); }
  int32_t bos_id() const override { return bos_; }
  int32_t eos_id() const override { return eos_; }

 private:
  bool InDictionary(const std::string& piece) const { return ids_.count(piece) != 0; }

  // What a piece becomes in the dictionary: "@@" added unless it is the word's last, whose
  // "</w>" goes.
  static std::string Spelled(const std::string& piece, bool last) {
    if (!last) return piece + std::string(kContinued);
    return EndsWith(piece, kEndOfWord) ? piece.substr(0, piece.size() - kEndOfWord.size())
                                       : piece;
  }

  // Steps 2 and 3 of the header's Encode, for one word.
  std::vector<std::string> Pieces(std::string_view word) const {
    std::vector<std::string> pieces;
    for (size_t i = 0; i < word.size();) {
      size_t end = i + 1;
      while (end < word.size() && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80) ++end;
      pieces.emplace_back(word.substr(i, end - i));
      i = end;
    }
    pieces.back() += kEndOfWord;
    Merge(pieces);
    std::vector<std::string> spelled;
    for (size_t i = 0; i < pieces.size(); ++i) {
      const bool last = i + 1 == pieces.size();
      if (InDictionary(Spelled(pieces[i], last))) {
        spelled.push_back(Spelled(pieces[i], last));
      } else {
        Unmerge(pieces[i], last, spelled);
      }
    }
    return spelled;
  }

  void Merge(std::vector<std::string>& pieces) const {
    while (pieces.size() > 1) {
      uint32_t best = UINT32_MAX;
      size_t best_at = 0;
      for (size_t i = 0; i + 1 < pieces.size(); ++i) {
        auto it = codes_->rank.find(pieces[i] + ' ' + pieces[i + 1]);
        if (it != codes_->rank.end() && it->second < best) {
          best = it->second;
          best_at = i;
        }
      }
      if (best == UINT32_MAX) return;
      const std::string left = pieces[best_at];
      const std::string right = pieces[best_at + 1];
      std::vector<std::string> merged;
      merged.reserve(pieces.size());
      for (size_t i = 0; i < pieces.size(); ++i) {
        if (i + 1 < pieces.size() && pieces[i] == left && pieces[i + 1] == right) {
          merged.push_back(left + right);
          ++i;
        } else {
          merged.push_back(std::move(pieces[i]));
        }
      }
      pieces = std::move(merged);
    }
  }

  // fastBPE's decompose: a piece the dictionary lacks becomes the two it was merged from, each
  // kept if the dictionary has it and split further if not. A character stays as it is.
  void Unmerge(const std::string& piece, bool last, std::vector<std::string>& out) const {
    auto it = codes_->parts.find(piece);
    if (it == codes_->parts.end()) {
      out.push_back(Spelled(piece, last));
      return;
    }
    const auto& [left, right] = it->second;
    if (InDictionary(Spelled(left, false))) {
      out.push_back(Spelled(left, false));
    } else {
      Unmerge(left, false, out);
    }
    if (InDictionary(Spelled(right, last))) {
      out.push_back(Spelled(right, last));
    } else {
      Unmerge(right, last, out);
    }
  }

  std::vector<std::string> words_;
  std::unordered_map<std::string, int32_t> ids_;
  std::unique_ptr<Codes> codes_;  // null: no codes, Encode unavailable
  int32_t unk_, bos_, eos_;
};

StatusOr<std::unique_ptr<Codes>> ReadCodes(const std::string& path) {
  PKM_ASSIGN_OR_RETURN(const std::string contents,
                       internal_loader::ReadFileToString(path, ""));
  auto codes = std::make_unique<Codes>();
  uint32_t rank = 0;
  PKM_RETURN_IF_ERROR(ForEachLine(contents, [&](size_t number, std::string_view line) {
    std::vector<std::string_view> fields = Words(line);
    if (fields.size() != 3 || fields[2].find_first_not_of("0123456789") != std::string_view::npos) {
      return DataLossError(path + ":" + std::to_string(number) +
                           ": expected a fastBPE code \"left right count\", got \"" +
                           std::string(line.substr(0, 80)) + "\"");
    }
    std::string left(fields[0]), right(fields[1]);
    // fastBPE keeps the first of a repeated pair; so does this.
    if (codes->rank.emplace(left + ' ' + right, rank).second) {
      codes->parts.emplace(left + right, std::make_pair(left, right));
    }
    ++rank;
    return Status();
  }));
  return codes;
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> LoadXlmTokenizer(const std::string& dictionary_path,
                                                      const std::string& codes_path,
                                                      int32_t vocab_size, int32_t bos_id,
                                                      int32_t eos_id) {
  PKM_ASSIGN_OR_RETURN(const std::string contents,
                       internal_loader::ReadFileToString(dictionary_path, ""));
  std::vector<std::string> words;
  std::unordered_map<std::string, int32_t> ids;
  PKM_RETURN_IF_ERROR(ForEachLine(contents, [&](size_t number, std::string_view line) {
    const std::string where = dictionary_path + ":" + std::to_string(number);
    if (Words(line).size() != 1 || Words(line)[0].size() != line.size()) {
      return DataLossError(where + ": expected one word without whitespace per line");
    }
    if (!ids.emplace(std::string(line), static_cast<int32_t>(words.size())).second) {
      return DataLossError(where + ": word \"" + std::string(line) + "\" is already id " +
                           std::to_string(ids[std::string(line)]));
    }
    words.emplace_back(line);
    return Status();
  }));
  const int32_t size = static_cast<int32_t>(words.size());
  if (size != vocab_size) {
    return InvalidArgumentError(dictionary_path + ": " + std::to_string(size) +
                                " words, but the model's vocab_size is " +
                                std::to_string(vocab_size));
  }
  auto unk = ids.find("<unk>");
  if (unk == ids.end()) {
    return InvalidArgumentError(dictionary_path + ": no \"<unk>\" word (XLM's id 3), which "
                                                  "words outside the dictionary encode to");
  }
  for (int32_t id : {bos_id, eos_id}) {
    if (id < -1 || id >= size) {
      return InvalidArgumentError(dictionary_path + ": BOS/EOS id " + std::to_string(id) +
                                  " is outside its " + std::to_string(size) + " words");
    }
  }
  std::unique_ptr<Codes> codes;
  if (!codes_path.empty()) {
    PKM_ASSIGN_OR_RETURN(codes, ReadCodes(codes_path));
  }
  return std::unique_ptr<Tokenizer>(std::make_unique<XlmTokenizer>(
      std::move(words), std::move(ids), std::move(codes), unk->second, bos_id, eos_id));
}

}  // namespace pkm
