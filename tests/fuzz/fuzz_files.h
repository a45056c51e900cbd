// Paths for the fuzz targets. Their scratch files are written with tests/model_loader's
// testing::TempDir and testing::WriteFile.
#pragma once

#include <string>

namespace pkm::fuzz {

// The repository's root (PKMSERVE_SOURCE_DIR at build time), for the bundled model's files.
std::string SourcePath(const std::string& relative);

}  // namespace pkm::fuzz
