// The connection every subcommand shares: the server address, TLS, bearer token and per-call
// timeout from the global flags, and how gRPC errors become exit codes.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/args.h"
#include "common/status.h"
#include "pkmserve/v1/inference.grpc.pb.h"

namespace pkm::cli {

// Exit codes of pkm.
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 2;       // bad command line
inline constexpr int kExitConnection = 3;  // the server cannot be reached (UNAVAILABLE)
inline constexpr int kExitServer = 4;      // the server answered with an error

// --server, --tls-ca, --auth-token-file, --timeout, --retries (each defaulting to its
// environment variable: PKM_SERVER, PKM_TLS_CA, PKM_AUTH_TOKEN_FILE, PKM_TIMEOUT,
// PKM_RETRIES), --help.
std::vector<FlagSpec> GlobalFlags();

// gRPC allows at most 5 attempts of a call.
inline constexpr int kMaxRetries = 4;
// The channel's service config: calls to pkmserve.v1.Inference that end UNAVAILABLE with no
// answer are tried again, up to `retries` more times (docs/operations.md, "Retries").
std::string RetryServiceConfig(int retries);

// Request fields and the pkm flags that set them: {"max_new_tokens", "--max-tokens"}, ...
using FlagTerms = std::vector<std::pair<std::string, std::string>>;

// The server's message with each field name that a flag sets replaced by the flag, so the
// caller reads the terms it typed. Only whole names: "limits.max_new_tokens" stays.
std::string InFlagTerms(const std::string& message, const FlagTerms& terms);

// "INVALID_ARGUMENT" for grpc::StatusCode::INVALID_ARGUMENT.
const char* CodeName(grpc::StatusCode code);

class Connection {
 public:
  static StatusOr<Connection> FromArgs(const Args& args);

  // Adds the bearer token and the deadline (--timeout seconds from now, unless 0).
  void Prepare(grpc::ClientContext* context) const;
  // Prepare with an explicit timeout (0: none).
  void Prepare(grpc::ClientContext* context, double timeout_s) const;

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const std::string& address() const { return address_; }
  double timeout_s() const { return timeout_s_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::string address_;
  std::string token_;
  double timeout_s_ = 0;
};

// Parses a subcommand's arguments (the global flags plus `extra`). Prints the help and sets
// *code to 0 when --help is given, or reports a usage error and sets *code to 2; returns
// nullopt in both cases.
std::optional<Args> ParseOrHelp(const std::vector<std::string>& argv, const std::string& usage,
                                const std::string& about, const std::vector<FlagSpec>& extra,
                                int* code);

// GetModelInfo with the connection's token and deadline.
grpc::Status FetchModelInfo(const Connection& conn, pkmserve::v1::ModelInfo* info);

// Prints "pkm: CODE: message" (one line, on stderr, in `terms`) and returns the exit code for it.
int ReportRpcError(const grpc::Status& status, const FlagTerms& terms = {});
// Prints "pkm: message" for a usage error and returns kExitUsage.
int ReportUsageError(const Status& status);

}  // namespace pkm::cli
