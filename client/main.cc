// pkm: the command-line client of pkmserve. Talks to it only through the public proto.
//
// Exit codes: 0 ok, 2 bad command line, 3 server unreachable (UNAVAILABLE), 4 the server
// answered with an error (or, for health, is not SERVING).
#include <cstdio>
#include <string>
#include <vector>

#include "client/commands.h"
#include "client/connection.h"
#include "common/nearest_name.h"
#include "common/version.h"

namespace {

using pkm::cli::kExitOk;
using pkm::cli::kExitUsage;

constexpr char kUsage[] =
    "usage: pkm [global flags] COMMAND [flags] [args]\n"
    "\n"
    "commands:\n"
    "  generate \"prompt\"    stream a continuation of the prompt (- or --file FILE: read it)\n"
    "  score FILE...        perplexity of files (- for stdin), llama-perplexity or HF style\n"
    "  info                 the served model, its memory layers and the server's limits\n"
    "  health               grpc.health.v1 status (exit 0 when SERVING)\n"
    "  tokenize \"text\"      token ids and pieces (- or --file FILE: read it)\n"
    "  detokenize ID...     the text of token ids (- reads them from stdin)\n"
    "  bench                load generator: throughput, TTFT, TPOT, ITL, E2E percentiles\n"
    "  version              pkm's version and git commit (also --version)\n"
    "\n"
    "global flags, before or after the command:\n"
    "  --server HOST:PORT (env PKM_SERVER, default 127.0.0.1:50051), --tls-ca FILE\n"
    "  (PKM_TLS_CA), --auth-token-file FILE (PKM_AUTH_TOKEN_FILE), --timeout SECONDS\n"
    "  (PKM_TIMEOUT, default 600), --retries N (PKM_RETRIES, default 2), -h/--help\n"
    "`pkm COMMAND --help` describes each command's flags.\n"
    "\n"
    "exit codes: 0 ok, 2 bad command line, 3 server unreachable, 4 server error\n";

struct Command {
  const char* name;
  int (*run)(const std::vector<std::string>& argv);
};

constexpr Command kCommands[] = {
    {"generate", pkm::cli::GenerateCommand}, {"score", pkm::cli::ScoreCommand},
    {"info", pkm::cli::InfoCommand},         {"health", pkm::cli::HealthCommand},
    {"tokenize", pkm::cli::TokenizeCommand}, {"detokenize", pkm::cli::DetokenizeCommand},
    {"bench", pkm::cli::BenchCommand},
};

// A command-line error: one line on stderr, pointing at the help.
int Usage(const std::string& error) {
  std::fprintf(stderr, "pkm: %s (see pkm --help)\n", error.c_str());
  return kExitUsage;
}

// The global flag an argument before the command names ("--server=x" -> its spec), or null.
const pkm::cli::FlagSpec* GlobalFlag(const std::vector<pkm::cli::FlagSpec>& globals,
                                     const std::string& arg) {
  std::string name = arg.substr(arg.rfind("--", 0) == 0 ? 2 : 1);
  name = name.substr(0, name.find('='));
  for (const auto& spec : globals) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  const std::vector<pkm::cli::FlagSpec> globals = pkm::cli::GlobalFlags();
  // Global flags before the command are handed to it with the rest: every command reads them.
  std::vector<std::string> before;
  size_t i = 0;
  for (; i < args.size() && args[i].size() > 1 && args[i][0] == '-'; ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      std::printf("%s", kUsage);
      return kExitOk;
    }
    if (a == "--version") break;
    const pkm::cli::FlagSpec* spec = GlobalFlag(globals, a);
    if (spec == nullptr) {
      std::vector<std::string> known = {"--version"};
      for (const auto& g : globals) known.push_back("--" + g.name);
      const std::string nearest = pkm::NearestName(a.substr(0, a.find('=')), known);
      return Usage("unknown global flag " + a.substr(0, a.find('=')) +
                   (nearest.empty() ? "" : "; did you mean " + nearest + "?") +
                   " (a command's own flags go after the command)");
    }
    before.push_back(a);
    if (!spec->value_name.empty() && a.find('=') == std::string::npos) {
      if (i + 1 >= args.size()) return Usage(a + " needs a value (" + spec->value_name + ")");
      before.push_back(args[++i]);
    }
  }
  if (i == args.size()) {
    std::fprintf(stderr, "pkm: no command given\n\n%s", kUsage);
    return kExitUsage;
  }
  const std::string& command = args[i];
  if (command == "--version" || command == "version") {
    std::printf("pkm %s\n", pkm::VersionLine());
    return kExitOk;
  }
  if (command == "help") {
    std::printf("%s", kUsage);
    return kExitOk;
  }
  std::vector<std::string> rest = before;
  rest.insert(rest.end(), args.begin() + static_cast<long>(i) + 1, args.end());
  std::vector<std::string> names = {"version", "help"};
  for (const Command& c : kCommands) {
    if (command == c.name) return c.run(rest);
    names.push_back(c.name);
  }
  const std::string nearest = pkm::NearestName(command, names);
  return Usage("unknown command '" + command + "'" +
               (nearest.empty() ? "" : "; did you mean '" + nearest + "'?"));
}
