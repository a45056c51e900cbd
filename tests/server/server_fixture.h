// An in-process pkmserve on loopback: the bundled model, an engine, a scheduler, the service
// and the gRPC server on a free port, with a stub to call it.
#pragma once

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "pkmserve/v1/inference.grpc.pb.h"
#include "server/grpc_server.h"
#include "server/inference_service.h"
#include "server/scheduler.h"
#include "tests/server/model_fixture.h"

namespace pkm {

class ServerTest : public ModelTest {
 protected:
  // Starts (or restarts) the server with these options.
  void Serve(SchedulerOptions scheduler_options = {}, ServiceConfig config = {},
             EngineOptions engine_options = {}) {
    server_.reset();
    service_.reset();
    scheduler_.reset();
    engine_ = MakeEngine(size_t{64} << 20, engine_options);
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

  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<InferenceService> service_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pkmserve::v1::Inference::Stub> stub_;
};

}  // namespace pkm
