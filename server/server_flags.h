// pkmserve's command line: Abseil flags, checked into one ServerSettings value.
#pragma once

#include <cstddef>
#include <string>

#include "common/status.h"
#include "server/grpc_server.h"
#include "server/request_validation.h"
#include "server/scheduler.h"

namespace pkm {

struct ServerSettings {
  std::string model_dir;
  std::string metrics_listen;  // empty: --metrics-listen=off
  int pkm_usage_window = 0;    // tokens; memory usage is tracked only with metrics on
  std::string device;  // as asked: "auto", "cpu" or "cuda"; main resolves auto to what runs
  int threads = 0;
  size_t kv_cache_bytes = 0;
  double drain_timeout_s = 0;
  bool check_only = false;  // load, validate, print and exit
  GrpcServerOptions grpc;
  SchedulerOptions scheduler;
  ServiceLimits limits;
  std::string auth_token;  // read from --auth-token-file
};

// Parses argv (exits on --help or an unknown flag, as Abseil does) and checks every value.
// Errors are kInvalidArgument naming the flag, what it got and what it expects.
StatusOr<ServerSettings> ParseServerFlags(int argc, char** argv);

// "256M", "1G", "65536" -> bytes; nullopt-like failure as kInvalidArgument naming `flag`.
StatusOr<size_t> ParseByteSize(const std::string& text, const char* flag);

// Checks "host:port" (port 0..65535; IPv6 hosts in brackets).
Status CheckListenAddress(const std::string& address, const char* flag);

}  // namespace pkm
