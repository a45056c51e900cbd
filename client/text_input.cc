#include "client/text_input.h"

#include <fstream>
#include <iostream>
#include <sstream>

#include "common/utf8.h"

namespace pkm::cli {
namespace {

Status CheckUtf8(const std::string& text, const std::string& source) {
  if (std::optional<std::string> bad = DescribeInvalidUtf8(text, source)) {
    return Status(StatusCode::kInvalidArgument,
                  *bad + " (pkm sends text as UTF-8: convert it first, e.g. iconv -t UTF-8)");
  }
  return Status();
}

}  // namespace

StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ostringstream text;
  if (path == "-") {
    text << std::cin.rdbuf();
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status(StatusCode::kInvalidArgument, "cannot read " + path);
    text << in.rdbuf();
  }
  PKM_RETURN_IF_ERROR(CheckUtf8(text.str(), path == "-" ? "stdin" : path));
  return text.str();
}

StatusOr<std::string> ReadTextArgument(const Args& args, const std::string& usage) {
  const size_t given = args.positional().size();
  if (args.Has("file")) {
    if (given != 0) {
      return Status(StatusCode::kInvalidArgument,
                    "give the text as an argument or with --file, not both (usage: " + usage + ")");
    }
    return ReadTextFile(args.Get("file"));
  }
  if (given != 1) {
    return Status(StatusCode::kInvalidArgument,
                  (given == 0 ? std::string("no text given") : "one text argument expected, got " +
                                                                   std::to_string(given)) +
                      " (usage: " + usage + "; quote a text with spaces, - reads stdin)");
  }
  const std::string& text = args.positional()[0];
  if (text == "-") return ReadTextFile("-");
  PKM_RETURN_IF_ERROR(CheckUtf8(text, "the text argument"));
  return text;
}

}  // namespace pkm::cli
