#include "server/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace pkm {
namespace {

LogOptions g_options;
std::mutex g_write_mu;

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
  }
  return "info";
}

std::string Timestamp(long long unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(unix_ms % 1000));
  return buf;
}

std::string TextValue(const nlohmann::ordered_json& value) {
  if (!value.is_string()) return value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  const std::string& s = value.get_ref<const std::string&>();
  if (!s.empty() && s.find_first_of(" \"=\n") == std::string::npos) return s;
  return value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);  // quoted
}

}  // namespace

std::optional<LogLevel> ParseLogLevel(std::string_view name) {
  if (name == "info") return LogLevel::kInfo;
  if (name == "warning" || name == "warn") return LogLevel::kWarning;
  if (name == "error") return LogLevel::kError;
  return std::nullopt;
}

void ConfigureLog(const LogOptions& options) { g_options = options; }

std::string FormatLogLine(const LogOptions& options, long long unix_ms, LogLevel level,
                          std::string_view message, const nlohmann::ordered_json& fields) {
  if (options.format == "json") {
    nlohmann::ordered_json line = {{"ts", Timestamp(unix_ms)},
                           {"level", LevelName(level)},
                           {"msg", std::string(message)}};
    if (fields.is_object()) {
      for (const auto& [key, value] : fields.items()) line[key] = value;
    }
    // Invalid UTF-8 in a message (a path, a peer's words) is replaced rather than thrown on.
    return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  }
  std::string level_name = LevelName(level);
  for (char& c : level_name) c = static_cast<char>(c - 'a' + 'A');
  std::string line = Timestamp(unix_ms) + " " + level_name + " " + std::string(message);
  if (fields.is_object()) {
    for (const auto& [key, value] : fields.items()) line += " " + key + "=" + TextValue(value);
  }
  return line;
}

void Log(LogLevel level, std::string_view message, const nlohmann::ordered_json& fields) {
  if (level < g_options.level) return;
  const long long now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  const std::string line = FormatLogLine(g_options, now_ms, level, message, fields) + "\n";
  std::lock_guard<std::mutex> lock(g_write_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace pkm
