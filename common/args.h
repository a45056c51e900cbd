// A small command-line parser for pkm's subcommands and the benchmarks: --name value,
// --name=value, boolean --name, positional arguments ("-" is positional) and -h for --help. Each command
// declares its flags, so errors and --help are specific to it. Standard library only, so the
// benchmarks use it where gRPC and Abseil are absent.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace pkm::cli {

struct FlagSpec {
  std::string name;           // without dashes
  std::string value_name;     // empty: a boolean flag
  std::string help;
  std::string default_value;  // shown in help; returned by Get when unset
};

class Args {
 public:
  // kInvalidArgument for an unknown flag or a missing value, naming it.
  static StatusOr<Args> Parse(const std::vector<std::string>& argv,
                              const std::vector<FlagSpec>& specs);

  bool Has(const std::string& name) const;
  std::string Get(const std::string& name) const;
  // The value as a number in [lo, hi], or kInvalidArgument naming the flag and the range.
  StatusOr<long> GetInt(const std::string& name, long lo, long hi) const;
  StatusOr<double> GetDouble(const std::string& name, double lo, double hi) const;
  const std::vector<std::string>& positional() const { return positional_; }
  // Every value of a repeatable flag, in order.
  std::vector<std::string> GetAll(const std::string& name) const;

 private:
  std::vector<FlagSpec> specs_;
  std::vector<std::pair<std::string, std::string>> values_;
  std::vector<std::string> positional_;
};

// "usage: ...", the description, then one line per flag.
std::string HelpText(const std::string& usage, const std::string& description,
                     const std::vector<FlagSpec>& specs);

}  // namespace pkm::cli
