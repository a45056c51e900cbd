// pkm score: perplexity of files under the served model (client/perplexity.h).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "client/commands.h"
#include "client/connection.h"
#include "client/perplexity.h"
#include "client/text_input.h"
#include "pkmserve/v1/inference.grpc.pb.h"

namespace pkm::cli {
namespace {

namespace v1 = pkmserve::v1;

std::vector<FlagSpec> ScoreFlags() {
  return {
      {"mode", "chunks|stride", "chunks: llama-perplexity; stride: Hugging Face sliding window",
       "stride"},
      {"ctx", "N", "tokens per window (default: the model's max_seq_len)", ""},
      {"stride", "N", "stride mode: tokens between window starts (default: ctx / 2)", ""},
      {"parallel", "N", "Score requests in flight", "4"},
      {"memory-knn", "K", "read K slots per memory head (below the trained knn; 0: as trained)",
       "0"},
      {"memory-heads", "H", "read the first H memory heads (0: as trained)", "0"},
      {"json", "", "print one JSON object per file", ""},
      {"per-token", "FILE", "write each scored token, its piece and logprob as TSV (- for stdout)",
       ""},
  };
}

// A progress line on stderr, redrawn in place; only when stderr is a terminal.
class Progress {
 public:
  Progress(std::string label, long total)
      : label_(std::move(label)), total_(total), on_(isatty(STDERR_FILENO) != 0),
        start_(std::chrono::steady_clock::now()) {}
  void Add(long n) {
    if (!on_) return;
    std::lock_guard<std::mutex> lock(mu_);
    done_ += n;
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = s > 0 ? static_cast<double>(done_) / s : 0;
    const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : 0;
    const int width = 30;
    const int filled = total_ > 0 ? static_cast<int>(width * done_ / total_) : width;
    std::fprintf(stderr, "\r%s [%s%s] %3ld%% %.0f tok/s ETA %.0fs ", label_.c_str(),
                 std::string(static_cast<size_t>(filled), '=').c_str(),
                 std::string(static_cast<size_t>(width - filled), ' ').c_str(),
                 total_ > 0 ? 100 * done_ / total_ : 100, rate, eta);
  }
  ~Progress() {
    if (on_) std::fprintf(stderr, "\r%*s\r", 80, "");
  }

 private:
  std::string label_;
  long total_;
  long done_ = 0;
  bool on_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
};

struct FileScore {
  std::vector<int32_t> ids;         // scored tokens
  std::vector<std::string> pieces;
  std::vector<float> logprobs;
  double seconds = 0;
  int windows = 0;
};

// Sends the plan's windows, `parallel` at a time; each window asks for its last `take` scores
// only (score_from), so the server scores and counts each token once.
StatusOr<FileScore> ScoreWindows(const Connection& conn, const std::vector<int32_t>& tokens,
                                 const std::vector<ScoreWindowRequest>& plan, int parallel,
                                 bool want_pieces, const v1::ScoreRequest& memory_reads,
                                 Progress* progress, grpc::Status* rpc_error) {
  auto stub = v1::Inference::NewStub(conn.channel());
  std::vector<std::vector<v1::ScoredToken>> kept(plan.size());
  std::atomic<size_t> next{0};
  std::mutex error_mu;
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < parallel; ++w) {
    workers.emplace_back([&] {
      for (size_t i = next++; i < plan.size(); i = next++) {
        const ScoreWindowRequest& p = plan[i];
        v1::ScoreRequest req = memory_reads;
        for (int t = p.begin; t < p.end; ++t) {
          req.mutable_tokens()->add_ids(t == p.begin && p.first_token >= 0 ? p.first_token
                                                                            : tokens[t]);
        }
        req.set_score_from(static_cast<uint32_t>(p.end - p.begin - p.take));
        v1::ScoreResponse resp;
        grpc::ClientContext ctx;
        conn.Prepare(&ctx);
        const grpc::Status st = stub->Score(&ctx, req, &resp);
        if (!st.ok()) {
          std::lock_guard<std::mutex> lock(error_mu);
          if (rpc_error->ok()) *rpc_error = st;
          next = plan.size();
          return;
        }
        if (resp.tokens_size() != p.take) {
          std::lock_guard<std::mutex> lock(error_mu);
          if (rpc_error->ok()) {
            *rpc_error = grpc::Status(grpc::StatusCode::INTERNAL,
                                      "the server scored " + std::to_string(resp.tokens_size()) +
                                          " tokens of a window, not the " +
                                          std::to_string(p.take) + " asked for (score_from)");
          }
          next = plan.size();
          return;
        }
        kept[i].assign(resp.tokens().begin(), resp.tokens().end());
        progress->Add(p.end - p.begin);
      }
    });
  }
  for (auto& t : workers) t.join();
  if (!rpc_error->ok()) return Status(StatusCode::kUnavailable, "rpc failed");
  FileScore out;
  out.windows = static_cast<int>(plan.size());
  for (const auto& window : kept) {
    for (const v1::ScoredToken& t : window) {
      out.ids.push_back(t.id());
      if (want_pieces) out.pieces.push_back(t.piece());
      out.logprobs.push_back(t.logprob());
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace

int ScoreCommand(const std::vector<std::string>& argv) {
  const std::string usage = "pkm score [flags] FILE... (- for stdin)";
  int code = 0;
  auto args = ParseOrHelp(
      argv, usage,
      "Perplexity of each file under the served model. Prints PPL = X +/- Y (the standard error\n"
      "of the mean NLL, carried to the perplexity) and the token count.",
      ScoreFlags(), &code);
  if (!args) return code;
  if (args->positional().empty()) {
    return ReportUsageError(Status(StatusCode::kInvalidArgument, "usage: " + usage));
  }
  const std::string mode = args->Get("mode");
  if (mode != "chunks" && mode != "stride") {
    return ReportUsageError(Status(StatusCode::kInvalidArgument,
                                   "--mode must be chunks or stride, got '" + mode + "'"));
  }
  auto parallel = args->GetInt("parallel", 1, 256);
  if (!parallel.ok()) return ReportUsageError(parallel.status());
  auto memory_knn = args->GetInt("memory-knn", 0, 1 << 20);
  if (!memory_knn.ok()) return ReportUsageError(memory_knn.status());
  auto memory_heads = args->GetInt("memory-heads", 0, 1 << 20);
  if (!memory_heads.ok()) return ReportUsageError(memory_heads.status());
  v1::ScoreRequest memory_reads;  // the fields every window's request starts from
  memory_reads.set_memory_knn(static_cast<uint32_t>(*memory_knn));
  memory_reads.set_memory_heads(static_cast<uint32_t>(*memory_heads));
  auto conn = Connection::FromArgs(*args);
  if (!conn.ok()) return ReportUsageError(conn.status());
  auto stub = v1::Inference::NewStub(conn->channel());

  v1::ModelInfo info;
  if (grpc::Status st = FetchModelInfo(*conn, &info); !st.ok()) return ReportRpcError(st);
  long ctx_tokens = info.max_seq_len();
  if (args->Has("ctx")) {
    auto c = args->GetInt("ctx", mode == "chunks" ? 4 : 2, info.max_seq_len());
    if (!c.ok()) return ReportUsageError(c.status());
    ctx_tokens = *c;
  }
  long stride = ctx_tokens / 2;
  if (args->Has("stride")) {
    if (mode != "stride") {
      return ReportUsageError(Status(StatusCode::kInvalidArgument, "--stride needs --mode stride"));
    }
    auto s = args->GetInt("stride", 1, ctx_tokens - 1);
    if (!s.ok()) return ReportUsageError(s.status());
    stride = *s;
  }

  std::unique_ptr<std::ostream> tsv_file;
  std::ostream* tsv = nullptr;
  if (args->Has("per-token")) {
    if (args->Get("per-token") == "-") {
      tsv = &std::cout;
    } else {
      tsv_file = std::make_unique<std::ofstream>(args->Get("per-token"));
      if (!*tsv_file) {
        return ReportUsageError(Status(StatusCode::kInvalidArgument,
                                       "--per-token: cannot write " + args->Get("per-token")));
      }
      tsv = tsv_file.get();
    }
    *tsv << "file\tindex\tid\tpiece\tlogprob\n";
  }

  for (const std::string& path : args->positional()) {
    auto text = ReadTextFile(path);
    if (!text.ok()) return ReportUsageError(text.status());
    v1::TokenizeRequest treq;
    treq.set_text(*text);
    v1::TokenizeResponse tokens;
    {
      grpc::ClientContext ctx;
      conn->Prepare(&ctx);
      const grpc::Status st = stub->Tokenize(&ctx, treq, &tokens);
      if (!st.ok()) return ReportRpcError(st);
    }
    const std::vector<int32_t> ids(tokens.ids().begin(), tokens.ids().end());
    const int n = static_cast<int>(ids.size());
    const std::vector<ScoreWindowRequest> plan =
        mode == "chunks" ? PlanChunks(n, static_cast<int>(ctx_tokens), info.bos_id())
                         : PlanStride(n, static_cast<int>(ctx_tokens), static_cast<int>(stride));
    if (plan.empty()) {
      std::fprintf(stderr, "pkm: %s: %d tokens is too short for --mode %s with --ctx %ld\n",
                   path.c_str(), n, mode.c_str(), ctx_tokens);
      return kExitUsage;
    }
    long total = 0;
    for (const auto& p : plan) total += p.end - p.begin;
    grpc::Status rpc_error;
    StatusOr<FileScore> scored = [&] {
      Progress progress(path, total);
      return ScoreWindows(*conn, ids, plan, static_cast<int>(*parallel), tsv != nullptr,
                          memory_reads, &progress, &rpc_error);
    }();
    if (!scored.ok()) {
      return ReportRpcError(rpc_error, {{"context", "--ctx"}, {"stride", "--stride"},
                                        {"memory_knn", "--memory-knn"},
                                        {"memory_heads", "--memory-heads"}});
    }
    const PerplexityStats stats = Summarize(scored->logprobs);
    if (tsv != nullptr) {
      for (size_t i = 0; i < scored->ids.size(); ++i) {
        *tsv << path << '\t' << i << '\t' << scored->ids[i] << '\t' << scored->pieces[i] << '\t'
             << scored->logprobs[i] << '\n';
      }
    }
    if (args->Has("json")) {
      nlohmann::json j = {{"file", path},
                          {"mode", mode},
                          {"ctx", ctx_tokens},
                          {"tokens", n},
                          {"scored_tokens", stats.count},
                          {"windows", scored->windows},
                          {"mean_nll", stats.mean_nll},
                          {"mean_nll_error", stats.mean_nll_error},
                          {"perplexity", stats.perplexity},
                          {"perplexity_error", stats.perplexity_error},
                          {"seconds", scored->seconds}};
      if (mode == "stride") j["stride"] = stride;
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s: PPL = %.4f +/- %.4f (%ld tokens scored of %d, %s mode, ctx %ld%s, %.1f "
                  "tok/s)\n",
                  path.c_str(), stats.perplexity, stats.perplexity_error, stats.count, n,
                  mode.c_str(), ctx_tokens,
                  mode == "stride" ? (", stride " + std::to_string(stride)).c_str() : "",
                  static_cast<double>(total) / scored->seconds);
    }
  }
  return kExitOk;
}

}  // namespace pkm::cli
