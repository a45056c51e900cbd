// The gRPC server around InferenceService: listening address, TLS, grpc.health.v1 and server
// reflection. main() and the in-process tests build it the same way.
//
// Health: the overall status ("") and "pkmserve.v1.Inference" are SERVING from Start (the model
// is loaded before the server starts) until SetServing(false) at the start of a drain.
//
// Thread-safety: SetServing and Shutdown may be called from any thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "common/status.h"
#include "server/inference_service.h"

namespace pkm {

struct TlsFiles {
  std::string cert_file;       // PEM server certificate chain; empty: plaintext
  std::string key_file;        // PEM private key of cert_file
  std::string client_ca_file;  // PEM CA; when set, clients must present a certificate it signed
};

struct GrpcServerOptions {
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks a free port
  TlsFiles tls;
};

class GrpcServer {
 public:
  // Builds and starts the server. Fails with kInvalidArgument naming the flag when a TLS file
  // cannot be read or only one of cert/key is given, and kUnavailable when the address cannot
  // be bound.
  static StatusOr<std::unique_ptr<GrpcServer>> Start(const GrpcServerOptions& options,
                                                     InferenceService* service);
  ~GrpcServer();

  int port() const { return port_; }  // the bound port

  // Health checks answer SERVING or NOT_SERVING.
  void SetServing(bool serving);
  // Stops accepting calls; calls still open after `deadline` are cancelled. Returns when done.
  void Shutdown(std::chrono::system_clock::time_point deadline);
  // Blocks until Shutdown has completed.
  void Wait();

 private:
  GrpcServer() = default;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace pkm
