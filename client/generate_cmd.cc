// pkm generate: streams a continuation of a prompt as it is decoded.
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "client/commands.h"
#include "client/connection.h"
#include "pkmserve/v1/inference.grpc.pb.h"

namespace pkm::cli {

namespace v1 = pkmserve::v1;

int GenerateCommand(const std::vector<std::string>& argv) {
  const std::string usage = "pkm generate [flags] \"prompt\"";
  int code = 0;
  auto args = ParseOrHelp(
      argv, usage, "Streams a continuation of the prompt as it is decoded.",
      {
          {"max-tokens", "N", "tokens to generate at most (0: the server's default)", "0"},
          {"temperature", "T", "sampling temperature, 0 for greedy", "1"},
          {"top-k", "K", "keep the K most likely tokens, 0 for all", "0"},
          {"top-p", "P", "nucleus sampling threshold in (0, 1]", "1"},
          {"seed", "S", "sampler seed (default: drawn by the server, printed with --json)", ""},
          {"stop", "TEXT", "stop before TEXT (repeatable)", ""},
          {"ignore-eos", "", "keep generating after the end-of-sequence token", ""},
          {"json", "", "print one JSON object per streamed message instead of the text", ""},
      },
      &code);
  if (!args) return code;
  if (args->positional().size() != 1) {
    return ReportUsageError(Status(StatusCode::kInvalidArgument, "usage: " + usage));
  }
  auto max_tokens = args->GetInt("max-tokens", 0, 1 << 24);
  auto temperature = args->GetDouble("temperature", 0, 100);
  auto top_k = args->GetInt("top-k", 0, 1 << 24);
  auto top_p = args->GetDouble("top-p", 1e-9, 1);
  for (const Status& s :
       {max_tokens.status(), temperature.status(), top_k.status(), top_p.status()}) {
    if (!s.ok()) return ReportUsageError(s);
  }
  auto conn = Connection::FromArgs(*args);
  if (!conn.ok()) return ReportUsageError(conn.status());

  v1::GenerateRequest req;
  req.set_text(args->positional()[0]);
  req.set_max_new_tokens(static_cast<uint32_t>(*max_tokens));
  req.set_temperature(static_cast<float>(*temperature));
  req.set_top_k(static_cast<uint32_t>(*top_k));
  req.set_top_p(static_cast<float>(*top_p));
  if (args->Has("seed")) {
    auto seed = args->GetInt("seed", 0, std::numeric_limits<long>::max());
    if (!seed.ok()) return ReportUsageError(seed.status());
    req.set_seed(static_cast<uint64_t>(*seed));
  }
  for (const std::string& stop : args->GetAll("stop")) req.add_stop(stop);
  req.set_ignore_eos(args->Has("ignore-eos"));
  const bool json = args->Has("json");
  req.set_logprobs(json);

  auto stub = v1::Inference::NewStub(conn->channel());
  grpc::ClientContext ctx;
  conn->Prepare(&ctx);
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateResponse msg;
  bool printed = false;
  while (reader->Read(&msg)) {
    printed = true;
    if (json) {
      nlohmann::json j = {{"text", msg.text()}};
      nlohmann::json tokens = nlohmann::json::array();
      for (const auto& t : msg.tokens())
        tokens.push_back({{"id", t.id()}, {"logprob", t.logprob()}});
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
    }
    std::fflush(stdout);
  }
  const grpc::Status st = reader->Finish();
  if (!json && printed) std::printf("\n");
  if (!st.ok()) return ReportRpcError(st);
  return kExitOk;
}

}  // namespace pkm::cli
