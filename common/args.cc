#include "common/args.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "common/nearest_name.h"

namespace pkm::cli {
namespace {

const FlagSpec* Find(const std::vector<FlagSpec>& specs, const std::string& name) {
  for (const FlagSpec& s : specs) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

}  // namespace

StatusOr<Args> Args::Parse(const std::vector<std::string>& argv,
                           const std::vector<FlagSpec>& specs) {
  Args args;
  args.specs_ = specs;
  bool only_positional = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (only_positional || a.size() < 2 || a[0] != '-' || a == "-") {
      args.positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    // -h is --help wherever a command has --help, as every CLI user types it.
    std::string name = a == "-h" && Find(specs, "help") != nullptr ? "help" : a.substr(a[1] == '-' ? 2 : 1);
    std::string value;
    bool has_value = false;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const FlagSpec* spec = Find(specs, name);
    if (spec == nullptr) {
      std::vector<std::string> known;
      for (const FlagSpec& s : specs) known.push_back("--" + s.name);
      const std::string nearest = NearestName("--" + name, known);
      return Status(StatusCode::kInvalidArgument,
                    "unknown flag --" + name +
                        (nearest.empty() ? "" : "; did you mean " + nearest + "?") + " (see --help)");
    }
    if (spec->value_name.empty()) {
      if (has_value) {
        return Status(StatusCode::kInvalidArgument, "--" + name + " takes no value");
      }
      value.assign(1, '1');
    } else if (!has_value) {
      if (i + 1 >= argv.size()) {
        return Status(StatusCode::kInvalidArgument,
                      "--" + name + " needs a value (" + spec->value_name + ")");
      }
      value = argv[++i];
    }
    args.values_.emplace_back(name, value);
  }
  return args;
}

bool Args::Has(const std::string& name) const {
  for (const auto& [n, v] : values_) {
    if (n == name) return true;
  }
  return false;
}

std::string Args::Get(const std::string& name) const {
  std::string value;
  bool found = false;
  for (const auto& [n, v] : values_) {
    if (n == name) {
      value = v;  // the last one wins
      found = true;
    }
  }
  if (found) return value;
  const FlagSpec* spec = Find(specs_, name);
  return spec != nullptr ? spec->default_value : "";
}

std::vector<std::string> Args::GetAll(const std::string& name) const {
  std::vector<std::string> all;
  for (const auto& [n, v] : values_) {
    if (n == name) all.push_back(v);
  }
  return all;
}

StatusOr<long> Args::GetInt(const std::string& name, long lo, long hi) const {
  const std::string text = Get(name);
  char* end = nullptr;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || value < lo || value > hi) {
    return Status(StatusCode::kInvalidArgument, "--" + name + " must be an integer in [" +
                                                    std::to_string(lo) + ", " +
                                                    std::to_string(hi) + "], got '" + text + "'");
  }
  return value;
}

StatusOr<double> Args::GetDouble(const std::string& name, double lo, double hi) const {
  const std::string text = Get(name);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value) || value < lo || value > hi) {
    char range[64];
    std::snprintf(range, sizeof range, "[%g, %g]", lo, hi);
    return Status(StatusCode::kInvalidArgument,
                  "--" + name + " must be a number in " + range + ", got '" + text + "'");
  }
  return value;
}

std::string HelpText(const std::string& usage, const std::string& description,
                     const std::vector<FlagSpec>& specs) {
  std::string out = "usage: " + usage + "\n\n" + description + "\n\nflags:\n";
  for (const FlagSpec& s : specs) {
    std::string left = "  --" + s.name + (s.value_name.empty() ? "" : " " + s.value_name);
    if (left.size() < 28) left.resize(28, ' ');
    out += left + " " + s.help;
    if (!s.default_value.empty()) out += " (default " + s.default_value + ")";
    out += "\n";
  }
  return out;
}

}  // namespace pkm::cli
