// pkm generate: streams a continuation of a prompt as it is decoded.
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "client/commands.h"
#include "client/connection.h"
#include "client/text_input.h"
#include "pkmserve/v1/inference.grpc.pb.h"

namespace pkm::cli {

namespace v1 = pkmserve::v1;

namespace {

// The request fields this command's flags set, for errors in the flags' terms.
const FlagTerms kTerms = {
    {"max_new_tokens", "--max-tokens"}, {"temperature", "--temperature"}, {"top_k", "--top-k"},
    {"top_p", "--top-p"},               {"seed", "--seed"},               {"stop", "--stop"},
    {"truncate", "--truncate"},         {"top_logprobs", "--top-logprobs"},
    {"logprobs", "--logprobs"},         {"ignore_eos", "--ignore-eos"},
    {"memory_knn", "--memory-knn"},     {"memory_heads", "--memory-heads"},
};

// After the streamed text: each token's id, piece and logprob, and its best alternatives.
void PrintLogprobs(const std::vector<v1::GeneratedToken>& tokens) {
  // The piece goes after the numbers: pieces are UTF-8, and printf pads by bytes.
  std::printf("\n%-6s %-8s %10s  %-20s  %s\n", "index", "id", "logprob", "piece", "top");
  for (size_t i = 0; i < tokens.size(); ++i) {
    const v1::GeneratedToken& t = tokens[i];
    std::string top;
    for (const v1::TokenLogprob& alt : t.top_logprobs()) {
      char entry[96];
      std::snprintf(entry, sizeof entry, "%s%s %.4f", top.empty() ? "" : ", ", alt.piece().c_str(),
                    static_cast<double>(alt.logprob()));
      top += entry;
    }
    std::printf("%-6zu %-8d %10.4f  %-20s  %s\n", i, t.id(), static_cast<double>(t.logprob()),
                t.piece().c_str(), top.c_str());
  }
}

nlohmann::json ToJson(const v1::GeneratedToken& t) {
  nlohmann::json j = {{"id", t.id()}, {"piece", t.piece()}, {"logprob", t.logprob()}};
  if (t.top_logprobs_size() > 0) {
    nlohmann::json top = nlohmann::json::array();
    for (const v1::TokenLogprob& alt : t.top_logprobs()) {
      top.push_back({{"id", alt.id()}, {"piece", alt.piece()}, {"logprob", alt.logprob()}});
    }
    j["top_logprobs"] = top;
  }
  return j;
}

}  // namespace

int GenerateCommand(const std::vector<std::string>& argv) {
  const std::string usage = "pkm generate [flags] \"prompt\" | - | --file FILE";
  int code = 0;
  auto args = ParseOrHelp(
      argv, usage,
      "Streams a continuation of the prompt as it is decoded. The prompt is the argument, stdin\n"
      "(-) or a file (--file); it must be UTF-8.",
      {
          {"file", "FILE", "read the prompt from FILE", ""},
          {"max-tokens", "N",
           "tokens to generate at most (0: as many as fit in the context, up to the server's "
           "limit)",
           "0"},
          {"truncate", "N", "keep only the prompt's last N tokens (0: refuse a longer prompt)",
           "0"},
          {"temperature", "T", "sampling temperature, 0 for greedy", "1"},
          {"top-k", "K", "keep the K most likely tokens, 0 for all", "0"},
          {"top-p", "P", "nucleus sampling threshold in (0, 1]", "1"},
          {"seed", "S", "sampler seed (default: drawn by the server, printed with --json)", ""},
          {"stop", "TEXT", "stop before TEXT (repeatable)", ""},
          {"ignore-eos", "", "keep generating after the end-of-sequence token", ""},
          {"logprobs", "", "after the text, list each token's id, piece and logprob", ""},
          {"top-logprobs", "N", "with each token, its N most likely alternatives (implies "
                                "--logprobs)", "0"},
          {"memory-knn", "K", "read K slots per memory head (below the trained knn; 0: as "
                              "trained)", "0"},
          {"memory-heads", "H", "read the first H memory heads (0: as trained)", "0"},
          {"json", "", "print one JSON object per streamed message instead of the text", ""},
      },
      &code);
  if (!args) return code;
  auto prompt = ReadTextArgument(*args, usage);
  if (!prompt.ok()) return ReportUsageError(prompt.status());
  auto max_tokens = args->GetInt("max-tokens", 0, 1 << 24);
  auto truncate = args->GetInt("truncate", 0, 1 << 24);
  auto top_logprobs = args->GetInt("top-logprobs", 0, 1 << 10);
  auto temperature = args->GetDouble("temperature", 0, 100);
  auto top_k = args->GetInt("top-k", 0, 1 << 24);
  auto top_p = args->GetDouble("top-p", 1e-9, 1);
  auto memory_knn = args->GetInt("memory-knn", 0, 1 << 20);
  auto memory_heads = args->GetInt("memory-heads", 0, 1 << 20);
  for (const Status& s :
       {max_tokens.status(), truncate.status(), top_logprobs.status(), temperature.status(),
        top_k.status(), top_p.status(), memory_knn.status(), memory_heads.status()}) {
    if (!s.ok()) return ReportUsageError(s);
  }
  auto conn = Connection::FromArgs(*args);
  if (!conn.ok()) return ReportUsageError(conn.status());

  v1::GenerateRequest req;
  req.set_text(*prompt);
  req.set_max_new_tokens(static_cast<uint32_t>(*max_tokens));
  req.set_truncate(static_cast<uint32_t>(*truncate));
  req.set_temperature(static_cast<float>(*temperature));
  req.set_top_k(static_cast<uint32_t>(*top_k));
  req.set_top_p(static_cast<float>(*top_p));
  req.set_memory_knn(static_cast<uint32_t>(*memory_knn));
  req.set_memory_heads(static_cast<uint32_t>(*memory_heads));
  if (args->Has("seed")) {
    auto seed = args->GetInt("seed", 0, std::numeric_limits<long>::max());
    if (!seed.ok()) return ReportUsageError(seed.status());
    req.set_seed(static_cast<uint64_t>(*seed));
  }
  for (const std::string& stop : args->GetAll("stop")) req.add_stop(stop);
  req.set_ignore_eos(args->Has("ignore-eos"));
  const bool json = args->Has("json");
  const bool table = args->Has("logprobs") || *top_logprobs > 0;
  req.set_logprobs(json || table);
  req.set_top_logprobs(static_cast<uint32_t>(*top_logprobs));

  auto stub = v1::Inference::NewStub(conn->channel());
  grpc::ClientContext ctx;
  conn->Prepare(&ctx);
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateResponse msg;
  std::vector<v1::GeneratedToken> generated;  // kept for the --logprobs table
  bool printed = false;
  while (reader->Read(&msg)) {
    printed = true;
    if (json) {
      nlohmann::json j = {{"text", msg.text()}};
      nlohmann::json tokens = nlohmann::json::array();
      for (const auto& t : msg.tokens()) tokens.push_back(ToJson(t));
      j["tokens"] = tokens;
      if (msg.seed() != 0) j["seed"] = msg.seed();
      if (msg.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
        j["finish_reason"] = v1::FinishReason_Name(msg.finish_reason());
        j["usage"] = {{"prompt_tokens", msg.usage().prompt_tokens()},
                      {"completion_tokens", msg.usage().completion_tokens()}};
      }
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s", msg.text().c_str());
      if (table) generated.insert(generated.end(), msg.tokens().begin(), msg.tokens().end());
    }
    std::fflush(stdout);
  }
  const grpc::Status st = reader->Finish();
  if (!json && printed) std::printf("\n");
  if (!st.ok()) return ReportRpcError(st, kTerms);
  if (!json && table) PrintLogprobs(generated);
  return kExitOk;
}

}  // namespace pkm::cli
