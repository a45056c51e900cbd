#include "client/connection.h"

#include <chrono>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace pkm::cli {
namespace {

StatusOr<std::string> ReadFile(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(StatusCode::kInvalidArgument, std::string(flag) + ": cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string FromEnv(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
}

}  // namespace

std::string RetryServiceConfig(int retries) {
  // gRPC's retry policy (gRFC A6): only UNAVAILABLE, which a server answers while it drains
  // or a proxy while no replica is up, and only before the server has answered anything, so a
  // retried call never repeats output the client has seen. Generate and Score are idempotent.
  return R"({"methodConfig": [{"name": [{"service": "pkmserve.v1.Inference"}],
    "retryPolicy": {"maxAttempts": )" +
         std::to_string(retries + 1) + R"(, "initialBackoff": "0.1s", "maxBackoff": "1s",
      "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]})";
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN_CODE";
  }
}

std::vector<FlagSpec> GlobalFlags() {
  return {
      {"server", "HOST:PORT", "pkmserve's address (env PKM_SERVER)",
       FromEnv("PKM_SERVER", "127.0.0.1:50051")},
      {"tls-ca", "FILE", "connect with TLS, trusting this PEM CA (env PKM_TLS_CA)",
       FromEnv("PKM_TLS_CA", "")},
      {"auth-token-file", "FILE", "send the bearer token in FILE (env PKM_AUTH_TOKEN_FILE)",
       FromEnv("PKM_AUTH_TOKEN_FILE", "")},
      {"timeout", "SECONDS", "deadline of each call, 0 for none (env PKM_TIMEOUT)",
       FromEnv("PKM_TIMEOUT", "600")},
      {"retries", "N",
       "retry a call refused with UNAVAILABLE before any answer (a draining or unreachable "
       "server) up to N times, with backoff; 0: never (env PKM_RETRIES)",
       FromEnv("PKM_RETRIES", "2")},
      {"help", "", "this text (also -h)", ""},
  };
}

std::string InFlagTerms(const std::string& message, const FlagTerms& terms) {
  std::string out;
  size_t i = 0;
  while (i < message.size()) {
    const bool starts_name = (i == 0 || (!IsNameChar(message[i - 1]) && message[i - 1] != '.' &&
                                         message[i - 1] != '-'));
    bool replaced = false;
    if (starts_name) {
      for (const auto& [field, flag] : terms) {
        const size_t end = i + field.size();
        if (message.compare(i, field.size(), field) == 0 &&
            (end == message.size() || !IsNameChar(message[end]))) {
          out += flag;
          i = end;
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) out += message[i++];
  }
  return out;
}

StatusOr<Connection> Connection::FromArgs(const Args& args) {
  Connection c;
  c.address_ = args.Get("server");
  if (c.address_.find(':') == std::string::npos) {
    return Status(StatusCode::kInvalidArgument,
                  "--server must be HOST:PORT (e.g. 127.0.0.1:50051), got '" + c.address_ + "'");
  }
  PKM_ASSIGN_OR_RETURN(c.timeout_s_, args.GetDouble("timeout", 0, 86400 * 7));
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!args.Get("tls-ca").empty()) {
    grpc::SslCredentialsOptions tls;
    PKM_ASSIGN_OR_RETURN(tls.pem_root_certs, ReadFile(args.Get("tls-ca"), "--tls-ca"));
    credentials = grpc::SslCredentials(tls);
  }
  if (!args.Get("auth-token-file").empty()) {
    PKM_ASSIGN_OR_RETURN(c.token_, ReadFile(args.Get("auth-token-file"), "--auth-token-file"));
    while (!c.token_.empty() && std::isspace(static_cast<unsigned char>(c.token_.back()))) {
      c.token_.pop_back();
    }
    if (c.token_.empty()) {
      return Status(StatusCode::kInvalidArgument, "--auth-token-file: the file is empty");
    }
  }
  PKM_ASSIGN_OR_RETURN(const long retries, args.GetInt("retries", 0, kMaxRetries));
  grpc::ChannelArguments channel_args;
  if (retries > 0) channel_args.SetServiceConfigJSON(RetryServiceConfig(static_cast<int>(retries)));
  c.channel_ = grpc::CreateCustomChannel(c.address_, credentials, channel_args);
  return c;
}

void Connection::Prepare(grpc::ClientContext* context) const { Prepare(context, timeout_s_); }

void Connection::Prepare(grpc::ClientContext* context, double timeout_s) const {
  if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
  if (timeout_s > 0) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::microseconds(static_cast<long>(timeout_s * 1e6)));
  }
}

std::optional<Args> ParseOrHelp(const std::vector<std::string>& argv, const std::string& usage,
                                const std::string& about, const std::vector<FlagSpec>& extra,
                                int* code) {
  std::vector<FlagSpec> specs = GlobalFlags();
  specs.insert(specs.end(), extra.begin(), extra.end());
  auto args = Args::Parse(argv, specs);
  if (!args.ok()) {
    *code = ReportUsageError(args.status());
    return std::nullopt;
  }
  if (args->Has("help")) {
    std::printf("%s", HelpText(usage, about, specs).c_str());
    *code = kExitOk;
    return std::nullopt;
  }
  return std::move(*args);
}

grpc::Status FetchModelInfo(const Connection& conn, pkmserve::v1::ModelInfo* info) {
  auto stub = pkmserve::v1::Inference::NewStub(conn.channel());
  grpc::ClientContext ctx;
  conn.Prepare(&ctx);
  return stub->GetModelInfo(&ctx, pkmserve::v1::GetModelInfoRequest(), info);
}

int ReportRpcError(const grpc::Status& status, const FlagTerms& terms) {
  std::string message = InFlagTerms(status.error_message(), terms);
  for (char& ch : message) {
    if (ch == '\n') ch = ' ';
  }
  std::fprintf(stderr, "pkm: %s: %s\n", CodeName(status.error_code()), message.c_str());
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ? kExitConnection : kExitServer;
}

int ReportUsageError(const Status& status) {
  std::fprintf(stderr, "pkm: %s\n", status.message().c_str());
  return kExitUsage;
}

}  // namespace pkm::cli
