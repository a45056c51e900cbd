// pkmserve.v1.Inference over loopback, in-process: streaming, exact scores, batch-independent
// seeded sampling, cancellation, deadlines, the queue bound, every INVALID_ARGUMENT case,
// bearer tokens, health and reflection.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "engine/generation.h"
#include "engine/scoring.h"
#include <prometheus/text_serializer.h>

#include <sstream>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/server/server_fixture.h"

namespace pkm {
namespace {

namespace v1 = pkmserve::v1;

struct Stream {
  std::vector<v1::GenerateResponse> messages;
  grpc::Status status;
  std::vector<int32_t> tokens() const {
    std::vector<int32_t> ids;
    for (const auto& m : messages) {
      for (const auto& t : m.tokens()) ids.push_back(t.id());
    }
    return ids;
  }
  std::string text() const {
    std::string s;
    for (const auto& m : messages) s += m.text();
    return s;
  }
};

Stream RunGenerate(v1::Inference::Stub& stub, const v1::GenerateRequest& request,
                   grpc::ClientContext* context = nullptr) {
  grpc::ClientContext own;
  grpc::ClientContext* ctx = context != nullptr ? context : &own;
  Stream out;
  auto reader = stub.Generate(ctx, request);
  v1::GenerateResponse msg;
  while (reader->Read(&msg)) out.messages.push_back(msg);
  out.status = reader->Finish();
  return out;
}

class InferenceServiceTest : public ServerTest {
 protected:
  // Waits until the scheduler has ended `accepted` requests and published an idle snapshot.
  // The count matters: a client sees its call end before the scheduler's next snapshot, so a
  // snapshot taken before the request ran is idle too and proves nothing.
  void ExpectKvReturnsToZero(uint64_t accepted) {
    for (int i = 0; i < 500; ++i) {
      const SchedulerStats s = scheduler_->Stats();
      if (s.requests_finished >= accepted && s.kv_usage == 0.0 && s.running == 0 &&
          s.waiting == 0) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const SchedulerStats s = scheduler_->Stats();
    EXPECT_EQ(s.requests_finished, accepted);
    EXPECT_EQ(s.kv_usage, 0.0);
    // Stats() locked the mutex the engine thread published under after its last release.
    EXPECT_EQ(engine_->kv_cache().used_blocks(), 0);
  }
};

TEST_F(InferenceServiceTest, GenerateStreamsTokensTextAndUsage) {
  Serve();
  v1::GenerateRequest req;
  req.set_text("It was the best of times");
  req.set_max_new_tokens(20);
  req.set_temperature(0);
  req.set_ignore_eos(true);
  req.set_logprobs(true);
  req.set_top_logprobs(2);
  const Stream s = RunGenerate(*stub_, req);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  ASSERT_FALSE(s.messages.empty());
  const v1::GenerateResponse& last = s.messages.back();
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(last.usage().completion_tokens(), 20u);
  const std::vector<int32_t> prompt = Prompt("It was the best of times");
  EXPECT_EQ(last.usage().prompt_tokens(), prompt.size());
  for (size_t i = 0; i + 1 < s.messages.size(); ++i) {
    EXPECT_EQ(s.messages[i].finish_reason(), v1::FINISH_REASON_UNSPECIFIED);
  }
  // The same request run offline on an idle engine.
  GenerateOptions opt;
  opt.sampling.temperature = 0;
  opt.max_new_tokens = 20;
  opt.ignore_eos = true;
  auto idle = MakeEngine();
  auto offline = Generate(*idle, *tokenizer_, 1, prompt, opt);
  ASSERT_TRUE(offline.ok());
  EXPECT_EQ(s.tokens(), offline->tokens);
  EXPECT_EQ(s.text(), offline->text);
  for (const auto& m : s.messages) {
    for (const auto& t : m.tokens()) {
      ASSERT_EQ(t.top_logprobs_size(), 2);
      EXPECT_EQ(t.top_logprobs(0).id(), t.id());  // greedy
      EXPECT_EQ(t.top_logprobs(0).logprob(), t.logprob());
      EXPECT_EQ(t.top_logprobs(0).piece(), tokenizer_->IdToPiece(t.id()));
      EXPECT_LE(t.logprob(), 0.0f);
    }
  }
}

TEST_F(InferenceServiceTest, SeedIsReturnedAndReproducesTheOutput) {
  Serve();
  v1::GenerateRequest req;
  req.set_text("Call me");
  req.set_max_new_tokens(12);
  req.set_ignore_eos(true);
  const Stream first = RunGenerate(*stub_, req);  // no seed: the server draws one
  ASSERT_TRUE(first.status.ok());
  req.set_seed(first.messages.front().seed());
  const Stream again = RunGenerate(*stub_, req);
  ASSERT_TRUE(again.status.ok());
  EXPECT_EQ(again.messages.front().seed(), first.messages.front().seed());
  EXPECT_EQ(again.tokens(), first.tokens());
}

TEST_F(InferenceServiceTest, ScoreEqualsEngineScoringExactly) {
  Serve({.max_batch_tokens = 40});
  std::string text;
  for (int i = 0; i < 40; ++i) text += "The union is strong and the whale is white. ";
  const std::vector<int32_t> tokens = Prompt(text);
  ASSERT_GT(tokens.size(), 256u);
  struct Case {
    uint32_t context, stride, top_n;
  };
  for (const Case& c : {Case{0, 0, 0}, Case{64, 32, 3}, Case{16, 15, 0}}) {
    v1::ScoreRequest req;
    req.set_text(text);
    req.set_context(c.context);
    req.set_stride(c.stride);
    req.set_top_n(c.top_n);
    v1::ScoreResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status st = stub_->Score(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    const int context = c.context == 0 ? 256 : static_cast<int>(c.context);
    const int stride = c.stride == 0 ? context / 2 : static_cast<int>(c.stride);
    auto idle = MakeEngine();
    auto want = ScoreTokensWindowed(*idle, 1, tokens, context, stride,
                                    {.top_n = static_cast<int>(c.top_n), .chunk_tokens = 0});
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    ASSERT_EQ(resp.tokens_size(), static_cast<int>(tokens.size()) - 1);
    EXPECT_EQ(resp.token_count(), tokens.size() - 1);
    EXPECT_EQ(resp.windows(), static_cast<uint32_t>(want->windows));
    for (int i = 0; i < resp.tokens_size(); ++i) {
      ASSERT_EQ(resp.tokens(i).logprob(), want->scores.logprobs[i]) << "token " << i;
      EXPECT_EQ(resp.tokens(i).id(), tokens[i + 1]);
      ASSERT_EQ(resp.tokens(i).top_size(), static_cast<int>(c.top_n));
      for (int k = 0; k < resp.tokens(i).top_size(); ++k) {
        EXPECT_EQ(resp.tokens(i).top(k).id(), want->scores.top[i][k].first);
        EXPECT_EQ(resp.tokens(i).top(k).logprob(), want->scores.top[i][k].second);
      }
    }
    EXPECT_EQ(resp.sum_nll(), want->scores.sum_nll);
    EXPECT_DOUBLE_EQ(resp.perplexity(), std::exp(want->scores.sum_nll / static_cast<double>(tokens.size() - 1)));
  }
  // per_token = false returns the totals only.
  v1::ScoreRequest req;
  req.set_text("A short text to score.");
  req.set_per_token(false);
  v1::ScoreResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Score(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.tokens_size(), 0);
  EXPECT_GT(resp.token_count(), 0u);
  EXPECT_GT(resp.perplexity(), 1.0);
}

// 64 concurrent streams, each with its own seed and prompt, give exactly what the same
// request gives alone on an idle engine.
TEST_F(InferenceServiceTest, SixtyFourConcurrentSeededStreamsEqualTheirSoloRuns) {
  Serve({.max_batch_tokens = 128});
  constexpr int kStreams = 64;
  std::vector<v1::GenerateRequest> requests(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    std::string text = "Request ";
    text += std::to_string(i);
    text += ":";
    for (int j = 0; j < i % 5; ++j) text += " the sea and the land";
    requests[i].set_text(text);
    requests[i].set_max_new_tokens(8 + i % 9);
    requests[i].set_temperature(0.9f);
    requests[i].set_top_p(0.95f);
    requests[i].set_seed(1000 + i);
    requests[i].set_ignore_eos(true);
  }
  std::vector<Stream> results(kStreams);
  std::vector<std::thread> clients;
  for (int i = 0; i < kStreams; ++i) {
    clients.emplace_back([&, i] { results[i] = RunGenerate(*stub_, requests[i]); });
  }
  for (auto& t : clients) t.join();
  auto idle = MakeEngine();
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(results[i].status.ok()) << i << ": " << results[i].status.error_message();
    GenerateOptions opt;
    opt.sampling = {.temperature = 0.9f, .top_k = 0, .top_p = 0.95f,
                    .seed = static_cast<uint64_t>(1000 + i)};
    opt.max_new_tokens = 8 + i % 9;
    opt.ignore_eos = true;
    auto alone = Generate(*idle, *tokenizer_, 1, Prompt(requests[i].text()), opt);
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ(results[i].tokens(), alone->tokens) << "stream " << i;
    EXPECT_EQ(results[i].text(), alone->text) << "stream " << i;
  }
  ExpectKvReturnsToZero(kStreams);
}

TEST_F(InferenceServiceTest, CancellingMidStreamFreesTheKvCache) {
  Serve();
  v1::GenerateRequest req;
  req.set_text("Cancel this");
  req.set_max_new_tokens(240);
  req.set_ignore_eos(true);
  grpc::ClientContext ctx;
  auto reader = stub_->Generate(&ctx, req);
  v1::GenerateResponse msg;
  ASSERT_TRUE(reader->Read(&msg));
  ctx.TryCancel();
  while (reader->Read(&msg)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ExpectKvReturnsToZero(1);
}

TEST_F(InferenceServiceTest, DeadlineEndsTheCall) {
  Serve();
  v1::GenerateRequest req;
  req.set_text("Slowly");
  req.set_max_new_tokens(250);
  req.set_ignore_eos(true);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(40));
  const Stream s = RunGenerate(*stub_, req, &ctx);
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ExpectKvReturnsToZero(1);
}

TEST_F(InferenceServiceTest, FullQueueAnswersResourceExhausted) {
  Serve({.max_queue = 1, .max_running = 1});
  std::vector<grpc::StatusCode> codes(4);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  for (int i = 0; i < 4; ++i) contexts.push_back(std::make_unique<grpc::ClientContext>());
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      v1::GenerateRequest req;
      req.set_text(std::string("Long ").append(std::to_string(i)));
      req.set_max_new_tokens(200);
      req.set_ignore_eos(true);
      codes[i] = RunGenerate(*stub_, req, contexts[i].get()).status.error_code();
    });
  }
  // Two calls fit (one running, one waiting); wait for the others to be refused, then cancel
  // the rest so the test ends quickly.
  for (int i = 0; i < 400 && scheduler_->Stats().requests_finished == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (auto& c : contexts) c->TryCancel();
  for (auto& t : clients) t.join();
  const auto refused = std::count(codes.begin(), codes.end(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_GE(refused, 2);
  ExpectKvReturnsToZero(static_cast<uint64_t>(4 - refused));
}

TEST_F(InferenceServiceTest, DrainingAnswersUnavailable) {
  Serve();
  scheduler_->BeginDrain();
  v1::GenerateRequest req;
  req.set_text("Too late");
  EXPECT_EQ(RunGenerate(*stub_, req).status.error_code(), grpc::StatusCode::UNAVAILABLE);
  v1::ScoreRequest score;
  score.set_text("Too late");
  v1::ScoreResponse resp;
  grpc::ClientContext ctx;
  EXPECT_EQ(stub_->Score(&ctx, score, &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// Every malformed or out-of-range field: INVALID_ARGUMENT naming the field.
TEST_F(InferenceServiceTest, InvalidArgumentsNameTheField) {
  Serve();
  using G = v1::GenerateRequest;
  auto gen = [](std::function<void(G*)> f) {
    G r;
    r.set_text("ok");
    f(&r);
    return r;
  };
  const std::string long_text(3000, 'a');
  const struct {
    G request;
    const char* field;
  } generate_cases[] = {
      {G(), "prompt"},
      {gen([](G* r) { r->mutable_tokens(); }), "prompt"},
      {gen([](G* r) { r->mutable_tokens()->add_ids(8000); }), "tokens.ids[0]"},
      {gen([](G* r) { r->mutable_tokens()->add_ids(-1); }), "tokens.ids[0]"},
      {gen([](G* r) { r->set_text(""); r->set_add_bos(false); }), "prompt"},
      {gen([&](G* r) { r->set_text(long_text); }), "prompt"},
      {gen([](G* r) { r->set_max_new_tokens(1000); }), "max_new_tokens"},
      {gen([](G* r) {
         for (int i = 0; i < 200; ++i) r->mutable_tokens()->add_ids(5);
         r->set_max_new_tokens(100);
       }),
       "max_new_tokens"},
      {gen([](G* r) { r->set_temperature(150); }), "temperature"},
      {gen([](G* r) { r->set_temperature(-1); }), "temperature"},
      {gen([](G* r) { r->set_temperature(std::numeric_limits<float>::quiet_NaN()); }),
       "temperature"},
      {gen([](G* r) { r->set_top_k(9000); }), "top_k"},
      {gen([](G* r) { r->set_top_p(0); }), "top_p"},
      {gen([](G* r) { r->set_top_p(1.5f); }), "top_p"},
      {gen([](G* r) { for (int i = 0; i < 17; ++i) r->add_stop(std::string(1, 'x')); }), "stop"},
      {gen([](G* r) { r->add_stop(std::string()); }), "stop[0]"},
      {gen([](G* r) { r->add_stop(std::string(300, 'x')); }), "stop[0]"},
      {gen([](G* r) { r->set_logprobs(true); r->set_top_logprobs(21); }), "top_logprobs"},
      {gen([](G* r) { r->set_top_logprobs(2); }), "top_logprobs"},
  };
  for (const auto& c : generate_cases) {
    const Stream s = RunGenerate(*stub_, c.request);
    EXPECT_EQ(s.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.request.ShortDebugString();
    EXPECT_NE(s.status.error_message().find(c.field), std::string::npos)
        << "message '" << s.status.error_message() << "' should name " << c.field;
    EXPECT_TRUE(s.messages.empty());
  }

  using S = v1::ScoreRequest;
  auto score = [](std::function<void(S*)> f) {
    S r;
    r.set_text("some text to score");
    f(&r);
    return r;
  };
  const struct {
    S request;
    const char* field;
  } score_cases[] = {
      {S(), "input"},
      {score([](S* r) { r->mutable_tokens()->add_ids(1); }), "input"},
      {score([](S* r) { r->mutable_tokens()->add_ids(1); r->mutable_tokens()->add_ids(8000); }),
       "tokens.ids[1]"},
      {score([](S* r) { r->set_context(1); }), "context"},
      {score([](S* r) { r->set_context(300); }), "context"},
      {score([](S* r) { r->set_context(64); r->set_stride(64); }), "stride"},
      {score([](S* r) { r->set_top_n(21); }), "top_n"},
  };
  for (const auto& c : score_cases) {
    v1::ScoreResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status st = stub_->Score(&ctx, c.request, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.request.ShortDebugString();
    EXPECT_NE(st.error_message().find(c.field), std::string::npos)
        << "message '" << st.error_message() << "' should name " << c.field;
  }

  v1::DetokenizeRequest detok;
  detok.add_ids(3);
  detok.add_ids(-5);
  v1::DetokenizeResponse detok_resp;
  grpc::ClientContext ctx;
  const grpc::Status st = stub_->Detokenize(&ctx, detok, &detok_resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("ids[1]"), std::string::npos) << st.error_message();
  ExpectKvReturnsToZero(0);  // nothing was accepted
}

TEST_F(InferenceServiceTest, BearerTokenIsRequiredWhenConfigured) {
  ServiceConfig config;
  config.auth_token = "s3cret-token";
  Serve({}, config);
  auto call = [&](const char* header) {
    grpc::ClientContext ctx;
    if (header != nullptr) ctx.AddMetadata("authorization", header);
    v1::TokenizeRequest req;
    req.set_text("hello");
    v1::TokenizeResponse resp;
    return stub_->Tokenize(&ctx, req, &resp).error_code();
  };
  EXPECT_EQ(call(nullptr), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call("Bearer wrong-token!"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call("s3cret-token"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call("Bearer s3cret-token"), grpc::StatusCode::OK);
  // Streams are checked too.
  v1::GenerateRequest req;
  req.set_text("hi");
  EXPECT_EQ(RunGenerate(*stub_, req).status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(InferenceServiceTest, TokenizeDetokenizeAndModelInfo) {
  Serve();
  v1::TokenizeRequest req;
  req.set_text("Hello world, again.");
  v1::TokenizeResponse resp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Tokenize(&ctx, req, &resp).ok());
  }
  EXPECT_EQ(std::vector<int32_t>(resp.ids().begin(), resp.ids().end()),
            Prompt("Hello world, again."));
  ASSERT_EQ(resp.pieces_size(), resp.ids_size());
  EXPECT_EQ(resp.pieces(1), tokenizer_->IdToPiece(resp.ids(1)));
  v1::DetokenizeRequest detok;
  *detok.mutable_ids() = resp.ids();
  v1::DetokenizeResponse text;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Detokenize(&ctx, detok, &text).ok());
  }
  EXPECT_EQ(text.text(), "Hello world, again.");
  v1::ModelInfo info;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->GetModelInfo(&ctx, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.name(), "pkm-small");
  EXPECT_EQ(info.vocab_size(), 8000);
  EXPECT_EQ(info.max_seq_len(), 256);
}

TEST_F(InferenceServiceTest, HealthFollowsServingState) {
  Serve();
  auto health = grpc::health::v1::Health::NewStub(channel_);
  auto check = [&](const std::string& service) {
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(health->Check(&ctx, req, &resp).ok());
    return resp.status();
  };
  EXPECT_EQ(check(""), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(check("pkmserve.v1.Inference"), grpc::health::v1::HealthCheckResponse::SERVING);
  server_->SetServing(false);
  EXPECT_EQ(check(""), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(check("pkmserve.v1.Inference"), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
}

TEST_F(InferenceServiceTest, ReflectionListsTheService) {
  Serve();
  auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(channel_);
  grpc::ClientContext ctx;
  auto stream = reflection->ServerReflectionInfo(&ctx);
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("");
  ASSERT_TRUE(stream->Write(req));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::vector<std::string> names;
  for (const auto& s : resp.list_services_response().service()) names.push_back(s.name());
  EXPECT_NE(std::find(names.begin(), names.end(), "pkmserve.v1.Inference"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "grpc.health.v1.Health"), names.end());
  while (stream->Read(&resp)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace pkm

namespace pkm {
namespace {

// The value of the first sample line `name{...labels containing every filter...} value`.
double Sample(const std::string& text, const std::string& name,
              const std::vector<std::string>& filters = {}) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name, 0) != 0 || (line.size() > name.size() && line[name.size()] != '{' &&
                                      line[name.size()] != ' ')) {
      continue;
    }
    bool all = true;
    for (const auto& f : filters) all = all && line.find(f) != std::string::npos;
    if (all) return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return -1;
}

TEST_F(InferenceServiceTest, MetricsCountWhatClientsReceived) {
  ServerMetrics metrics({.model = "pkm-small",
                         .stats = [this] { return scheduler_->Stats(); },
                         .weight_bytes = 1.0,
                         .kv_cache_bytes = 2.0,
                         .queue_capacity = 7,
                         .memory_labels = model_->config().memory_labels()});
  ServiceConfig config;
  config.metrics = &metrics;
  // Usage is reported when the engine goes idle, so the last step's is in the gauges.
  Serve({.observer = &metrics}, config,
        {.pkm_usage_window = 100000, .time_pkm_lookups = true});
  int received = 0;
  for (int i = 0; i < 3; ++i) {
    v1::GenerateRequest req;
    req.set_text("Metrics " + std::to_string(i));
    req.set_max_new_tokens(5 + static_cast<uint32_t>(i));
    req.set_ignore_eos(true);
    const Stream s = RunGenerate(*stub_, req);
    ASSERT_TRUE(s.status.ok());
    received += static_cast<int>(s.tokens().size());
  }
  v1::GenerateRequest bad;
  bad.set_text("x");
  bad.set_temperature(500);
  EXPECT_FALSE(RunGenerate(*stub_, bad).status.ok());
  v1::ScoreRequest score;
  score.set_text("Score this text as well.");
  v1::ScoreResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Score(&ctx, score, &resp).ok());
  // The counters are published before each answer; the idle usage report comes at the end of
  // the scheduler's iteration, which publishes running = 0 after it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((scheduler_->Stats().requests_finished < 4 || scheduler_->Stats().running > 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  const std::string text = prometheus::TextSerializer().Serialize(metrics.Collect());
  EXPECT_EQ(Sample(text, "pkmserve_generation_tokens_total"), received);
  EXPECT_EQ(Sample(text, "pkmserve_scored_tokens_total"), resp.token_count());
  EXPECT_EQ(Sample(text, "pkmserve_time_to_first_token_seconds_count"), 3);
  EXPECT_EQ(Sample(text, "pkmserve_inter_token_latency_seconds_count"), received - 3);
  EXPECT_EQ(Sample(text, "pkmserve_e2e_request_latency_seconds_count"), 5);
  const std::string grpc_api = "api=\"grpc\"";
  EXPECT_EQ(Sample(text, "pkmserve_request_success_total", {grpc_api, "finish_reason=\"length\""}),
            3);
  EXPECT_EQ(Sample(text, "pkmserve_request_success_total", {grpc_api, "finish_reason=\"scored\""}),
            1);
  EXPECT_EQ(
      Sample(text, "pkmserve_request_failure_total", {grpc_api, "code=\"INVALID_ARGUMENT\""}), 1);
  EXPECT_EQ(Sample(text, "pkmserve_requests_running"), 0);
  EXPECT_EQ(Sample(text, "pkmserve_model_weights_bytes"), 1.0);
  EXPECT_EQ(Sample(text, "pkmserve_request_queue_capacity"), 7);
  EXPECT_GT(Sample(text, "pkmserve_host_memory_resident_bytes"), 1e6);
  EXPECT_NE(text.find("model=\"pkm-small\""), std::string::npos);
  // Queue time: once per request that reached the engine (the refused one did not).
  EXPECT_EQ(Sample(text, "pkmserve_request_queue_time_seconds_count"), 4);
  // Steps: every token of every request went through the engine once.
  const double steps = Sample(text, "pkmserve_batch_size_count");
  EXPECT_EQ(steps, static_cast<double>(scheduler_->Stats().steps));
  EXPECT_EQ(Sample(text, "pkmserve_batch_forward_seconds_count", {"phase=\"prefill\""}) +
                Sample(text, "pkmserve_batch_forward_seconds_count", {"phase=\"decode\""}),
            steps);
  // The three streams decode all but their first token in decode-only steps (one at a time).
  EXPECT_EQ(Sample(text, "pkmserve_batch_forward_seconds_count", {"phase=\"decode\""}),
            received - 3);
  const SchedulerStats stats = scheduler_->Stats();
  EXPECT_EQ(Sample(text, "pkmserve_batch_tokens_sum"),
            static_cast<double>(stats.prompt_tokens + stats.generated_tokens - 3 +
                                stats.scored_tokens));
  const std::string layer = "layer=\"" + std::to_string(model_->config().memory_layers()[0]) + "\"";
  EXPECT_EQ(Sample(text, "pkmserve_pkm_lookup_seconds_count", {layer}), steps);
  EXPECT_GT(Sample(text, "pkmserve_pkm_lookup_seconds_sum", {layer}), 0.0);
  const double tokens = Sample(text, "pkmserve_batch_tokens_sum");
  EXPECT_EQ(Sample(text, "pkmserve_pkm_usage_window_tokens", {layer}), tokens);
  const double coverage = Sample(text, "pkmserve_pkm_slot_coverage_ratio", {layer});
  EXPECT_GT(coverage, 0.0);
  EXPECT_LE(coverage, 1.0);
  EXPECT_GT(Sample(text, "pkmserve_pkm_lookup_kl", {layer}), 0.0);
  EXPECT_GT(Sample(text, "pkmserve_device_memory_used_bytes", {"device=\"cpu\""}), 1e6);
  EXPECT_GT(Sample(text, "pkmserve_device_memory_total_bytes"),
            Sample(text, "pkmserve_device_memory_used_bytes"));
  // Memory by kind: the value tables are n_keys² × v_dim per memory layer, held as stored (the
  // bundled model's fp16), the KV cache is what the engine sized, and the four kinds add up to
  // what the backend holds.
  const ModelConfig& c = model_->config();
  auto kind = [&](const char* k) {
    return Sample(text, "pkmserve_device_memory_bytes", {std::string("kind=\"") + k + "\""});
  };
  EXPECT_EQ(kind("pkm_values"), static_cast<double>(c.memories.size()) *
                                    static_cast<double>(c.memories[0].slots()) *
                                    c.memories[0].v_dim * sizeof(uint16_t));
  EXPECT_EQ(kind("weights") + kind("pkm_values"), static_cast<double>(engine_->weight_bytes()));
  EXPECT_EQ(kind("kv_cache"), static_cast<double>(engine_->kv_cache_bytes()));
  EXPECT_GT(kind("workspace"), 0.0);
  EXPECT_EQ(kind("weights") + kind("pkm_values") + kind("kv_cache") + kind("workspace"),
            Sample(text, "pkmserve_device_memory_used_bytes"));
  // A second scrape adds nothing: mirrored counters grow only by what happened in between.
  const std::string again = prometheus::TextSerializer().Serialize(metrics.Collect());
  EXPECT_EQ(Sample(again, "pkmserve_generation_tokens_total"), received);
}

}  // namespace
}  // namespace pkm
