// The only file that includes SentencePiece headers: they define their own `absl` namespace,
// which clashes with the real Abseil the server links. Keep it that way.
//
// Built into libpkm_sentencepiece.so, which tokenizer_loader.cc opens with dlopen: Debian's
// libsentencepiece carries its own protobuf-lite 3.14 and exports its symbols, which must not
// meet the protobuf 3.21 that gRPC brings (see tokenizer_loader.cc).
#include "model_loader/tokenizer_sentencepiece.h"

#include <sentencepiece_processor.h>
#include <unistd.h>

#include "model_loader/file_util.h"

namespace pkm {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  std::string_view kind() const override { return "sentencepiece"; }
  // Call Load() once before sharing the object.
  Status Load(const std::string& path) {
    const auto status = processor_.Load(path);
    if (!status.ok()) {
      return DataLossError(path + ": not a valid SentencePiece model (" + status.ToString() +
                           "); re-export the model with training/export.py");
    }
    return OkStatus();
  }

  std::vector<int32_t> Encode(std::string_view text) const override {
    std::vector<int> ids;
    // Fails only when no model is loaded, which Load() rules out.
    if (!processor_.Encode(text, &ids).ok()) return {};
    return std::vector<int32_t>(ids.begin(), ids.end());
  }

  std::string Decode(std::span<const int32_t> ids) const override {
    std::vector<int> valid;
    valid.reserve(ids.size());
    for (int32_t id : ids) {
      if (id >= 0 && id < vocab_size()) valid.push_back(id);
    }
    std::string text;
    if (!processor_.Decode(valid, &text).ok()) return {};
    return text;
  }

  std::string IdToPiece(int32_t id) const override {
    if (id < 0 || id >= vocab_size()) return {};
    return processor_.IdToPiece(id);
  }

  int32_t vocab_size() const override { return processor_.GetPieceSize(); }
  int32_t bos_id() const override { return processor_.bos_id(); }
  int32_t eos_id() const override { return processor_.eos_id(); }

 private:
  sentencepiece::SentencePieceProcessor processor_;
};

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> internal_tokenizer::LoadSentencePieceDirect(
    const std::string& path) {
  // Our own check first: SentencePiece's message for a missing file is less specific.
  PKM_ASSIGN_OR_RETURN(const int fd, internal_loader::OpenRegularFile(path, ""));
  ::close(fd);
  auto tokenizer = std::make_unique<SentencePieceTokenizer>();
  PKM_RETURN_IF_ERROR(tokenizer->Load(path));
  return tokenizer;
}

}  // namespace pkm

// The plugin's one entry point (tokenizer_loader.cc): a new tokenizer, or null with *status set.
extern "C" __attribute__((visibility("default"))) pkm::Tokenizer* pkm_sentencepiece_load(
    const std::string* path, pkm::Status* status) {
  auto tokenizer = pkm::internal_tokenizer::LoadSentencePieceDirect(*path);
  if (!tokenizer.ok()) {
    *status = tokenizer.status();
    return nullptr;
  }
  return tokenizer->release();
}
