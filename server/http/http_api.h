// The OpenAI-compatible HTTP API beside gRPC (docs/http-api.md), on cpp-httplib (the library
// llama-server uses), feeding the same scheduler, so requests of both APIs batch together:
//   POST /v1/completions   completion_request.h; stream: server-sent events ending in [DONE]
//   GET  /v1/models        the one model served
//   GET  /health           200 serving, 503 loading or draining (no token: for load balancers)
//   POST /tokenize, /detokenize
// Requests are validated as the gRPC API's (request_validation.h); errors are OpenAI's JSON
// error shape with the HTTP status of their code (completion_request.h). With a bearer token
// every route but /health needs "Authorization: Bearer <token>"; with a certificate and key
// the API serves HTTPS only.
//
// Each connection holds a handler thread while it is open (a stream until its last event), from
// a pool of `handler_threads`. A client that disconnects from a stream has its request
// cancelled when the next event fails to write, which frees its KV cache at the next step.
//
// The API listens from before the model loads (every route answers 503 "loading" until Attach),
// so a load balancer sees a replica that is starting rather than a refused connection.
//
// Thread-safety: SetServing may be called from any thread; Start, Attach and Shutdown from one.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"
#include "model_loader/model_config.h"
#include "model_loader/tokenizer.h"
#include "pkmserve/v1/inference.pb.h"
#include "server/metrics.h"
#include "server/request_validation.h"
#include "server/scheduler.h"

namespace httplib {
class Server;
struct Response;
}  // namespace httplib

namespace pkm::http {

struct HttpApiConfig {
  std::string listen = {};  // host:port; port 0 picks a free one (port())
  std::string tls_cert_file = {}, tls_key_file = {};  // both or neither
  std::string tls_client_ca_file = {};  // require client certificates signed by it
  std::string auth_token = {};  // empty: no authentication
  ServiceLimits limits = {};
  size_t max_body_bytes = size_t{1} << 20;
  // A keep-alive connection holds its thread between requests (up to 5 s idle): the pool must
  // outnumber the clients' connections, or the ones beyond it wait and time out.
  int handler_threads = 256;
  int io_timeout_s = 30;  // a client that sends or reads nothing for this long is dropped
};

// What the API serves once the model is ready.
struct HttpServing {
  Scheduler* scheduler = nullptr;  // must outlive the API's Shutdown
  const Tokenizer* tokenizer = nullptr;
  ModelConfig config = {};
  pkmserve::v1::ModelInfo model_info = {};
  ServerMetrics* metrics = nullptr;  // request outcomes, when set
};

class HttpApi {
 public:
  // Binds and starts serving on its own thread; kUnavailable when the address cannot be
  // bound, kInvalidArgument for a certificate or key that cannot be loaded.
  static StatusOr<std::unique_ptr<HttpApi>> Start(HttpApiConfig api);
  ~HttpApi();  // Shutdown()

  // Starts serving the model (until now every route answered 503). Once.
  void Attach(HttpServing serving);
  int port() const { return port_; }
  // /health answers 503 once this is false (draining).
  void SetServing(bool serving) { serving_ = serving; }
  // Stops listening and joins the server thread once in-flight handlers return.
  void Shutdown();

 private:
  explicit HttpApi(HttpApiConfig api);
  void Routes();
  // The model served, or null (and `res` set to 503) while it loads.
  const HttpServing* Ready(httplib::Response& res) const;

  HttpApiConfig api_;
  std::unique_ptr<HttpServing> attached_;
  std::atomic<const HttpServing*> ready_{nullptr};  // attached_, once published
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> serving_{true};
  std::atomic<uint64_t> next_id_{1};
  int port_ = 0;
};

}  // namespace pkm::http
