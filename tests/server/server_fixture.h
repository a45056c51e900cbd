// An in-process pkmserve on loopback: the bundled model, an engine, a scheduler, the service
// and the gRPC server on a free port, with a stub to call it.
#pragma once

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "engine/engine.h"
#include "model_loader/model_loader.h"
#include "model_loader/tokenizer_sentencepiece.h"
#include "pkmserve/v1/inference.grpc.pb.h"
#include "server/grpc_server.h"
#include "server/inference_service.h"
#include "server/scheduler.h"

namespace pkm {

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = LoadModel("models/pkm-small");
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = new LoadedModel(std::move(*model));
    auto tok = LoadSentencePieceTokenizer(model_->tokenizer_path());
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    tokenizer_ = tok->release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete model_;
  }

  static std::unique_ptr<Engine> MakeEngine(size_t kv_bytes = size_t{64} << 20) {
    auto engine = Engine::Create(*model_, MakeCpuBackend(1), {.kv_cache_bytes = kv_bytes});
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  // Starts (or restarts) the server with these options.
  void Serve(SchedulerOptions scheduler_options = {}, ServiceConfig config = {}) {
    server_.reset();
    service_.reset();
    scheduler_.reset();
    engine_ = MakeEngine();
    scheduler_ = std::make_unique<Scheduler>(engine_.get(), tokenizer_, scheduler_options);
    config.model_info.set_name("pkm-small");
    config.model_info.set_vocab_size(model_->config().vocab_size);
    config.model_info.set_max_seq_len(model_->config().max_seq_len);
    service_ = std::make_unique<InferenceService>(scheduler_.get(), tokenizer_, model_->config(),
                                                  std::move(config));
    auto server = GrpcServer::Start({.listen = "127.0.0.1:0", .tls = {}}, service_.get());
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel(Address(), grpc::InsecureChannelCredentials());
    stub_ = pkmserve::v1::Inference::NewStub(channel_);
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_.reset();
    service_.reset();
    scheduler_.reset();
  }

  std::string Address() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  static LoadedModel* model_;
  static Tokenizer* tokenizer_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<InferenceService> service_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pkmserve::v1::Inference::Stub> stub_;
};

inline LoadedModel* ServerTest::model_ = nullptr;
inline Tokenizer* ServerTest::tokenizer_ = nullptr;

}  // namespace pkm
