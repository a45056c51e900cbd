// pkmserve's command-line front door over Abseil's flag registry: the flags are ABSL_FLAGs
// (types, defaults, help), but argv is read here, because Abseil's own parser (in the Debian
// version) prints "No flags matched" for --help, lists its own flags, suggests nothing for a
// typo and ignores positional arguments.
//
// What it accepts:
//   --name=value, --name value, --name for a bool (--name=false to turn one off); dashes and
//   underscores alike; -h/--help/--helpfull; --version; at most one positional argument (the
//   model directory, as `vllm serve MODEL`); "--" ends the flags.
//   Every flag can also come from the environment: --max-batch-tokens from
//   PKMSERVE_MAX_BATCH_TOKENS. The command line wins over the environment, which wins over the
//   default.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "common/status.h"

namespace pkm {

struct CommandLine {
  enum class Action { kRun, kHelp, kVersion };
  Action action = Action::kRun;
  std::vector<std::string> positional;
  std::set<std::string> given;     // flags set by argv or the environment (underscored names)
  std::set<std::string> from_env;  // those of them set by the environment
};

// Flags whose definitions live in a file whose path ends in `defined_in` are pkmserve's; the
// rest of the registry (Abseil's own) is neither listed nor accepted.
// Sets the flags from argv and the environment (`env` looks a variable up; nullptr: unset).
// Errors are kInvalidArgument naming the flag (or variable), the value and what is expected;
// an unknown flag gets the nearest known name.
StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& argv,
                                       const std::string& defined_in,
                                       const char* (*env)(const char*));

// The help text: usage, `about`, then each flag dashed with its value, help, default and
// environment variable.
std::string CommandLineHelp(const std::string& usage, const std::string& about,
                            const std::string& defined_in);

// "PKMSERVE_MAX_BATCH_TOKENS" for "max_batch_tokens".
std::string EnvVarName(const std::string& flag_name);

}  // namespace pkm
