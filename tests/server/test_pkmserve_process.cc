// pkmserve as a process: SIGTERM drains without losing accepted requests, TLS and mutual TLS,
// the bearer token file, and flags that are refused with exit code 1 and a message naming them.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "pkmserve/v1/inference.grpc.pb.h"
#include "tests/server/pkmserve_process.h"

namespace pkm {
namespace {

namespace v1 = pkmserve::v1;
using grpc::health::v1::HealthCheckResponse;

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pkmserve-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::vector<std::string> BaseFlags() {
  return {"--model", "models/pkm-small", "--listen", "127.0.0.1:0", "--metrics-listen",
          "127.0.0.1:0", "--threads", "1", "--kv-cache-bytes", "32M"};
}

grpc::StatusCode Tokenize(const std::shared_ptr<grpc::Channel>& channel,
                          const std::string& bearer = "") {
  auto stub = v1::Inference::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!bearer.empty()) ctx.AddMetadata("authorization", "Bearer " + bearer);
  v1::TokenizeRequest req;
  req.set_text("hello");
  v1::TokenizeResponse resp;
  return stub->Tokenize(&ctx, req, &resp).error_code();
}

HealthCheckResponse::ServingStatus Health(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  if (!stub->Check(&ctx, req, &resp).ok()) return HealthCheckResponse::UNKNOWN;
  return resp.status();
}

TEST(PkmserveProcessTest, SigtermDrainsAcceptedRequestsThenExitsZero) {
  std::vector<std::string> flags = BaseFlags();
  flags.insert(flags.end(), {"--drain-timeout", "120"});
  PkmserveProcess server(flags);
  const int port = server.WaitForPort();
  ASSERT_GT(port, 0) << server.Stderr();
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                     grpc::InsecureChannelCredentials());
  EXPECT_EQ(Health(channel), HealthCheckResponse::SERVING);

  constexpr int kStreams = 4;
  constexpr int kTokens = 200;
  std::vector<int> tokens(kStreams, 0);
  std::vector<v1::FinishReason> finish(kStreams, v1::FINISH_REASON_UNSPECIFIED);
  std::vector<grpc::Status> status(kStreams);
  std::atomic<int> started{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kStreams; ++i) {
    clients.emplace_back([&, i] {
      auto stub = v1::Inference::NewStub(channel);
      grpc::ClientContext ctx;
      v1::GenerateRequest req;
      req.set_text("Stream " + std::to_string(i));
      req.set_max_new_tokens(kTokens);
      req.set_ignore_eos(true);
      auto reader = stub->Generate(&ctx, req);
      v1::GenerateResponse msg;
      bool first = true;
      while (reader->Read(&msg)) {
        if (first) ++started;
        first = false;
        tokens[i] += msg.tokens_size();
        if (msg.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) finish[i] = msg.finish_reason();
      }
      status[i] = reader->Finish();
    });
  }
  while (started < kStreams) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  server.Signal(SIGTERM);
  // While draining: health says NOT_SERVING and new work is refused with UNAVAILABLE.
  HealthCheckResponse::ServingStatus during = HealthCheckResponse::SERVING;
  for (int i = 0; i < 200 && during == HealthCheckResponse::SERVING; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    during = Health(channel);
  }
  EXPECT_EQ(during, HealthCheckResponse::NOT_SERVING);
  {
    auto stub = v1::Inference::NewStub(channel);
    grpc::ClientContext ctx;
    v1::GenerateRequest req;
    req.set_text("late");
    auto reader = stub->Generate(&ctx, req);
    v1::GenerateResponse msg;
    while (reader->Read(&msg)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  for (auto& t : clients) t.join();
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_TRUE(status[i].ok()) << i << ": " << status[i].error_message();
    EXPECT_EQ(tokens[i], kTokens) << i;
    EXPECT_EQ(finish[i], v1::FINISH_REASON_LENGTH) << i;
  }
  EXPECT_EQ(server.Wait(), 0) << server.Stderr();
  EXPECT_NE(server.Stderr().find("drained"), std::string::npos) << server.Stderr();
}

// A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made with the
// openssl CLI.
class TlsFiles {
 public:
  TlsFiles() {
    const std::string d = dir_.path().string();
    const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string cmd =
        "cd '" + d + "' && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext && "
        "openssl req -x509" + key + " -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca && "
        "openssl req" + key + " -keyout server.key -out server.csr -subj /CN=localhost && "
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out server.pem -days 2 -extfile san.ext && "
        "openssl req" + key + " -keyout client.key -out client.csr -subj /CN=client && "
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out client.pem -days 2";
    ok_ = std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
  }
  bool ok() const { return ok_; }
  std::string Path(const char* name) const { return (dir_.path() / name).string(); }
  std::string Read(const char* name) const { return ReadFile(dir_.path() / name); }

 private:
  TempDir dir_;
  bool ok_ = false;
};

TEST(PkmserveProcessTest, TlsAndMutualTls) {
  TlsFiles tls;
  ASSERT_TRUE(tls.ok()) << "openssl failed (scripts/setup.sh installs it)";
  grpc::SslCredentialsOptions trusted{.pem_root_certs = tls.Read("ca.pem"),
                                      .pem_private_key = "", .pem_cert_chain = ""};
  grpc::SslCredentialsOptions with_cert = trusted;
  with_cert.pem_private_key = tls.Read("client.key");
  with_cert.pem_cert_chain = tls.Read("client.pem");
  {
    std::vector<std::string> flags = BaseFlags();
    flags.insert(flags.end(), {"--tls-cert", tls.Path("server.pem"), "--tls-key",
                               tls.Path("server.key")});
    PkmserveProcess server(flags);
    const int port = server.WaitForPort();
    ASSERT_GT(port, 0) << server.Stderr();
    const std::string addr = "127.0.0.1:" + std::to_string(port);
    EXPECT_EQ(Tokenize(grpc::CreateChannel(addr, grpc::SslCredentials(trusted))),
              grpc::StatusCode::OK);
    EXPECT_NE(Tokenize(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials())),
              grpc::StatusCode::OK);
  }
  {
    std::vector<std::string> flags = BaseFlags();
    flags.insert(flags.end(), {"--tls-cert", tls.Path("server.pem"), "--tls-key",
                               tls.Path("server.key"), "--tls-client-ca", tls.Path("ca.pem")});
    PkmserveProcess server(flags);
    const int port = server.WaitForPort();
    ASSERT_GT(port, 0) << server.Stderr();
    const std::string addr = "127.0.0.1:" + std::to_string(port);
    EXPECT_NE(Tokenize(grpc::CreateChannel(addr, grpc::SslCredentials(trusted))),
              grpc::StatusCode::OK);
    EXPECT_EQ(Tokenize(grpc::CreateChannel(addr, grpc::SslCredentials(with_cert))),
              grpc::StatusCode::OK);
  }
}

TEST(PkmserveProcessTest, AuthTokenFileRequiresTheToken) {
  TempDir dir;
  const std::string token_file = (dir.path() / "token").string();
  std::ofstream(token_file) << "tok-12345\n";
  std::vector<std::string> flags = BaseFlags();
  flags.insert(flags.end(), {"--auth-token-file", token_file});
  PkmserveProcess server(flags);
  const int port = server.WaitForPort();
  ASSERT_GT(port, 0) << server.Stderr();
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                     grpc::InsecureChannelCredentials());
  EXPECT_EQ(Tokenize(channel), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Tokenize(channel, "tok-1234"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Tokenize(channel, "tok-12345"), grpc::StatusCode::OK);
  // Health stays open for probes.
  EXPECT_EQ(Health(channel), HealthCheckResponse::SERVING);
}

TEST(PkmserveProcessTest, BadFlagsExitOneNamingTheFlag) {
  TempDir dir;
  const std::string empty = (dir.path() / "empty").string();
  std::ofstream(empty) << "\n";
  const struct {
    std::vector<std::string> flags;
    const char* named;
  } cases[] = {
      {{"--listen", "nonsense"}, "--listen"},
      {{"--listen", "127.0.0.1:99999"}, "--listen"},
      {{"--metrics-listen", ":9464"}, "--metrics-listen"},
      {{"--device", "tpu"}, "--device"},
      {{"--max-batch-tokens", "0"}, "--max-batch-tokens"},
      {{"--max-queue", "-1"}, "--max-queue"},
      {{"--threads", "-2"}, "--threads"},
      {{"--kv-cache-bytes", "12X"}, "--kv-cache-bytes"},
      {{"--kv-cache-bytes", "1K"}, "--kv-cache-bytes"},
      {{"--kv-cache-bytes", "999999999999G"}, "--kv-cache-bytes"},
      {{"--drain-timeout", "-1"}, "--drain-timeout"},
      {{"--auth-token-file", "/nonexistent/token"}, "--auth-token-file"},
      {{"--auth-token-file", empty}, "--auth-token-file"},
      {{"--tls-cert", "/nonexistent.pem"}, "--tls-cert"},
      {{"--tls-cert", empty, "--tls-key", empty}, "--tls-cert"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> flags = {"--model", "models/pkm-small", "--listen", "127.0.0.1:0",
                                      "--metrics-listen", "127.0.0.1:0"};
    flags.insert(flags.end(), c.flags.begin(), c.flags.end());
    PkmserveProcess server(flags);
    EXPECT_EQ(server.Wait(), 1) << c.flags[0] << " " << c.flags[1] << "\n" << server.Stderr();
    EXPECT_NE(server.Stderr().find(c.named), std::string::npos)
        << c.flags[0] << " " << c.flags[1] << ": " << server.Stderr();
  }
}

// --device: auto serves on the CPU with one line saying why when CUDA cannot be used; cuda
// then exits 3 with the same reason. On a GPU machine both run on CUDA.
TEST(PkmserveProcessTest, DeviceChoiceFallsBackOrFailsSayingWhy) {
  auto check = [](const std::string& device) {
    PkmserveProcess server({"--model", "models/pkm-small", "--device", device, "--check"});
    const int code = server.Wait();
    return std::make_pair(code, server.Stderr());
  };
  const auto [auto_code, auto_log] = check("auto");
  ASSERT_EQ(auto_code, 0) << auto_log;
  const auto [cuda_code, cuda_log] = check("cuda");
  if (auto_log.find("engine on cuda") != std::string::npos) {  // a GPU machine
    EXPECT_EQ(cuda_code, 0) << cuda_log;
    EXPECT_NE(cuda_log.find("backend cuda: "), std::string::npos) << cuda_log;
    return;
  }
  EXPECT_NE(auto_log.find("engine on cpu"), std::string::npos) << auto_log;
  const std::string prefix = "WARNING --device=auto: no CUDA (";
  const size_t line = auto_log.find(prefix);
  ASSERT_NE(line, std::string::npos) << auto_log;
  EXPECT_EQ(auto_log.find("--device=auto", line + prefix.size()), std::string::npos) << "one line";
  const size_t start = line + prefix.size();
  const std::string reason =
      auto_log.substr(start, auto_log.find("); serving on the CPU", start) - start);
  EXPECT_EQ(cuda_code, 3) << cuda_log;
  EXPECT_NE(cuda_log.find("--device=cuda: " + reason), std::string::npos)
      << "cuda names the reason auto gave (" << reason << "): " << cuda_log;
}

}  // namespace
}  // namespace pkm
