// Reading golden vectors (safetensors written by training/golden.py and training/families.py):
// a named tensor as int32 or fp32 values, failing the test when it is absent.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "model_loader/dtype.h"
#include "model_loader/safetensors.h"

namespace pkm::testing {

inline std::vector<int32_t> GoldenInts(const SafetensorsFile& golden, const std::string& name) {
  const TensorView* t = golden.Find(name);
  EXPECT_NE(t, nullptr) << name;
  if (t == nullptr) return {};
  std::vector<int32_t> v(t->numel());
  std::memcpy(v.data(), t->data, t->nbytes);
  return v;
}

inline std::vector<float> GoldenFloats(const SafetensorsFile& golden, const std::string& name) {
  const TensorView* t = golden.Find(name);
  EXPECT_NE(t, nullptr) << name;
  if (t == nullptr) return {};
  std::vector<float> v(t->numel());
  ToFloat32(*t, v.data());
  return v;
}

// Sequences seq0, seq1, ... the file holds.
inline int GoldenSequences(const SafetensorsFile& golden) {
  int n = 0;
  while (golden.Find("seq" + std::to_string(n) + ".tokens") != nullptr) ++n;
  return n;
}

}  // namespace pkm::testing
