#include "bench/flags.h"

#include <errno.h>  // program_invocation_short_name

#include <cstdio>
#include <cstdlib>
#include <utility>

namespace pkm::bench {
namespace {

[[noreturn]] void UsageError(const std::string& why) {
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, why.c_str());
  std::exit(2);
}

}  // namespace

cli::Args ParseFlagsOrExit(int argc, char** argv, const std::string& description,
                           std::vector<cli::FlagSpec> flags) {
  flags.push_back({"help", "", "show this help", ""});
  auto args = cli::Args::Parse(std::vector<std::string>(argv + 1, argv + argc), flags);
  if (!args.ok()) UsageError(args.status().message());
  if (args->Has("help")) {
    const std::string usage = std::string(program_invocation_short_name) + " [flags]";
    std::fputs(cli::HelpText(usage, description, flags).c_str(), stdout);
    std::exit(0);
  }
  if (!args->positional().empty()) {
    UsageError("takes no positional arguments, got '" + args->positional()[0] + "'");
  }
  return std::move(*args);
}

int IntFlagOrExit(const cli::Args& args, const std::string& name, int lo, int hi) {
  auto value = args.GetInt(name, lo, hi);
  if (!value.ok()) UsageError(value.status().message());
  return static_cast<int>(*value);
}

}  // namespace pkm::bench
