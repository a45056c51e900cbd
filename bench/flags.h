// Command lines of the benchmark programs, on the shared parser (common/args.h): --help, and
// exit code 2 with a message naming the flag for an unknown flag, a missing or bad value, or a
// positional argument (the benchmarks take none).
#pragma once

#include <string>
#include <vector>

#include "common/args.h"

namespace pkm::bench {

// Parses argv against `flags` plus --help. --help prints the flags with their defaults and
// exits 0; an error prints "<program>: why" and exits 2.
cli::Args ParseFlagsOrExit(int argc, char** argv, const std::string& description,
                           std::vector<cli::FlagSpec> flags);

// The value of an integer flag in [lo, hi], or exit 2 naming the flag and the range.
int IntFlagOrExit(const cli::Args& args, const std::string& name, int lo, int hi);

}  // namespace pkm::bench
