// GetModelInfo's answer: the served model, where it runs and the server's limits.
#pragma once

#include "engine/engine.h"
#include "model_loader/model_loader.h"
#include "pkmserve/v1/inference.pb.h"
#include "server/server_flags.h"

namespace pkm {

pkmserve::v1::ModelInfo DescribeModel(const LoadedModel& model, const Engine& engine,
                                      const ServerSettings& settings);

}  // namespace pkm
