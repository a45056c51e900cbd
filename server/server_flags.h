// pkmserve's command line: Abseil flags read by server/command_line.h (argv, then the
// environment), checked into one ServerSettings value.
#pragma once

#include <cstddef>
#include <string>

#include "common/status.h"
#include "engine/model_weights.h"
#include "server/grpc_server.h"
#include "server/log.h"
#include "server/request_validation.h"
#include "server/scheduler.h"

namespace pkm {

struct ServerSettings {
  std::string model_dir;
  std::string http_listen;     // empty: --http-listen=off
  int http_timeout_s = 0;      // an HTTP client's idle limit when sending or reading
  std::string metrics_listen;  // empty: --metrics-listen=off
  int pkm_usage_window = 0;    // tokens; memory usage is tracked only with metrics on
  std::string device;  // as asked: "auto", "cpu" or "cuda"; main resolves auto to what runs
  int threads = 0;
  HeldTypes held;  // --weights-dtype, --pkm-values-dtype
  size_t kv_cache_bytes = 0;
  double drain_timeout_s = 0;
  bool check_only = false;  // load, validate, print and exit
  GrpcServerOptions grpc;
  SchedulerOptions scheduler;
  ServiceLimits limits;
  std::string auth_token;  // read from --auth-token-file
  LogOptions log;
  double log_stats_interval_s = 0;  // 0: no stats lines
  // Set for --help and --version: the text to print on stdout before exiting 0.
  std::string print_and_exit;
};

// Parses argv and the environment and checks every value. Errors are kInvalidArgument naming
// the flag, what it got and what it expects. --help and --version set print_and_exit.
StatusOr<ServerSettings> ParseServerFlags(int argc, char** argv);

// The limits against the model: --max-prompt-tokens and --max-new-tokens at most
// max_seq_len - 1, or kInvalidArgument naming the flag, its value and the context.
Status CheckLimitsFitModel(const ServiceLimits& limits, int max_seq_len);

// "256M", "1G", "65536" -> bytes; nullopt-like failure as kInvalidArgument naming `flag`.
StatusOr<size_t> ParseByteSize(const std::string& text, const char* flag);

// Checks "host:port" (port 0..65535; IPv6 hosts in brackets).
Status CheckListenAddress(const std::string& address, const char* flag);

}  // namespace pkm
