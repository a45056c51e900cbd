// Shared fixture of the engine tests: the bundled model and the reference's golden vectors
// (tests/data/golden, written by training/golden.py from the same model files).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "kernels/cpu/backend/cpu_backend.h"
#include "model_loader/model_loader.h"
#include "model_loader/safetensors.h"
#include "tests/engine/golden_reader.h"

namespace pkm {

constexpr char kModelDir[] = "models/pkm-small";
constexpr char kGolden[] = "tests/data/golden/golden.safetensors";

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = LoadModel(kModelDir);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = new LoadedModel(std::move(*model));
    auto golden = SafetensorsFile::Open(kGolden);
    ASSERT_TRUE(golden.ok()) << golden.status().ToString();
    golden_ = new SafetensorsFile(std::move(*golden));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete golden_;
  }

  std::unique_ptr<Engine> MakeEngine(EngineOptions options = {}) {
    auto engine = Engine::Create(*model_, MakeCpuBackend(2), options);
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  static std::vector<int32_t> GoldenInts(const std::string& name) {
    return testing::GoldenInts(*golden_, name);
  }
  static std::vector<float> GoldenFloats(const std::string& name) {
    return testing::GoldenFloats(*golden_, name);
  }
  static int NumGoldenSequences() { return testing::GoldenSequences(*golden_); }

  static inline LoadedModel* model_ = nullptr;
  static inline SafetensorsFile* golden_ = nullptr;
};

}  // namespace pkm
