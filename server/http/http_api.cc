#include "server/http/http_api.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <string_view>
#include <utility>
#include <vector>

#include "server/http/completion_request.h"
#include "server/http/completions.h"
#include "server/request_outcome.h"
#include "server/status_convert.h"

namespace pkm::http {
namespace {

using json = nlohmann::ordered_json;

void ReplyJson(const json& body, httplib::Response& res) {
  res.set_content(body.dump(), "application/json");
}

bool Authorized(const httplib::Request& req, const std::string& token) {
  if (token.empty()) return true;
  // Compared in full whatever differs first, so timing tells nothing about the token.
  const std::string want = "Bearer " + token;
  const std::string got = req.get_header_value("Authorization");
  unsigned char diff = got.size() == want.size() ? 0 : 1;
  for (size_t i = 0; i < want.size(); ++i) {
    diff |= static_cast<unsigned char>(want[i] ^ (i < got.size() ? got[i] : 0));
  }
  return diff == 0;
}

// Records a call that ended before reaching the scheduler (metrics and the log line).
void RecordRefusal(ServerMetrics* metrics, uint64_t id, const char* method, const Status& s) {
  RequestOutcome outcome;
  outcome.id = id;
  outcome.method = method;
  outcome.api = "http";
  RecordOutcome(metrics, outcome, ToGrpcStatus(s));
}

}  // namespace

HttpApi::HttpApi(HttpApiConfig api) : api_(std::move(api)) {}

HttpApi::~HttpApi() { Shutdown(); }

void HttpApi::Attach(HttpServing serving) {
  attached_ = std::make_unique<HttpServing>(std::move(serving));
  ready_.store(attached_.get(), std::memory_order_release);
}

const HttpServing* HttpApi::Ready(httplib::Response& res) const {
  const HttpServing* s = ready_.load(std::memory_order_acquire);
  if (s == nullptr) ReplyError(Status(StatusCode::kUnavailable, "the model is loading"), res);
  return s;
}

StatusOr<std::unique_ptr<HttpApi>> HttpApi::Start(HttpApiConfig api) {
  std::unique_ptr<HttpApi> self(new HttpApi(std::move(api)));
  const HttpApiConfig& a = self->api_;
  if (!a.tls_cert_file.empty()) {
    auto tls = std::make_unique<httplib::SSLServer>(
        a.tls_cert_file.c_str(), a.tls_key_file.c_str(),
        a.tls_client_ca_file.empty() ? nullptr : a.tls_client_ca_file.c_str());
    if (!tls->is_valid()) {
      return Status(StatusCode::kInvalidArgument,
                    "--tls-cert/--tls-key: the HTTP API cannot load " + a.tls_cert_file + " and " +
                        a.tls_key_file + " (expected a PEM certificate chain and its private key)");
    }
    self->server_ = std::move(tls);
  } else {
    self->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& server = *self->server_;
  const int threads = a.handler_threads;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  server.set_payload_max_length(a.max_body_bytes);
  // Small writes (an event, a short answer) go out at once, not after the client's delayed ACK.
  server.set_tcp_nodelay(true);
  // A client keeps its connection for many requests (httplib's default closes it after 5).
  server.set_keep_alive_max_count(100000);
  server.set_read_timeout(a.io_timeout_s, 0);
  server.set_write_timeout(a.io_timeout_s, 0);
  // httplib listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, compiled into Debian's
  // library): past 5 connections not yet accepted, the kernel drops new SYNs and those clients
  // wait a second for the retransmit, or time out. The listening socket is caught as httplib
  // makes it and listened on again with the system's bound (listen may raise a backlog).
  int listening_socket = -1;
  server.set_socket_options([&listening_socket](socket_t sock) {
    httplib::default_socket_options(sock);
    listening_socket = sock;
  });
  self->Routes();

  const size_t colon = a.listen.rfind(':');
  std::string host = a.listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);  // "[::1]:8080"
  }
  const int port = std::atoi(a.listen.c_str() + colon + 1);
  self->port_ = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (self->port_ <= 0) {
    return Status(StatusCode::kUnavailable,
                  "--http-listen: cannot listen on " + a.listen + " (address in use or not local)");
  }
  if (::listen(listening_socket, SOMAXCONN) != 0) {
    return Status(StatusCode::kUnavailable, "--http-listen: cannot listen on " + a.listen +
                                                " with a backlog of " + std::to_string(SOMAXCONN));
  }
  server.set_socket_options(httplib::default_socket_options);  // drops the capture of a local
  HttpApi* raw = self.get();
  self->thread_ = std::thread([raw] { raw->server_->listen_after_bind(); });
  // Until the loop runs, stop() would not reach it (and Shutdown would wait forever).
  for (int i = 0; i < 5000 && !server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return self;
}

void HttpApi::Shutdown() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

void HttpApi::Routes() {
  httplib::Server& server = *server_;
  const std::string token = api_.auth_token;
  server.set_pre_routing_handler([this, token](const httplib::Request& req,
                                               httplib::Response& res) {
    if (req.path == "/health" || Authorized(req, token)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    // The same answer for a missing and a wrong token.
    const Status refused(StatusCode::kUnauthenticated,
                         "this server needs \"Authorization: Bearer <token>\" (missing or not "
                         "the server's token)");
    const HttpServing* s = ready_.load(std::memory_order_acquire);
    RecordRefusal(s ? s->metrics : nullptr, next_id_++, "http", refused);
    ReplyError(refused, res);
    return httplib::Server::HandlerResponse::Handled;
  });
  const std::string unreadable =
      "the request could not be read: malformed HTTP, or the client sent nothing for " +
      std::to_string(api_.io_timeout_s) + " s (--http-timeout) before it was complete";
  const std::string too_large = "the request body is too large: at most " +
                                std::to_string(api_.max_body_bytes) + " bytes";
  server.set_error_handler([unreadable, too_large](const httplib::Request& req,
                                                   httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler's own error body
    const std::string what = res.status == 404   ? "no such route: " + req.method + " " + req.path +
                                                       " (see docs/http-api.md)"
                             : res.status == 413 ? too_large
                                                 : unreadable;
    json body = ErrorBody(Status(StatusCode::kInvalidArgument, what));
    if (res.status == 404) body["error"]["code"] = "NOT_FOUND";
    ReplyJson(body, res);
  });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        ReplyError(Status(StatusCode::kInternal, "internal error"), res);
      });

  server.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const char* state = ready_.load(std::memory_order_acquire) == nullptr ? "loading"
                        : serving_.load()                                 ? "ok"
                                                                          : "draining";
    res.status = std::string_view(state) == "ok" ? 200 : 503;
    ReplyJson({{"status", state}}, res);
  });
  const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  server.Get("/v1/models", [this, created](const httplib::Request&, httplib::Response& res) {
    const HttpServing* s = Ready(res);
    if (s == nullptr) return;
    ReplyJson({{"object", "list"},
               {"data", json::array({{{"id", s->model_info.name()},
                                      {"object", "model"},
                                      {"created", created},
                                      {"owned_by", "pkmserve"},
                                      {"max_model_len", s->config.max_seq_len}}})}},
              res);
  });
  server.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    const HttpServing* s = Ready(res);
    if (s == nullptr) return;
    const Tokenizer& tokenizer = *s->tokenizer;
    StatusOr<pkmserve::v1::TokenizeRequest> r = ParseTokenizeRequest(req.body);
    if (r.ok()) {
      if (Status st = CheckTextUse("/tokenize", TextUse::kEncode, tokenizer, ""); !st.ok()) {
        r = st;
      }
    }
    if (!r.ok()) {
      RecordRefusal(s->metrics, next_id_++, "tokenize", r.status());
      return ReplyError(r.status(), res);
    }
    std::vector<int32_t> ids;
    if (r->add_bos()) ids.push_back(tokenizer.bos_id());
    for (int32_t id : tokenizer.Encode(r->text())) ids.push_back(id);
    json pieces = json::array();
    for (int32_t id : ids) pieces.push_back(tokenizer.IdToPiece(id));
    ReplyJson({{"tokens", ids}, {"pieces", std::move(pieces)}}, res);
  });
  server.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    const HttpServing* s = Ready(res);
    if (s == nullptr) return;
    StatusOr<pkmserve::v1::DetokenizeRequest> r = ParseDetokenizeRequest(req.body);
    if (r.ok()) {
      Status st = CheckTextUse("/detokenize", TextUse::kDecode, *s->tokenizer, "");
      if (st.ok()) st = CheckTokenIds(r->ids(), s->config.vocab_size, "tokens");
      if (!st.ok()) r = st;
    }
    if (!r.ok()) {
      RecordRefusal(s->metrics, next_id_++, "detokenize", r.status());
      return ReplyError(r.status(), res);
    }
    ReplyJson({{"content", s->tokenizer->Decode(std::vector<int32_t>(r->ids().begin(),
                                                                     r->ids().end()))}},
              res);
  });
  server.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    const HttpServing* s = Ready(res);
    if (s == nullptr) return;
    if (!serving_.load()) {
      return ReplyError(Status(StatusCode::kUnavailable, "the server is draining"), res);
    }
    const CompletionsContext ctx{.scheduler = s->scheduler,
                                 .tokenizer = s->tokenizer,
                                 .config = &s->config,
                                 .limits = &api_.limits,
                                 .metrics = s->metrics,
                                 .model_name = s->model_info.name()};
    HandleCompletion(ctx, next_id_++, req, res);
  });
}

}  // namespace pkm::http
