// The bundled model and its tokenizer, loaded once per test suite, and fresh engines over it.
// Shared by the scheduler tests (no gRPC) and the server tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "kernels/cpu/backend/cpu_backend.h"
#include "model_loader/model_loader.h"
#include "model_loader/model_tokenizer.h"

namespace pkm {

class ModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = LoadModel("models/pkm-small");
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = new LoadedModel(std::move(*model));
    auto tok = LoadModelTokenizer(*model_);
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    tokenizer_ = tok->release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete model_;
  }

  // One engine thread: results do not depend on it, and TSan cannot follow OpenMP's workers.
  static std::unique_ptr<Engine> MakeEngine(size_t kv_bytes = size_t{64} << 20,
                                            EngineOptions options = {}) {
    options.kv_cache_bytes = kv_bytes;
    auto engine = Engine::Create(*model_, MakeCpuBackend(1), options);
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  // BOS + the encoded text, as the server builds a text prompt.
  static std::vector<int32_t> Prompt(const std::string& text) {
    std::vector<int32_t> ids = {tokenizer_->bos_id()};
    auto enc = tokenizer_->Encode(text);
    ids.insert(ids.end(), enc.begin(), enc.end());
    return ids;
  }

  static LoadedModel* model_;
  static Tokenizer* tokenizer_;
};

inline LoadedModel* ModelTest::model_ = nullptr;
inline Tokenizer* ModelTest::tokenizer_ = nullptr;

}  // namespace pkm
