// pkm info, pkm health, pkm tokenize: facts about the server and its model.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "client/commands.h"
#include "client/connection.h"
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
                        {"slots", p.slots()}});
    }
    const auto& l = info.limits();
    nlohmann::json j = {
        {"server", conn->address()}, {"name", info.name()}, {"path", info.path()},
        {"vocab_size", info.vocab_size()}, {"d_model", info.d_model()},
        {"n_layers", info.n_layers()}, {"n_heads", info.n_heads()},
        {"max_seq_len", info.max_seq_len()}, {"bos_id", info.bos_id()},
        {"eos_id", info.eos_id()}, {"pkm_layers", layers},
        {"parameter_count", info.parameter_count()}, {"device", info.device()},
        {"weight_dtype", info.weight_dtype()}, {"compute_dtype", info.compute_dtype()},
        {"weight_bytes", info.weight_bytes()},
        {"limits", {{"max_prompt_tokens", l.max_prompt_tokens()},
                    {"max_new_tokens", l.max_new_tokens()},
                    {"max_batch_tokens", l.max_batch_tokens()}, {"max_queue", l.max_queue()},
                    {"kv_cache_bytes", l.kv_cache_bytes()},
                    {"kv_cache_tokens", l.kv_cache_tokens()}}}};
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("server      %s\nmodel       %s (%s)\n", conn->address().c_str(), info.name().c_str(),
              info.path().c_str());
  std::printf("shape       %d layers, d_model %d, %d heads, vocab %d, max_seq_len %d\n",
              info.n_layers(), info.d_model(), info.n_heads(), info.vocab_size(),
              info.max_seq_len());
  for (const auto& p : info.pkm_layers()) {
    std::printf("memory      layer %d (%s): %d heads, knn %d, %d^2 = %lld slots, k_dim %d\n",
                p.layer(), p.mode().c_str(), p.heads(), p.knn(), p.n_keys(),
                static_cast<long long>(p.slots()), p.k_dim());
  }
  std::printf("parameters  %lld (%s weights, computed in %s, %.1f MiB held)\n",
              static_cast<long long>(info.parameter_count()), info.weight_dtype().c_str(),
              info.compute_dtype().c_str(), static_cast<double>(info.weight_bytes()) / (1 << 20));
  std::printf("device      %s\n", info.device().c_str());
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
  auto args = ParseOrHelp(argv, "pkm tokenize [flags] \"text\"",
                          "Token ids and pieces of a text under the model's tokenizer.",
                          {{"no-bos", "", "do not prepend BOS", ""},
                           {"json", "", "print {ids, pieces} as JSON", ""}},
                          &code);
  if (!args) return code;
  if (args->positional().size() != 1) {
    return ReportUsageError(Status(StatusCode::kInvalidArgument,
                                   "usage: pkm tokenize [flags] \"text\""));
  }
  auto conn = Connection::FromArgs(*args);
  if (!conn.ok()) return ReportUsageError(conn.status());
  auto stub = v1::Inference::NewStub(conn->channel());
  v1::TokenizeRequest req;
  req.set_text(args->positional()[0]);
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

}  // namespace pkm::cli
