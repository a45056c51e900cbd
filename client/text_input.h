// Where pkm's text comes from: a command-line argument, `-` (stdin) or a file. Text that is not
// UTF-8 is refused here, naming its source and the first bad byte, before anything is sent (the
// server would refuse it too, but could only name the request field).
#pragma once

#include <string>

#include "common/args.h"
#include "common/status.h"

namespace pkm::cli {

// The contents of `path` ("-": stdin), checked to be UTF-8. kInvalidArgument names the file
// ("notes.txt is not valid UTF-8: byte 12 (0xff) of 40 ...") or "stdin".
StatusOr<std::string> ReadTextFile(const std::string& path);

// A command's one text: --file FILE, or its one positional argument ("-": stdin). Refuses
// both, neither, or more than one, with `usage`.
StatusOr<std::string> ReadTextArgument(const Args& args, const std::string& usage);

}  // namespace pkm::cli
