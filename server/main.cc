// pkmserve: serves a PKM language model over gRPC and an OpenAI-compatible HTTP API.
//
// Start-up: flags, model + tokenizer, engine, scheduler, service, gRPC server; then the main
// thread waits for SIGTERM/SIGINT. On the signal: health NOT_SERVING, the scheduler stops
// admitting (new calls get UNAVAILABLE), accepted requests finish (bounded by
// --drain-timeout), the gRPC server shuts down and the process exits 0.
//
// Exit codes: 0 clean exit, 1 bad flags, 2 the model failed to load, 3 cannot serve.
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "common/version.h"
#include "engine/backend_loader.h"
#include "engine/engine.h"
#include "model_loader/model_loader.h"
#include "model_loader/model_tokenizer.h"
#include <prometheus/exposer.h>

#include "server/grpc_server.h"
#include "server/http/http_api.h"
#include "server/metrics.h"
#include "server/inference_service.h"
#include "server/log.h"
#include "server/model_info.h"
#include "server/port_check.h"
#include "server/scheduler.h"
#include "server/server_flags.h"
#include "server/stats_log.h"

namespace {

constexpr int kExitUsage = 1;
constexpr int kExitBadModel = 2;
constexpr int kExitCannotServe = 3;

int Fail(int code, const pkm::Status& status) {
  pkm::Log(pkm::LogLevel::kError, status.message(),
           {{"code", pkm::StatusCodeName(status.code())}, {"exit", code}});
  return code;
}

void Info(const std::string& message, const nlohmann::ordered_json& fields = nullptr) {
  pkm::Log(pkm::LogLevel::kInfo, message, fields);
}

}  // namespace

int main(int argc, char** argv) {
  // Every thread started from here on inherits the blocked set; the main thread takes the
  // signals with sigwait once the server is up.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  pkm::StatusOr<pkm::ServerSettings> settings = pkm::ParseServerFlags(argc, argv);
  if (!settings.ok()) {
    std::fprintf(stderr, "pkmserve: %s\n", settings.status().message().c_str());
    return kExitUsage;
  }
  if (!settings->print_and_exit.empty()) {
    std::fputs(settings->print_and_exit.c_str(), stdout);
    return 0;
  }
  pkm::ConfigureLog(settings->log);
  const bool metrics_on = !settings->metrics_listen.empty();
  // Ports first: a busy one fails now, not after the model has loaded.
  if (!settings->check_only) {
    if (pkm::Status s = pkm::CheckCanListen(settings->grpc.listen, "--listen"); !s.ok()) {
      return Fail(kExitCannotServe, s);
    }
    if (metrics_on) {
      if (pkm::Status s = pkm::CheckCanListen(settings->metrics_listen, "--metrics-listen");
          !s.ok()) {
        return Fail(kExitCannotServe, s);
      }
    }
    if (!settings->http_listen.empty()) {  // CheckCanListen says why, where httplib cannot
      if (pkm::Status s = pkm::CheckCanListen(settings->http_listen, "--http-listen"); !s.ok()) {
        return Fail(kExitCannotServe, s);
      }
    }
  }
  // The HTTP API listens while the model loads (503 "loading"), as a load balancer expects.
  std::unique_ptr<pkm::http::HttpApi> http;
  if (!settings->http_listen.empty() && !settings->check_only) {
    auto started = pkm::http::HttpApi::Start({.listen = settings->http_listen,
                                              .tls_cert_file = settings->grpc.tls.cert_file,
                                              .tls_key_file = settings->grpc.tls.key_file,
                                              .tls_client_ca_file = settings->grpc.tls.client_ca_file,
                                              .auth_token = settings->auth_token,
                                              .limits = settings->limits,
                                              .io_timeout_s = settings->http_timeout_s});
    if (!started.ok()) {
      return Fail(started.status().code() == pkm::StatusCode::kInvalidArgument ? kExitUsage
                                                                                 : kExitCannotServe,
                  started.status());
    }
    http = std::move(*started);
    const std::string& h = settings->http_listen;
    Info(std::string("http on ") + (settings->grpc.tls.cert_file.empty() ? "http" : "https") +
         "://" + h.substr(0, h.rfind(':')) + ":" + std::to_string(http->port()) + "/v1");
  }

  // A directory without a tokenizer (a converted vocabulary that cannot be tokenized exactly)
  // is served on token ids: text fields are refused, naming the ids field.
  pkm::StatusOr<pkm::LoadedModel> model =
      pkm::LoadModel(settings->model_dir);
  if (!model.ok()) return Fail(kExitBadModel, model.status());
  auto loaded_tokenizer = pkm::LoadModelTokenizer(*model);
  if (!loaded_tokenizer.ok()) return Fail(kExitBadModel, loaded_tokenizer.status());
  std::unique_ptr<pkm::Tokenizer> tokenizer = std::move(*loaded_tokenizer);
  if (!tokenizer->can_encode()) {
    pkm::Log(pkm::LogLevel::kWarning,
             "the model's tokenizer cannot encode text: " +
                 std::string(tokenizer->missing_text_reason()) +
                 (tokenizer->can_decode() ? "; prompts must be token ids (outputs are text)"
                                          : "; serving token ids only (requests must send "
                                            "tokens, not text)"));
  }
  Info("model loaded", {{"path", settings->model_dir}, {"summary", model->Summary()}});
  if (pkm::Status s = pkm::CheckLimitsFitModel(settings->limits, model->config().max_seq_len);
      !s.ok()) {
    return Fail(kExitUsage, s);
  }

  // The exporter starts before the CUDA plugin is opened (DESIGN: cuBLASLt's libraries loaded
  // before it break the exporter's threads); its metrics are registered once they exist.
  std::unique_ptr<prometheus::Exposer> exposer;
  if (metrics_on && !settings->check_only) {
    try {
      exposer = std::make_unique<prometheus::Exposer>(settings->metrics_listen);
    } catch (const std::exception& e) {
      return Fail(kExitCannotServe,
                  pkm::Status(pkm::StatusCode::kUnavailable,
                              "--metrics-listen: cannot listen on " + settings->metrics_listen +
                                  " (" + e.what() + ")"));
    }
  }
  pkm::StatusOr<pkm::BackendChoice> backend = pkm::MakeBackend(settings->device, settings->threads);
  if (!backend.ok()) return Fail(kExitCannotServe, backend.status());
  if (!backend->fallback.empty()) {
    pkm::Log(pkm::LogLevel::kWarning,
             "--device=auto: no CUDA (" + backend->fallback + "); serving on the CPU");
  }
  const pkm::EngineOptions engine_options = {
      .kv_cache_bytes = settings->kv_cache_bytes,
      .pkm_usage_window = metrics_on ? settings->pkm_usage_window : 0,
      .time_pkm_lookups = metrics_on,
      .held = settings->held};
  auto engine = pkm::Engine::Create(*model, std::move(backend->backend), engine_options);
  // A backend that cannot run one of the model's parts refuses it (kFailedPrecondition): under
  // --device=auto the CPU, which runs every part, takes over, saying why.
  if (!engine.ok() && engine.status().code() == pkm::StatusCode::kFailedPrecondition &&
      settings->device == "auto" && backend->device != "cpu") {
    pkm::Log(pkm::LogLevel::kWarning,
             "--device=auto: " + engine.status().message() + "; serving on the CPU");
    backend = pkm::MakeBackend("cpu", settings->threads);
    if (!backend.ok()) return Fail(kExitCannotServe, backend.status());
    engine = pkm::Engine::Create(*model, std::move(backend->backend), engine_options);
  }
  Info("backend " + backend->description);
  settings->device = backend->device;
  if (!engine.ok()) {
    // The only argument the engine can refuse is the cache size.
    if (engine.status().code() == pkm::StatusCode::kInvalidArgument) {
      return Fail(kExitUsage, pkm::Status(pkm::StatusCode::kInvalidArgument,
                                          "--kv-cache-bytes: " + engine.status().message()));
    }
    return Fail(kExitBadModel, engine.status());
  }
  const int kv_positions =
      (*engine)->kv_cache().num_blocks() * pkm::KvCache::kBlockSize;
  if (kv_positions < model->config().max_seq_len) {
    return Fail(kExitUsage,
                pkm::Status(pkm::StatusCode::kInvalidArgument,
                            "--kv-cache-bytes: the cache holds " + std::to_string(kv_positions) +
                                " positions, fewer than one sequence of max_seq_len " +
                                std::to_string(model->config().max_seq_len) + "; raise it"));
  }
  if (settings->check_only) {
    Info("check passed (engine on " + settings->device + ", KV cache " +
         std::to_string(kv_positions) + " positions)");
    return 0;
  }

  pkmserve::v1::ModelInfo model_info = pkm::DescribeModel(*model, **engine, *settings);
  model_info.set_tokenizer(std::string(tokenizer->kind()));
  model_info.set_encodes_text(tokenizer->can_encode());
  model_info.set_decodes_text(tokenizer->can_decode());
  // The scheduler reports steps to the metrics, which read the scheduler's stats at a scrape:
  // declared so that the metrics outlive the scheduler.
  std::shared_ptr<pkm::ServerMetrics> metrics;
  std::unique_ptr<pkm::Scheduler> scheduler;
  // The exporter started first, so it would be destroyed last: stop it (joining its threads)
  // before the scheduler and the metrics it reads at a scrape go.
  struct ExporterStop {
    std::unique_ptr<prometheus::Exposer>& exposer;
    ~ExporterStop() { exposer.reset(); }
  } exporter_stop{exposer};
  pkm::SchedulerOptions scheduler_options = settings->scheduler;
  if (metrics_on) {
    metrics = std::make_shared<pkm::ServerMetrics>(pkm::MetricsSetup{
        .model = model_info.name(),
        .stats = [&scheduler] { return scheduler->Stats(); },
        .weight_bytes = static_cast<double>((*engine)->weight_bytes()),
        .kv_cache_bytes = static_cast<double>((*engine)->kv_cache_bytes()),
        .queue_capacity = settings->scheduler.max_queue,
        .device = settings->device,
        .memory_labels = model->config().memory_labels()});
    metrics->SetBuildInfo(pkm::ProjectVersion(), pkm::GitCommit(), pkm::BuildType());
    scheduler_options.observer = metrics.get();
  }
  scheduler = std::make_unique<pkm::Scheduler>(engine->get(), tokenizer.get(), scheduler_options);
  if (metrics_on) exposer->RegisterCollectable(metrics);
  const pkmserve::v1::ModelInfo http_model_info = model_info;
  pkm::ServiceConfig service_config{.limits = settings->limits,
                                    .auth_token = settings->auth_token,
                                    .model_info = std::move(model_info),
                                    .metrics = metrics.get()};
  pkm::InferenceService service(scheduler.get(), tokenizer.get(), model->config(),
                                std::move(service_config));
  auto server = pkm::GrpcServer::Start(settings->grpc, &service);
  if (!server.ok()) {
    return Fail(server.status().code() == pkm::StatusCode::kInvalidArgument ? kExitUsage
                                                                              : kExitCannotServe,
                server.status());
  }
  if (http) {
    http->Attach({.scheduler = scheduler.get(),
                  .tokenizer = tokenizer.get(),
                  .config = model->config(),
                  .model_info = http_model_info,
                  .metrics = metrics.get()});
  }
  std::string host = settings->grpc.listen.substr(0, settings->grpc.listen.rfind(':'));
  if (exposer) {
    const std::vector<int> metrics_ports = exposer->GetListeningPorts();
    Info("metrics on http://" +
         settings->metrics_listen.substr(0, settings->metrics_listen.rfind(':')) + ":" +
         std::to_string(metrics_ports.empty() ? 0 : metrics_ports.front()) + "/metrics");
  }
  Info("listening on " + host + ":" + std::to_string((*server)->port()) +
           (settings->grpc.tls.cert_file.empty() ? "" : " (TLS)") +
           (settings->auth_token.empty() ? "" : " (bearer token required)"),
       {{"version", pkm::VersionLine()}});

  std::unique_ptr<pkm::StatsLog> stats_log;
  if (settings->log_stats_interval_s > 0) {
    stats_log = std::make_unique<pkm::StatsLog>([&scheduler] { return scheduler->Stats(); },
                                                settings->log_stats_interval_s);
  }

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  Info(std::string(signal_number == SIGTERM ? "SIGTERM" : "SIGINT") + ": draining",
       {{"drain_timeout_s", settings->drain_timeout_s}});
  (*server)->SetServing(false);
  if (http) http->SetServing(false);
  scheduler->BeginDrain();
  const bool clean = scheduler->WaitIdle(
      pkm::SchedulerClock::now() +
      std::chrono::duration_cast<pkm::SchedulerClock::duration>(
          std::chrono::duration<double>(settings->drain_timeout_s)));
  // gRPC's Shutdown cancels (CANCELLED, not UNAVAILABLE) the calls that have reached its
  // transport but no handler yet, so keep refusing with UNAVAILABLE a moment longer first: a
  // client whose last request has just finished then hears that the server is draining.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // Every accepted call has had its terminal message queued; give the streams a moment to
  // flush, then close.
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (http) http->Shutdown();
  stats_log.reset();
  const pkm::SchedulerStats stats = scheduler->Stats();
  Info(std::string("drained") +
           (clean ? "" : " (drain timeout: remaining requests ended with UNAVAILABLE)") +
           "; exiting",
       {{"requests", stats.requests_finished}});
  return 0;
}
