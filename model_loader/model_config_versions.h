// The readers of each config.json format_version, behind ParseModelConfig (which parses the
// JSON, reads the version and validates the result). Internal to model_loader/.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "model_loader/model_config.h"

namespace pkm::internal_loader {

// Format 1 (flat fields), checked with its own field names and described as format 2.
StatusOr<ModelConfig> ParseModelConfigV1(const nlohmann::json& j, std::string_view path);
// Format 2 (nested objects, a list of memories); strict about unknown fields.
StatusOr<ModelConfig> ParseModelConfigV2(const nlohmann::json& j, std::string_view path);

}  // namespace pkm::internal_loader
