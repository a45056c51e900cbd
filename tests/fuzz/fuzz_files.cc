#include "tests/fuzz/fuzz_files.h"

namespace pkm::fuzz {

std::string SourcePath(const std::string& relative) {
  return std::string(PKMSERVE_SOURCE_DIR) + "/" + relative;
}

}  // namespace pkm::fuzz
