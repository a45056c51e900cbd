#include "model_loader/model_tokenizer.h"

#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model_loader/ids_only_tokenizer.h"
#include "model_loader/tokenizer_sentencepiece.h"
#include "model_loader/tokenizer_tiktoken.h"
#include "model_loader/tokenizer_xlm.h"

namespace pkm {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

StatusOr<TiktokenOptions> ReadTiktokenOptions(const std::string& path, const ModelConfig& c) {
  std::ifstream in(path);
  if (!in) {
    return NotFoundError(path + ": no such file (tokenizer.tiktoken needs it: its pattern and "
                                "special tokens)");
  }
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return InvalidArgumentError(path + ": expected a JSON object");
  TiktokenOptions options;
  const std::string pattern = j.value("pattern", std::string("cl100k"));
  options.pattern = pattern == "cl100k" ? kCl100kPattern
                    : pattern == "llama3" ? kLlama3Pattern
                                          : pattern;
  if (j.contains("special_tokens")) {
    if (!j["special_tokens"].is_object()) {
      return InvalidArgumentError(path + ": field 'special_tokens': expected an object of "
                                         "\"text\": id");
    }
    for (const auto& [name, id] : j["special_tokens"].items()) {
      if (!id.is_number_integer()) {
        return InvalidArgumentError(path + ": field 'special_tokens." + name +
                                    "': expected an integer id");
      }
      options.special_tokens.emplace_back(name, id.get<int32_t>());
    }
  }
  options.bos_id = c.bos_id;
  options.eos_id = c.eos_id;
  return options;
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> LoadModelTokenizer(const LoadedModel& model) {
  const std::string& dir = model.dir();
  const ModelConfig& config = model.config();
  const std::string sentencepiece = dir + "/tokenizer.model";
  const std::string tiktoken = dir + "/tokenizer.tiktoken";
  const std::string xlm_dictionary = dir + "/xlm_dictionary.txt";
  const std::string xlm_codes = dir + "/xlm_bpe_codes.txt";
  if (Exists(sentencepiece)) return LoadSentencePieceTokenizer(sentencepiece);
  if (Exists(tiktoken)) {
    PKM_ASSIGN_OR_RETURN(TiktokenOptions options,
                         ReadTiktokenOptions(dir + "/tiktoken.json", config));
    return LoadTiktokenTokenizer(tiktoken, options);
  }
  if (Exists(xlm_dictionary)) {
    return LoadXlmTokenizer(xlm_dictionary, Exists(xlm_codes) ? xlm_codes : "",
                            config.vocab_size, config.bos_id, config.eos_id);
  }
  return std::unique_ptr<Tokenizer>(
      std::make_unique<IdsOnlyTokenizer>(config.vocab_size, config.bos_id, config.eos_id));
}

}  // namespace pkm
