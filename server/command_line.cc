#include "server/command_line.h"

#include <absl/flags/commandlineflag.h>
#include <absl/flags/reflection.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>

#include "common/nearest_name.h"

namespace pkm {
namespace {

Status Invalid(const std::string& message) {
  return Status(StatusCode::kInvalidArgument, message);
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string Dashed(std::string name) {
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

// Abseil's string_view is its own type in the Debian build, not std::string_view.
std::string NameOf(const absl::CommandLineFlag* flag) { return std::string(flag->Name()); }

// pkmserve's flags, sorted by name.
std::vector<absl::CommandLineFlag*> OwnFlags(const std::string& defined_in) {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (EndsWith(std::string(flag->Filename()), defined_in)) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return NameOf(a) < NameOf(b); });
  return flags;
}

const char* ValueName(const absl::CommandLineFlag& flag) {
  if (flag.IsOfType<bool>()) return "";
  if (flag.IsOfType<int>()) return "=N";
  if (flag.IsOfType<double>()) return "=X";
  return "=VALUE";
}

Status SetFlag(absl::CommandLineFlag* flag, const std::string& value, const std::string& source) {
  std::string error;
  if (!flag->ParseFrom(value, &error)) {
    const char* expected = flag->IsOfType<bool>()   ? "true or false"
                           : flag->IsOfType<int>()  ? "an integer"
                           : flag->IsOfType<double>() ? "a number"
                                                      : "a value";
    return Invalid(source + ": '" + value + "' is not " + expected);
  }
  return OkStatus();
}

}  // namespace

std::string EnvVarName(const std::string& flag_name) {
  std::string env = "PKMSERVE_";
  for (char c : flag_name) {
    env += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return env;
}

StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& argv,
                                       const std::string& defined_in,
                                       const char* (*env)(const char*)) {
  const std::vector<absl::CommandLineFlag*> flags = OwnFlags(defined_in);
  std::vector<std::string> known = {"help", "version"};
  for (const auto* flag : flags) known.push_back(Dashed(NameOf(flag)));
  auto find = [&flags](const std::string& name) -> absl::CommandLineFlag* {
    for (auto* flag : flags) {
      if (NameOf(flag) == name) return flag;
    }
    return nullptr;
  };

  CommandLine result;
  std::set<std::string>& given = result.given;
  bool flags_ended = false;
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (flags_ended || arg.size() < 2 || arg[0] != '-') {
      result.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_ended = true;
      continue;
    }
    if (arg == "-h" || arg == "--help" || arg == "--helpfull") {
      result.action = CommandLine::Action::kHelp;
      continue;
    }
    if (arg == "--version") {
      result.action = CommandLine::Action::kVersion;
      continue;
    }
    const size_t start = arg.compare(0, 2, "--") == 0 ? 2 : 1;
    const size_t eq = arg.find('=');
    std::string name = arg.substr(start, eq == std::string::npos ? std::string::npos : eq - start);
    std::replace(name.begin(), name.end(), '-', '_');
    absl::CommandLineFlag* flag = find(name);
    if (flag == nullptr || start == 1) {
      const std::string shown = arg.substr(0, eq);
      const std::string nearest = NearestName(Dashed(name), known);
      return Invalid("unknown flag " + shown +
                     (nearest.empty() ? "" : "; did you mean --" + nearest + "?") +
                     " (pkmserve --help lists every flag)");
    }
    const std::string dashed = "--" + Dashed(name);
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (flag->IsOfType<bool>()) {
      value = "true";
    } else if (i + 1 < argv.size()) {
      value = argv[++i];
    } else {
      return Invalid(dashed + " needs a value (" + dashed + "=VALUE or " + dashed + " VALUE)");
    }
    PKM_RETURN_IF_ERROR(SetFlag(flag, value, dashed));
    given.insert(name);
  }
  for (auto* flag : flags) {
    if (given.count(NameOf(flag)) != 0 || env == nullptr) continue;
    const std::string var = EnvVarName(NameOf(flag));
    const char* value = env(var.c_str());
    if (value != nullptr) {
      PKM_RETURN_IF_ERROR(SetFlag(flag, value, var + " (--" + Dashed(NameOf(flag)) + ")"));
      given.insert(NameOf(flag));
      result.from_env.insert(NameOf(flag));
    }
  }
  return result;
}

std::string CommandLineHelp(const std::string& usage, const std::string& about,
                            const std::string& defined_in) {
  std::ostringstream out;
  out << usage << "\n\n" << about << "\n\nflags (each also read from its environment variable; "
      << "the command line wins):\n";
  auto wrap = [&out](const std::string& text) {
    // Help texts wrapped at 72 columns under a 6-space indent.
    std::istringstream words(text);
    std::string word, line;
    while (words >> word) {
      if (!line.empty() && line.size() + 1 + word.size() > 72) {
        out << "      " << line << "\n";
        line.clear();
      }
      line += (line.empty() ? "" : " ") + word;
    }
    if (!line.empty()) out << "      " << line << "\n";
  };
  for (const auto* flag : OwnFlags(defined_in)) {
    out << "  --" << Dashed(NameOf(flag)) << ValueName(*flag) << "\n";
    wrap(std::string(flag->Help()));
    const std::string def(flag->DefaultValue());
    out << "      default: " << (def.empty() ? "\"\"" : def) << "   env: " << EnvVarName(NameOf(flag))
        << "\n";
  }
  out << "  -h, --help\n      this text\n  --version\n      the version and the git commit it "
         "was built from\n";
  return out.str();
}

}  // namespace pkm
