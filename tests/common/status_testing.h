// Test helper: assert that a Status is a given error whose message mentions given strings.
//
//   EXPECT_TRUE(IsError(status, StatusCode::kNotFound, {"models/x/config.json", "d_model"}));
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string_view>

#include "common/status.h"

namespace pkm::testing {

inline ::testing::AssertionResult IsError(const Status& status, StatusCode code,
                                          std::initializer_list<std::string_view> parts) {
  if (status.code() != code) {
    return ::testing::AssertionFailure()
           << "expected code " << StatusCodeName(code) << ", got " << status;
  }
  for (std::string_view part : parts) {
    if (status.message().find(part) == std::string::npos) {
      return ::testing::AssertionFailure() << "message lacks \"" << part << "\": " << status;
    }
  }
  return ::testing::AssertionSuccess() << status;
}

}  // namespace pkm::testing
