// pkm info, health, tokenize, detokenize: facts about the server, its model and tokenizer.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include <nlohmann/json.hpp>

#include "client/commands.h"
#include "client/connection.h"
#include "client/text_input.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "pkmserve/v1/inference.grpc.pb.h"

namespace pkm::cli {
namespace {

namespace v1 = pkmserve::v1;

}  // namespace

int InfoCommand(const std::vector<std::string>& argv) {
  int code = 0;
  auto args = ParseOrHelp(argv, "pkm info [flags]",
                          "The served model, its memory layers, device and the server's limits.",
                          {{"json", "", "print the ModelInfo message as JSON", ""}}, &code);
  if (!args) return code;
  auto conn = Connection::FromArgs(*args);
  if (!conn.ok()) return ReportUsageError(conn.status());
  v1::ModelInfo info;
  if (grpc::Status st = FetchModelInfo(*conn, &info); !st.ok()) return ReportRpcError(st);
  if (args->Has("json")) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& p : info.pkm_layers()) {
      layers.push_back({{"layer", p.layer()}, {"mode", p.mode()}, {"heads", p.heads()},
                        {"knn", p.knn()}, {"n_keys", p.n_keys()}, {"k_dim", p.k_dim()},
                        {"slots", p.slots()}, {"v_dim", p.v_dim()},
                        {"query_norm", p.query_norm()}, {"output", p.output()},
                        {"values", p.values()}, {"values_dtype", p.values_dtype()}});
    }
    const auto& l = info.limits();
    nlohmann::json j = {
        {"server", conn->address()}, {"name", info.name()}, {"path", info.path()},
        {"family", info.family()}, {"norm", info.norm()}, {"block", info.block()},
        {"positions", info.positions()}, {"ffn", info.ffn()}, {"ffn_hidden", info.ffn_hidden()},
        {"n_kv_heads", info.n_kv_heads()}, {"head_dim", info.head_dim()},
        {"tied_embeddings", info.tied_embeddings()}, {"tokenizer", info.tokenizer()},
        {"encodes_text", info.encodes_text()}, {"decodes_text", info.decodes_text()},
        {"vocab_size", info.vocab_size()}, {"d_model", info.d_model()},
        {"n_layers", info.n_layers()}, {"n_heads", info.n_heads()},
        {"max_seq_len", info.max_seq_len()}, {"bos_id", info.bos_id()},
        {"eos_id", info.eos_id()}, {"pkm_layers", layers},
        {"parameter_count", info.parameter_count()}, {"device", info.device()},
        {"weight_dtype", info.weight_dtype()}, {"compute_dtype", info.compute_dtype()},
        {"held_dtype", info.held_dtype()}, {"mapped_weight_bytes", info.mapped_weight_bytes()},
        {"weight_bytes", info.weight_bytes()}, {"server_version", info.server_version()},
        {"limits", {{"max_prompt_tokens", l.max_prompt_tokens()},
                    {"max_new_tokens", l.max_new_tokens()},
                    {"max_batch_tokens", l.max_batch_tokens()}, {"max_queue", l.max_queue()},
                    {"kv_cache_bytes", l.kv_cache_bytes()},
                    {"kv_cache_tokens", l.kv_cache_tokens()}}}};
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("server      %s, pkmserve %s\nmodel       %s (%s)\n", conn->address().c_str(),
              info.server_version().c_str(), info.name().c_str(), info.path().c_str());
  std::printf("family      %s: %s %s, %s positions, %s FFN %d, %s head\n",
              info.family().c_str(), info.norm().c_str(), info.block().c_str(),
              info.positions().c_str(), info.ffn().c_str(), info.ffn_hidden(),
              info.tied_embeddings() ? "tied" : "separate");
  std::printf("shape       %d layers, d_model %d, %d heads (%d kv, head_dim %d), vocab %d, "
              "max_seq_len %d\n",
              info.n_layers(), info.d_model(), info.n_heads(), info.n_kv_heads(),
              info.head_dim(), info.vocab_size(), info.max_seq_len());
  for (const auto& p : info.pkm_layers()) {
    std::printf("memory      layer %d (%s): %d heads, knn %d, %d^2 = %lld slots, k_dim %d, v_dim "
                "%d, query norm %s, output %s, values %s (%s)\n",
                p.layer(), p.mode().c_str(), p.heads(), p.knn(), p.n_keys(),
                static_cast<long long>(p.slots()), p.k_dim(), p.v_dim(), p.query_norm().c_str(),
                p.output().c_str(), p.values().c_str(), p.values_dtype().c_str());
  }
  std::printf("parameters  %lld (%s weights, matrices held as %s, computed in %s, %.1f MiB "
              "held, %.1f MiB of it mapped from the file)\n",
              static_cast<long long>(info.parameter_count()), info.weight_dtype().c_str(),
              info.held_dtype().c_str(), info.compute_dtype().c_str(),
              static_cast<double>(info.weight_bytes()) / (1 << 20),
              static_cast<double>(info.mapped_weight_bytes()) / (1 << 20));
  std::printf("device      %s\n", info.device().c_str());
  std::printf("tokenizer   %s%s\n", info.tokenizer().c_str(),
              !info.encodes_text() && !info.decodes_text() ? ": served on token ids only"
              : !info.encodes_text() ? ": decodes only, prompts must be token ids"
                                     : "");
  const auto& l = info.limits();
  std::printf("limits      prompt %u, new tokens %u, batch %u tokens/step, queue %u, KV cache "
              "%u tokens (%.1f MiB)\n",
              l.max_prompt_tokens(), l.max_new_tokens(), l.max_batch_tokens(), l.max_queue(),
              l.kv_cache_tokens(), static_cast<double>(l.kv_cache_bytes()) / (1 << 20));
  return kExitOk;
}

int HealthCommand(const std::vector<std::string>& argv) {
  int code = 0;
  auto args = ParseOrHelp(argv, "pkm health [flags]",
                          "grpc.health.v1 status of the server: exit 0 when SERVING, 4 when not, "
                          "3 when unreachable.",
                          {{"service", "NAME", "service to ask about ('' = the whole server)", ""}},
                          &code);
  if (!args) return code;
  auto conn = Connection::FromArgs(*args);
  if (!conn.ok()) return ReportUsageError(conn.status());
  auto stub = grpc::health::v1::Health::NewStub(conn->channel());
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(args->Get("service"));
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  conn->Prepare(&ctx);
  const grpc::Status st = stub->Check(&ctx, req, &resp);
  if (!st.ok()) return ReportRpcError(st);
  const std::string name = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
  std::printf("%s %s\n", conn->address().c_str(), name.c_str());
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk : kExitServer;
}

int TokenizeCommand(const std::vector<std::string>& argv) {
  int code = 0;
  const std::string usage = "pkm tokenize [flags] \"text\" | - | --file FILE";
  auto args = ParseOrHelp(argv, usage,
                          "Token ids and pieces of a text under the model's tokenizer. The text "
                          "is the argument,\nstdin (-) or a file (--file); it must be UTF-8.",
                          {{"file", "FILE", "read the text from FILE", ""},
                           {"no-bos", "", "do not prepend BOS", ""},
                           {"json", "", "print {ids, pieces} as JSON", ""}},
                          &code);
  if (!args) return code;
  auto text = ReadTextArgument(*args, usage);
  if (!text.ok()) return ReportUsageError(text.status());
  auto conn = Connection::FromArgs(*args);
  if (!conn.ok()) return ReportUsageError(conn.status());
  auto stub = v1::Inference::NewStub(conn->channel());
  v1::TokenizeRequest req;
  req.set_text(*text);
  req.set_add_bos(!args->Has("no-bos"));
  v1::TokenizeResponse resp;
  grpc::ClientContext ctx;
  conn->Prepare(&ctx);
  const grpc::Status st = stub->Tokenize(&ctx, req, &resp);
  if (!st.ok()) return ReportRpcError(st);
  if (args->Has("json")) {
    nlohmann::json j = {{"ids", std::vector<int32_t>(resp.ids().begin(), resp.ids().end())},
                        {"pieces", std::vector<std::string>(resp.pieces().begin(),
                                                            resp.pieces().end())}};
    std::printf("%s\n", j.dump().c_str());
    return kExitOk;
  }
  for (int i = 0; i < resp.ids_size(); ++i) {
    std::printf("%d\t%s\n", resp.ids(i), resp.pieces(i).c_str());
  }
  return kExitOk;
}

int DetokenizeCommand(const std::vector<std::string>& argv) {
  const std::string usage = "pkm detokenize [flags] ID... | -";
  int code = 0;
  auto args = ParseOrHelp(argv, usage,
                          "The text of token ids (separated by spaces or commas; - reads them "
                          "from stdin),\nas the server's tokenizer decodes them.",
                          {{"json", "", "print {text} as JSON", ""}}, &code);
  if (!args) return code;
  std::string list;
  for (const std::string& a : args->positional()) {
    if (a == "-") {
      auto in = ReadTextFile("-");
      if (!in.ok()) return ReportUsageError(in.status());
      list += " " + *in;
    } else {
      list += " " + a;
    }
  }
  for (char& c : list) {
    if (c == ',' || c == '[' || c == ']') c = ' ';  // "1,2,3" and a JSON list from tokenize
  }
  v1::DetokenizeRequest req;
  std::istringstream words(list);
  for (std::string word; words >> word;) {
    char* end = nullptr;
    const long id = std::strtol(word.c_str(), &end, 10);
    if (*end != '\0' || id < 0 || id > INT32_MAX) {
      return ReportUsageError(Status(StatusCode::kInvalidArgument,
                                     "'" + word + "' is not a token id (a non-negative integer)"));
    }
    req.add_ids(static_cast<int32_t>(id));
  }
  if (req.ids_size() == 0) {
    return ReportUsageError(Status(StatusCode::kInvalidArgument, "no token ids given (usage: " +
                                                                     usage + ")"));
  }
  auto conn = Connection::FromArgs(*args);
  if (!conn.ok()) return ReportUsageError(conn.status());
  auto stub = v1::Inference::NewStub(conn->channel());
  v1::DetokenizeResponse resp;
  grpc::ClientContext ctx;
  conn->Prepare(&ctx);
  const grpc::Status st = stub->Detokenize(&ctx, req, &resp);
  if (!st.ok()) return ReportRpcError(st);
  if (args->Has("json")) {
    std::printf("%s\n", nlohmann::json({{"text", resp.text()}}).dump().c_str());
  } else {
    std::printf("%s\n", resp.text().c_str());
  }
  return kExitOk;
}

}  // namespace pkm::cli
