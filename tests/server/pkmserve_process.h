// Runs build/bin/pkmserve as a child process for end-to-end tests: spawns it with flags, reads
// its stderr, finds the bound port in "pkmserve: listening on HOST:PORT", signals it and
// collects its exit code. The destructor kills a child that is still running.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace pkm {

class PkmserveProcess {
 public:
  explicit PkmserveProcess(std::vector<std::string> args) {
    int fds[2];
    if (pipe(fds) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    // A free port for the HTTP API unless the test names one (the last flag wins), so that
    // servers of tests run in parallel never meet on its default port.
    args.insert(args.begin(), {PKMSERVE_BINARY, "--http-listen=127.0.0.1:0"});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, PKMSERVE_BINARY, &actions, nullptr, argv.data(), environ) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    reader_ = std::thread([this, fd = fds[0]] {
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) {
        std::lock_guard<std::mutex> lock(mu_);
        stderr_.append(buf, static_cast<size_t>(n));
        changed_.notify_all();
      }
      close(fd);
      std::lock_guard<std::mutex> lock(mu_);
      eof_ = true;
      changed_.notify_all();
    });
  }

  ~PkmserveProcess() {
    if (pid_ > 0 && exit_code_ == kRunning) {
      kill(pid_, SIGKILL);
      Wait();
    }
    if (reader_.joinable()) reader_.join();
  }

  // The port from the "listening on" line, or 0 if the process exited or took over 60 s.
  int WaitForPort() {
    static const std::regex kListening("listening on [^ \\n]*:([0-9]+)");
    std::unique_lock<std::mutex> lock(mu_);
    std::smatch m;
    changed_.wait_for(lock, std::chrono::seconds(60), [&] {
      return eof_ || std::regex_search(stderr_, m, kListening);
    });
    return std::regex_search(stderr_, m, kListening) ? std::stoi(m[1]) : 0;
  }

  void Signal(int sig) { kill(pid_, sig); }

  // The exit code (128 + signal when killed by one).
  int Wait() {
    if (exit_code_ != kRunning) return exit_code_;
    int status = 0;
    waitpid(pid_, &status, 0);
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_code_;
  }

  std::string Stderr() {
    if (reader_.joinable() && exit_code_ != kRunning) reader_.join();
    std::lock_guard<std::mutex> lock(mu_);
    return stderr_;
  }

 private:
  static constexpr int kRunning = -1000;
  pid_t pid_ = -1;
  int exit_code_ = kRunning;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::string stderr_;
  bool eof_ = false;
};

}  // namespace pkm
