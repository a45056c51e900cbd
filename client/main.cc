// pkm: the command-line client of pkmserve. Talks to it only through the public proto.
//
// Exit codes: 0 ok, 2 bad command line, 3 server unreachable (UNAVAILABLE), 4 the server
// answered with an error (or, for health, is not SERVING).
#include <cstdio>
#include <string>
#include <vector>

#include "client/commands.h"
#include "client/connection.h"

namespace {

constexpr char kUsage[] =
    "usage: pkm COMMAND [flags] [args]\n"
    "\n"
    "commands:\n"
    "  generate \"prompt\"   stream a continuation of the prompt\n"
    "  score FILE...        perplexity of files (- for stdin), llama-perplexity or HF style\n"
    "  info                 the served model, its memory layers and the server's limits\n"
    "  health               grpc.health.v1 status (exit 0 when SERVING)\n"
    "  tokenize \"text\"     token ids and pieces\n"
    "  bench                load generator: throughput, TTFT, TPOT, ITL, E2E percentiles\n"
    "\n"
    "global flags (any command): --server HOST:PORT (default 127.0.0.1:50051), --tls-ca FILE,\n"
    "  --auth-token-file FILE, --timeout SECONDS (default 600), --help\n"
    "`pkm COMMAND --help` describes each command's flags.\n"
    "\n"
    "exit codes: 0 ok, 2 bad command line, 3 server unreachable, 4 server error\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace pkm::cli;
  if (argc < 2) {
    std::fprintf(stderr, "%s", kUsage);
    return kExitUsage;
  }
  const std::string command = argv[1];
  const std::vector<std::string> rest(argv + 2, argv + argc);
  if (command == "--help" || command == "-h" || command == "help") {
    std::printf("%s", kUsage);
    return kExitOk;
  }
  if (command == "generate") return GenerateCommand(rest);
  if (command == "score") return ScoreCommand(rest);
  if (command == "info") return InfoCommand(rest);
  if (command == "health") return HealthCommand(rest);
  if (command == "tokenize") return TokenizeCommand(rest);
  if (command == "bench") return BenchCommand(rest);
  std::fprintf(stderr, "pkm: unknown command '%s'\n\n%s", command.c_str(), kUsage);
  return kExitUsage;
}
