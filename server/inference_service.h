// pkmserve.v1.Inference over gRPC's callback API: each RPC validates its request, posts the work
// to the Scheduler and returns; the reactor never blocks. Methods that take a request are raw
// (ByteBuffer in and out, server/request_decoding.h), so that a request gRPC could not parse
// still gets INVALID_ARGUMENT naming what is wrong. Every call ends in one RecordOutcome
// (metrics and a log line) and carries its id back as "x-request-id" trailing metadata. Generate streams tokens as the engine
// thread hands them over (coalescing them when the client reads slower than the server decodes).
//
// Status codes: see proto/pkmserve/v1/inference.proto. pkm::Status codes map to grpc codes one
// for one (status_convert.h).
//
// Thread-safety: gRPC calls the service from its own threads; the service keeps no mutable
// state outside the scheduler and per-call reactors.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "pkmserve/v1/inference.grpc.pb.h"
#include "model_loader/model_config.h"
#include "model_loader/tokenizer.h"
#include "server/metrics.h"
#include "server/request_outcome.h"
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

namespace internal {
namespace v1 = pkmserve::v1;
using RawInferenceService = v1::Inference::WithRawCallbackMethod_Generate<
    v1::Inference::WithRawCallbackMethod_Score<v1::Inference::WithRawCallbackMethod_Tokenize<
        v1::Inference::WithRawCallbackMethod_Detokenize<v1::Inference::CallbackService>>>>;
}  // namespace internal

class InferenceService final : public internal::RawInferenceService {
 public:
  // `scheduler` and `tokenizer` must outlive the service; `config` is the served model's.
  InferenceService(Scheduler* scheduler, const Tokenizer* tokenizer, const ModelConfig& config,
                   ServiceConfig service_config);
  ~InferenceService() override;

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Generate(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const pkmserve::v1::GetModelInfoRequest* request,
                                         pkmserve::v1::ModelInfo* response) override;

 private:
  // OK, or UNAUTHENTICATED when a token is required and the call lacks it.
  grpc::Status CheckAuth(const grpc::CallbackServerContext* context) const;
  // A new call's outcome record, with its id.
  RequestOutcome NewOutcome(const char* method);
  // A unary call answered on the spot: authenticates, decodes a `Request`, lets `answer`
  // (grpc::Status(const Request&, Response*, RequestOutcome*)) fill the response and the
  // counts, encodes it and records the outcome.
  template <class Request, class Response, class Answer>
  grpc::ServerUnaryReactor* AnswerNow(const char* method, grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request_bytes,
                                      grpc::ByteBuffer* response_bytes, Answer answer);

  Scheduler* scheduler_;
  const Tokenizer* tokenizer_;
  ModelConfig model_config_;
  ServiceConfig config_;
  std::unique_ptr<PumpQueue> pumps_;  // starts Generate writes off the engine thread
  std::atomic<uint64_t> next_call_id_{1};
};

}  // namespace pkm
