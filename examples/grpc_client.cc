// A complete pkmserve client in C++: streams a generation, then scores a text.
// It needs only the proto (pkmserve/v1/inference.proto) and gRPC.
//
//   build/bin/pkm-client-example [host:port] "prompt"
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "pkmserve/v1/inference.grpc.pb.h"

int main(int argc, char** argv) {
  const std::string address = argc > 2 ? argv[1] : "127.0.0.1:50051";
  const std::string prompt = argc > 1 ? argv[argc - 1] : "The whale";
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = pkmserve::v1::Inference::NewStub(channel);

  // Generate: server streaming. Each message carries the text that became final.
  pkmserve::v1::GenerateRequest request;
  request.set_text(prompt);
  request.set_max_new_tokens(32);
  request.set_temperature(0.8f);
  request.set_seed(42);
  grpc::ClientContext generate_context;
  generate_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = stub->Generate(&generate_context, request);
  pkmserve::v1::GenerateResponse message;
  std::printf("%s", prompt.c_str());
  while (reader->Read(&message)) {
    std::printf("%s", message.text().c_str());
    std::fflush(stdout);
    if (message.finish_reason() != pkmserve::v1::FINISH_REASON_UNSPECIFIED) {
      std::printf("\n[finish %s, %u prompt + %u generated tokens]\n",
                  pkmserve::v1::FinishReason_Name(message.finish_reason()).c_str(),
                  message.usage().prompt_tokens(), message.usage().completion_tokens());
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "Generate failed: %d %s\n", status.error_code(),
                 status.error_message().c_str());
    return 1;
  }

  // Score: per-token log-probabilities and perplexity of a text.
  pkmserve::v1::ScoreRequest score;
  score.set_text(prompt);
  score.set_per_token(false);
  pkmserve::v1::ScoreResponse scored;
  grpc::ClientContext score_context;
  status = stub->Score(&score_context, score, &scored);
  if (!status.ok()) {
    std::fprintf(stderr, "Score failed: %d %s\n", status.error_code(),
                 status.error_message().c_str());
    return 1;
  }
  std::printf("perplexity of the prompt: %.3f over %u tokens\n", scored.perplexity(),
              scored.token_count());
  return 0;
}
