#include "server/server_flags.h"

#include <absl/flags/flag.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <tuple>
#include <vector>
#include <algorithm>

#include "common/version.h"
#include "server/command_line.h"

ABSL_FLAG(std::string, model, PKMSERVE_DEFAULT_MODEL_DIR,
          "model directory: config.json, model.safetensors, tokenizer.model (or give it as "
          "the one positional argument: pkmserve DIR)");
ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC address host:port (port 0 picks a free port, printed at start)");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "Prometheus /metrics address host:port, or 'off' to export no metrics");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:8080",
          "OpenAI-compatible HTTP API address host:port (docs/http-api.md), or 'off'");
ABSL_FLAG(int, http_timeout, 30,
          "seconds an HTTP client may send or read nothing before it is answered 408 or "
          "dropped, [1, 3600]");
ABSL_FLAG(int, pkm_usage_window, 8192,
          "tokens over which each memory layer's slot coverage and KL are measured, "
          "[1, 1048576]");
ABSL_FLAG(std::string, device, "auto",
          "auto (CUDA when a GPU can be used, else the CPU) | cpu | cuda (fail without a GPU)");
ABSL_FLAG(int, threads, 0, "CPU engine threads (0: one per core)");
ABSL_FLAG(std::string, weights_dtype, "as-stored",
          "weight matrices (Linear weights, embeddings): as-stored (fp16/bf16 read as such, "
          "from the file's mapping on the CPU) | f32 | f16 | bf16 | int8 (per-row absmax), "
          "converted at load; a type the device cannot read is widened to f32");
ABSL_FLAG(std::string, pkm_values_dtype, "as-stored",
          "the PKM value tables: as-stored | f32 | f16 | bf16 | int8, as for the weight "
          "matrices");
ABSL_FLAG(int, max_batch_tokens, 512,
          "tokens per engine step: decode tokens plus prefill chunks, [1, 65536]");
ABSL_FLAG(int, max_queue, 256, "requests waiting for admission before RESOURCE_EXHAUSTED, [0, 1000000]");
ABSL_FLAG(int, max_running, 256, "sequences batched in one step, [1, 4096]");
ABSL_FLAG(int, max_prompt_tokens, 0,
          "longest prompt accepted, at most the model's max_seq_len - 1 (0: that); longer "
          "prompts are refused unless the request sets truncate");
ABSL_FLAG(int, max_new_tokens, 0,
          "most tokens one request may generate, at most the model's max_seq_len - 1 (0: that); "
          "a request that leaves max_new_tokens unset generates until EOS, a stop string, this "
          "limit or the end of the context");
ABSL_FLAG(std::string, kv_cache_bytes, "256M", "KV cache memory, e.g. 268435456, 256M, 1G");
ABSL_FLAG(double, drain_timeout, 30,
          "seconds that SIGTERM/SIGINT waits for accepted requests before ending them");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain: serve TLS (with --tls-key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA: require client certificates signed by it (mutual TLS)");
ABSL_FLAG(std::string, auth_token_file, "",
          "file holding a bearer token that every Inference call must send as "
          "\"authorization: Bearer <token>\"");
ABSL_FLAG(bool, check, false, "load and validate the model, print what it is, and exit");
ABSL_FLAG(std::string, log_format, "text",
          "text (\"2026-01-02T03:04:05.678Z INFO message\") or json (one object per line)");
ABSL_FLAG(std::string, log_level, "info",
          "info (start-up, one line per finished request, stats) | warning | error");
ABSL_FLAG(double, log_stats_interval, 10,
          "seconds between stats lines (tok/s, running, waiting, KV cache use) while requests "
          "run; 0: none");

namespace pkm {
namespace {

Status Invalid(const std::string& message) {
  return Status(StatusCode::kInvalidArgument, message);
}

Status CheckRange(const char* flag, long value, long lo, long hi) {
  if (value < lo || value > hi) {
    return Invalid(std::string(flag) + " must be in [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "], got " + std::to_string(value));
  }
  return OkStatus();
}

StatusOr<std::string> ReadToken(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Invalid("--auth-token-file: cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  std::string token = text.str();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) {
    token.pop_back();
  }
  if (token.empty()) {
    return Invalid("--auth-token-file: " + path + " is empty (expected the bearer token)");
  }
  for (char c : token) {
    if (!std::isgraph(static_cast<unsigned char>(c))) {
      return Invalid("--auth-token-file: the token in " + path +
                     " must be printable ASCII without spaces");
    }
  }
  return token;
}

}  // namespace

StatusOr<size_t> ParseByteSize(const std::string& text, const char* flag) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) {
    ++digits;
  }
  const std::string suffix = text.substr(digits);
  int shift = -1;
  if (suffix.empty() || suffix == "B") shift = 0;
  if (suffix == "K" || suffix == "KiB") shift = 10;
  if (suffix == "M" || suffix == "MiB") shift = 20;
  if (suffix == "G" || suffix == "GiB") shift = 30;
  if (digits == 0 || digits > 12 || shift < 0) {
    return Invalid(std::string(flag) + " must be a size like 268435456, 256M or 1G, got '" +
                   text + "'");
  }
  const unsigned long long value = std::stoull(text.substr(0, digits));
  constexpr unsigned long long kMaxBytes = 1ull << 40;  // 1 TiB: beyond any host or device
  if (value > (kMaxBytes >> shift)) {
    return Invalid(std::string(flag) + " must be at most 1024G, got '" + text + "'");
  }
  return static_cast<size_t>(value << shift);
}

Status CheckListenAddress(const std::string& address, const char* flag) {
  const size_t colon = address.rfind(':');
  const std::string expected = " (expected host:port, e.g. 127.0.0.1:50051 or [::1]:50051)";
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return Invalid(std::string(flag) + ": '" + address + "' is not host:port" + expected);
  }
  const std::string port = address.substr(colon + 1);
  if (port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535) {
    return Invalid(std::string(flag) + ": port '" + port + "' is not in [0, 65535]" + expected);
  }
  return OkStatus();
}

namespace {

StatusOr<ServerSettings> Settings(const CommandLine& command_line);

// A value refused after it came from the environment: say which variable set it.
Status NameTheVariable(const Status& status, const CommandLine& command_line) {
  for (const std::string& name : command_line.from_env) {
    std::string dashed = "--" + name;
    std::replace(dashed.begin(), dashed.end(), '_', '-');
    const std::string& m = status.message();
    if (m.compare(0, dashed.size(), dashed) == 0 &&
        (m.size() == dashed.size() || m[dashed.size()] == ' ' || m[dashed.size()] == ':')) {
      return Status(status.code(), m + " (set by " + EnvVarName(name) + ")");
    }
  }
  return status;
}

}  // namespace

StatusOr<ServerSettings> ParseServerFlags(int argc, char** argv) {
  const std::vector<std::string> args(argv, argv + argc);
  PKM_ASSIGN_OR_RETURN(CommandLine command_line,
                       ParseCommandLine(args, "server_flags.cc", [](const char* name) -> const char* {
                         return std::getenv(name);
                       }));
  StatusOr<ServerSettings> settings = Settings(command_line);
  if (!settings.ok()) return NameTheVariable(settings.status(), command_line);
  return settings;
}

namespace {

StatusOr<ServerSettings> Settings(const CommandLine& command_line) {
  ServerSettings s;
  if (command_line.action == CommandLine::Action::kHelp) {
    s.print_and_exit = CommandLineHelp(
        "usage: pkmserve [flags] [MODEL_DIR]",
        "Serves a PKM language model over gRPC (pkmserve.v1.Inference, grpc.health.v1, "
        "reflection)\nand Prometheus metrics. With no arguments: the bundled model on "
        "127.0.0.1:50051.\nSIGTERM/SIGINT drain accepted requests and exit 0. Logs go to stderr.\n"
        "Exit codes: 0 clean exit, 1 bad flags, 2 the model failed to load, 3 cannot serve "
        "(e.g. a port in use).",
        "server_flags.cc");
    return s;
  }
  if (command_line.action == CommandLine::Action::kVersion) {
    s.print_and_exit = std::string("pkmserve ") + VersionLine() + "\n";
    return s;
  }
  if (command_line.positional.size() > 1) {
    return Invalid("unexpected argument '" + command_line.positional[1] +
                   "': pkmserve takes at most one positional argument, the model directory");
  }
  s.model_dir = absl::GetFlag(FLAGS_model);
  if (!command_line.positional.empty()) {
    const std::string& positional = command_line.positional[0];
    if (command_line.given.count("model") != 0) {
      return Invalid("the model is given twice: '" + positional + "' (argument) and '" +
                     s.model_dir + "' (--model or PKMSERVE_MODEL); give one");
    }
    s.model_dir = positional;
  }
  s.check_only = absl::GetFlag(FLAGS_check);
  s.grpc.listen = absl::GetFlag(FLAGS_listen);
  PKM_RETURN_IF_ERROR(CheckListenAddress(s.grpc.listen, "--listen"));
  s.http_listen = absl::GetFlag(FLAGS_http_listen);
  if (s.http_listen == "off") {
    s.http_listen.clear();
  } else {
    PKM_RETURN_IF_ERROR(CheckListenAddress(s.http_listen, "--http-listen"));
  }
  s.http_timeout_s = absl::GetFlag(FLAGS_http_timeout);
  PKM_RETURN_IF_ERROR(CheckRange("--http-timeout", s.http_timeout_s, 1, 3600));
  s.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  if (s.metrics_listen == "off") {
    s.metrics_listen.clear();
  } else {
    PKM_RETURN_IF_ERROR(CheckListenAddress(s.metrics_listen, "--metrics-listen"));
  }
  s.pkm_usage_window = absl::GetFlag(FLAGS_pkm_usage_window);
  PKM_RETURN_IF_ERROR(CheckRange("--pkm-usage-window", s.pkm_usage_window, 1, 1 << 20));

  s.device = absl::GetFlag(FLAGS_device);
  if (s.device != "auto" && s.device != "cpu" && s.device != "cuda") {
    return Invalid("--device must be auto, cpu or cuda, got '" + s.device + "'");
  }

  for (const auto& [flag, value, held] :
       {std::tuple("--weights-dtype", absl::GetFlag(FLAGS_weights_dtype), &s.held.matrices),
        std::tuple("--pkm-values-dtype", absl::GetFlag(FLAGS_pkm_values_dtype),
                   &s.held.pkm_values)}) {
    if (!ParseWeightsHeld(value, held)) {
      return Invalid(std::string(flag) + " must be " + kWeightsHeldChoices + ", got '" + value +
                     "'");
    }
  }

  s.threads = absl::GetFlag(FLAGS_threads);
  PKM_RETURN_IF_ERROR(CheckRange("--threads", s.threads, 0, 1024));
  if (s.threads == 0) s.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  s.scheduler.max_batch_tokens = absl::GetFlag(FLAGS_max_batch_tokens);
  PKM_RETURN_IF_ERROR(CheckRange("--max-batch-tokens", s.scheduler.max_batch_tokens, 1, 65536));
  s.scheduler.max_queue = absl::GetFlag(FLAGS_max_queue);
  PKM_RETURN_IF_ERROR(CheckRange("--max-queue", s.scheduler.max_queue, 0, 1000000));
  s.scheduler.max_running = absl::GetFlag(FLAGS_max_running);
  PKM_RETURN_IF_ERROR(CheckRange("--max-running", s.scheduler.max_running, 1, 4096));
  s.limits.max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  PKM_RETURN_IF_ERROR(CheckRange("--max-prompt-tokens", s.limits.max_prompt_tokens, 0, 1 << 24));
  s.limits.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  PKM_RETURN_IF_ERROR(CheckRange("--max-new-tokens", s.limits.max_new_tokens, 0, 1 << 24));
  PKM_ASSIGN_OR_RETURN(s.kv_cache_bytes,
                       ParseByteSize(absl::GetFlag(FLAGS_kv_cache_bytes), "--kv-cache-bytes"));
  s.drain_timeout_s = absl::GetFlag(FLAGS_drain_timeout);
  if (!(s.drain_timeout_s >= 0 && s.drain_timeout_s <= 86400)) {
    return Invalid("--drain-timeout must be in [0, 86400] seconds, got " +
                   std::to_string(s.drain_timeout_s));
  }
  s.grpc.tls = {.cert_file = absl::GetFlag(FLAGS_tls_cert),
                .key_file = absl::GetFlag(FLAGS_tls_key),
                .client_ca_file = absl::GetFlag(FLAGS_tls_client_ca)};
  s.log.format = absl::GetFlag(FLAGS_log_format);
  if (s.log.format != "text" && s.log.format != "json") {
    return Invalid("--log-format must be text or json, got '" + s.log.format + "'");
  }
  const std::string level = absl::GetFlag(FLAGS_log_level);
  const std::optional<LogLevel> parsed_level = ParseLogLevel(level);
  if (!parsed_level) {
    return Invalid("--log-level must be info, warning or error, got '" + level + "'");
  }
  s.log.level = *parsed_level;
  s.log_stats_interval_s = absl::GetFlag(FLAGS_log_stats_interval);
  if (!(s.log_stats_interval_s >= 0 && s.log_stats_interval_s <= 86400)) {
    return Invalid("--log-stats-interval must be in [0, 86400] seconds, got " +
                   std::to_string(s.log_stats_interval_s));
  }
  const std::string token_file = absl::GetFlag(FLAGS_auth_token_file);
  if (!token_file.empty()) {
    PKM_ASSIGN_OR_RETURN(s.auth_token, ReadToken(token_file));
  }
  return s;
}

}  // namespace

Status CheckLimitsFitModel(const ServiceLimits& limits, int max_seq_len) {
  const int most = max_seq_len - 1;
  for (const auto& [flag, value] : {std::pair{"--max-prompt-tokens", limits.max_prompt_tokens},
                                    std::pair{"--max-new-tokens", limits.max_new_tokens}}) {
    if (value > most) {
      return Invalid(std::string(flag) + " is " + std::to_string(value) +
                     ", more than the model's context allows: max_seq_len is " +
                     std::to_string(max_seq_len) + ", so at most " + std::to_string(most) +
                     " (0 means " + std::to_string(most) + ")");
    }
  }
  return OkStatus();
}

}  // namespace pkm
