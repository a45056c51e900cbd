// pkmserve.v1.Inference over gRPC's callback API: each RPC validates its request, posts the work
// to the Scheduler and returns; the reactor never blocks. Generate streams tokens as the engine
// thread hands them over (coalescing them when the client reads slower than the server decodes).
//
// Status codes: see proto/pkmserve/v1/inference.proto. pkm::Status codes map to grpc codes one
// for one (status_convert.h).
//
// Thread-safety: gRPC calls the service from its own threads; the service keeps no mutable
// state outside the scheduler and per-call reactors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "pkmserve/v1/inference.grpc.pb.h"
#include "model_loader/model_config.h"
#include "model_loader/tokenizer.h"
#include "server/metrics.h"
#include "server/request_validation.h"
#include "server/scheduler.h"

namespace pkm {

class PumpQueue;

struct ServiceConfig {
  ServiceLimits limits;
  // When not empty, every Inference RPC needs "authorization: Bearer <auth_token>" metadata.
  std::string auth_token;
  // GetModelInfo's answer, filled by the caller (model, device, dtype, limits).
  pkmserve::v1::ModelInfo model_info;
  // Request latencies and outcomes are recorded here when set (must outlive the service).
  ServerMetrics* metrics = nullptr;
};

class InferenceService final : public pkmserve::v1::Inference::CallbackService {
 public:
  // `scheduler` and `tokenizer` must outlive the service; `config` is the served model's.
  InferenceService(Scheduler* scheduler, const Tokenizer* tokenizer, const ModelConfig& config,
                   ServiceConfig service_config);
  ~InferenceService() override;

  grpc::ServerWriteReactor<pkmserve::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const pkmserve::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context,
                                  const pkmserve::v1::ScoreRequest* request,
                                  pkmserve::v1::ScoreResponse* response) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const pkmserve::v1::TokenizeRequest* request,
                                     pkmserve::v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const pkmserve::v1::DetokenizeRequest* request,
                                       pkmserve::v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const pkmserve::v1::GetModelInfoRequest* request,
                                         pkmserve::v1::ModelInfo* response) override;

 private:
  // OK, or UNAUTHENTICATED when a token is required and the call lacks it.
  grpc::Status CheckAuth(const grpc::CallbackServerContext* context) const;

  Scheduler* scheduler_;
  const Tokenizer* tokenizer_;
  ModelConfig model_config_;
  ServiceConfig config_;
  std::unique_ptr<PumpQueue> pumps_;  // starts Generate writes off the engine thread
};

}  // namespace pkm
