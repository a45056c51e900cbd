// The OpenAI-compatible API's request bodies as gRPC messages: every field maps where it
// should, wrong types and unsupported options are refused naming the field, and errors take
// OpenAI's shape with the HTTP status of their code.
#include "server/http/completion_request.h"

#include <gtest/gtest.h>

#include <string>

namespace pkm::http {
namespace {

TEST(CompletionRequest, MapsEveryField) {
  auto r = ParseCompletionRequest(
      R"({"model": "pkm-small", "prompt": "Once", "max_tokens": 5, "temperature": 0.5,
          "top_p": 0.9, "top_k": 40, "seed": 7, "stop": ["\n", "."], "stream": true,
          "logprobs": 3, "echo": true, "user": "u", "ignore_eos": true,
          "some_future_field": {}})");
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& g = r->generate;
  EXPECT_EQ(g.text(), "Once");
  EXPECT_EQ(g.max_new_tokens(), 5u);
  EXPECT_FLOAT_EQ(g.temperature(), 0.5f);
  EXPECT_FLOAT_EQ(g.top_p(), 0.9f);
  EXPECT_EQ(g.top_k(), 40u);
  ASSERT_TRUE(g.has_seed());
  EXPECT_EQ(g.seed(), 7u);
  ASSERT_EQ(g.stop_size(), 2);
  EXPECT_EQ(g.stop(1), ".");
  EXPECT_TRUE(g.logprobs());
  EXPECT_EQ(g.top_logprobs(), 3u);
  EXPECT_TRUE(g.ignore_eos());
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->echo);
  EXPECT_EQ(r->logprobs, 3);
}

TEST(CompletionRequest, DefaultsAreOpenAis) {
  auto r = ParseCompletionRequest(R"({"prompt": "x"})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->max_tokens, 16);
  EXPECT_EQ(r->generate.max_new_tokens(), 16u);
  EXPECT_FALSE(r->generate.has_temperature());  // the service's default, 1
  EXPECT_FALSE(r->generate.has_seed());
  EXPECT_FALSE(r->generate.logprobs());
  EXPECT_EQ(r->logprobs, -1);
  EXPECT_FALSE(r->stream);
  EXPECT_FALSE(r->echo);
}

TEST(CompletionRequest, TakesTokenIdsAndABatchOfOne) {
  auto ids = ParseCompletionRequest(R"({"prompt": [1, 22, 333]})");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(std::vector<int32_t>(ids->generate.tokens().ids().begin(),
                                 ids->generate.tokens().ids().end()),
            (std::vector<int32_t>{1, 22, 333}));
  auto one_text = ParseCompletionRequest(R"({"prompt": ["hi"]})");
  ASSERT_TRUE(one_text.ok());
  EXPECT_EQ(one_text->generate.text(), "hi");
  auto one_ids = ParseCompletionRequest(R"({"prompt": [[4, 5]]})");
  ASSERT_TRUE(one_ids.ok());
  EXPECT_EQ(one_ids->generate.tokens().ids_size(), 2);
  auto stop = ParseCompletionRequest(R"({"prompt": "x", "stop": "END", "top_k": -1})");
  ASSERT_TRUE(stop.ok());
  EXPECT_EQ(stop->generate.stop(0), "END");
  EXPECT_EQ(stop->generate.top_k(), 0u);  // vLLM's -1: off
}

TEST(CompletionRequest, EchoWithoutNewTokensIsScoring) {
  auto r = ParseCompletionRequest(R"({"prompt": "a b", "max_tokens": 0, "echo": true,
                                      "logprobs": 0})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->max_tokens, 0);
  EXPECT_EQ(r->logprobs, 0);
}

struct BadCase {
  const char* body;
  const char* message;  // a part of the error's message
};

class BadCompletionRequest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadCompletionRequest, IsRefusedNamingTheField) {
  auto r = ParseCompletionRequest(GetParam().body);
  ASSERT_FALSE(r.ok()) << GetParam().body;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(GetParam().message), std::string::npos)
      << r.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Bodies, BadCompletionRequest,
    ::testing::Values(
        BadCase{"{not json", "not valid JSON"},
        BadCase{"[1, 2]", "must be a JSON object, got an array"},
        BadCase{"{}", "field 'prompt': required"},
        BadCase{R"({"prompt": 5})", "field 'prompt': expected a string or an array of token ids"},
        BadCase{R"({"prompt": []})", "an empty array"},
        BadCase{R"({"prompt": ["a", "b"]})", "a batch of 2 prompts"},
        BadCase{R"({"prompt": [1, "b"]})", "element 1 is not a token id"},
        BadCase{R"({"prompt": [1, 2.5]})", "element 1 is not a token id"},
        BadCase{R"({"prompt": [1, 99999999999]})", "element 1 is not a token id"},
        BadCase{R"({"prompt": "x", "max_tokens": "10"})",
                "field 'max_tokens': expected an integer, got a string"},
        BadCase{R"({"prompt": "x", "max_tokens": -1})", "expected an integer in [0, "},
        BadCase{R"({"prompt": "x", "max_tokens": 0})", "allowed only with echo"},
        BadCase{R"({"prompt": "x", "temperature": "hot"})",
                "field 'temperature': expected a number"},
        BadCase{R"({"prompt": "x", "stream": 1})", "field 'stream': expected true or false"},
        BadCase{R"({"prompt": "x", "stop": [1]})", "field 'stop': expected an array of strings"},
        BadCase{R"({"prompt": "x", "logprobs": 21})", "field 'logprobs': expected an integer in [0, 20]"},
        BadCase{R"({"prompt": "x", "logprobs": true})", "field 'logprobs': expected an integer"},
        BadCase{R"({"prompt": "x", "n": 2})", "field 'n': expected an integer in [1, 1]"},
        BadCase{R"({"prompt": "x", "best_of": 3})", "field 'best_of'"},
        BadCase{R"({"prompt": "x", "presence_penalty": 0.5})", "'presence_penalty': not supported"},
        BadCase{R"({"prompt": "x", "logit_bias": {"5": 10}})", "'logit_bias': not supported"},
        BadCase{R"({"prompt": "x", "suffix": "end"})", "'suffix': not supported"}));

TEST(TokenizeRequest, TakesPromptOrTextAndSpecialTokens) {
  auto r = ParseTokenizeRequest(R"({"prompt": "hello", "add_special_tokens": false})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->text(), "hello");
  EXPECT_FALSE(r->add_bos());
  auto t = ParseTokenizeRequest(R"({"text": "hi"})");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->add_bos());
  EXPECT_FALSE(ParseTokenizeRequest(R"({"prompt": 3})").ok());
  EXPECT_FALSE(ParseTokenizeRequest(R"({})").ok());
}

TEST(DetokenizeRequest, TakesTokenIds) {
  auto r = ParseDetokenizeRequest(R"({"tokens": [5, 6]})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->ids_size(), 2);
  auto bad = ParseDetokenizeRequest(R"({"tokens": [5, "x"]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("element 1"), std::string::npos);
  EXPECT_FALSE(ParseDetokenizeRequest(R"({"tokens": "5"})").ok());
}

TEST(ErrorBody, HasOpenAisShapeAndStatus) {
  const Status queue_full(StatusCode::kResourceExhausted, "queue full");
  const auto body = ErrorBody(queue_full);
  EXPECT_EQ(body["error"]["message"], "queue full");
  EXPECT_EQ(body["error"]["type"], "rate_limit_error");
  EXPECT_TRUE(body["error"]["param"].is_null());
  EXPECT_EQ(body["error"]["code"], "RESOURCE_EXHAUSTED");
  EXPECT_EQ(HttpStatus(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatus(StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(ErrorBody(Status(StatusCode::kUnauthenticated, "x"))["error"]["type"],
            "authentication_error");
  EXPECT_EQ(HttpStatus(StatusCode::kFailedPrecondition), 400);
  EXPECT_EQ(HttpStatus(StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatus(StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatus(StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(HttpStatus(StatusCode::kInternal), 500);
  EXPECT_EQ(ErrorBody(Status(StatusCode::kInvalidArgument, "x"))["error"]["type"],
            "invalid_request_error");
  EXPECT_EQ(ErrorBody(Status(StatusCode::kUnavailable, "x"))["error"]["type"], "server_error");
}

}  // namespace
}  // namespace pkm::http
