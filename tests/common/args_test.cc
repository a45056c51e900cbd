// The command-line parser shared by pkm and the benchmarks: values, defaults, repeats,
// positionals and the errors that name the flag.
#include "common/args.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pkm::cli {
namespace {

TEST(Args, FlagsValuesAndErrors) {
  const std::vector<FlagSpec> specs = {{"ctx", "N", "", "512"}, {"json", "", "", ""},
                                       {"stop", "TEXT", "", ""}};
  auto a = Args::Parse({"--ctx=64", "file", "--json", "--stop", "x", "--stop", "y", "-"}, specs);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(*a->GetInt("ctx", 2, 256), 64);
  EXPECT_TRUE(a->Has("json"));
  EXPECT_EQ(a->GetAll("stop"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(a->positional(), (std::vector<std::string>{"file", "-"}));
  auto defaults = Args::Parse({}, specs);
  EXPECT_EQ(defaults->Get("ctx"), "512");
  EXPECT_FALSE(defaults->GetInt("ctx", 2, 256).ok());  // out of range names the flag
  EXPECT_NE(defaults->GetInt("ctx", 2, 256).status().message().find("--ctx"), std::string::npos);
  EXPECT_FALSE(Args::Parse({"--nope"}, specs).ok());
  EXPECT_FALSE(Args::Parse({"--ctx"}, specs).ok());
  EXPECT_FALSE(Args::Parse({"--json=1"}, specs).ok());
}

TEST(Args, UnknownFlagSuggestsTheNearestName) {
  const std::vector<FlagSpec> specs = {{"max-tokens", "N", "", "0"}, {"json", "", "", ""}};
  const Status s = Args::Parse({"--max-token", "5"}, specs).status();
  EXPECT_EQ(s.message(), "unknown flag --max-token; did you mean --max-tokens? (see --help)");
  EXPECT_EQ(Args::Parse({"--listen"}, specs).status().message(),
            "unknown flag --listen (see --help)");
}

TEST(Args, DashHIsHelpWhereTheCommandHasHelp) {
  const std::vector<FlagSpec> with_help = {{"help", "", "", ""}};
  auto a = Args::Parse({"-h"}, with_help);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(a->Has("help"));
  EXPECT_FALSE(Args::Parse({"-h"}, {{"json", "", "", ""}}).ok());
}

TEST(HelpText, ListsEachFlagWithItsValueAndDefault) {
  const std::vector<FlagSpec> specs = {{"ctx", "N", "context tokens", "512"},
                                       {"json", "", "as JSON", ""}};
  const std::string help = HelpText("tool [flags]", "Does a thing.", specs);
  EXPECT_EQ(help.rfind("usage: tool [flags]\n\nDoes a thing.\n", 0), 0u) << help;
  EXPECT_NE(help.find("--ctx N"), std::string::npos) << help;
  EXPECT_NE(help.find("context tokens (default 512)"), std::string::npos) << help;
  EXPECT_NE(help.find("--json"), std::string::npos) << help;
}

}  // namespace
}  // namespace pkm::cli
