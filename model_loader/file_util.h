// Private to model_loader/: opening files with errors that name the path and the reason.
#pragma once

#include <string>

#include "common/status.h"

namespace pkm::internal_loader {

// Opens `path` read-only and checks it is a regular file. Returns the file descriptor (the
// caller closes it), or kNotFound when absent, kFailedPrecondition when unreadable or not a
// regular file. `hint` is appended to the not-found message (how to get the file).
StatusOr<int> OpenRegularFile(const std::string& path, const std::string& hint);

// The whole file, with the errors of OpenRegularFile.
StatusOr<std::string> ReadFileToString(const std::string& path, const std::string& hint);

// "<dir>/<name>", without doubling a trailing slash of `dir`.
std::string JoinPath(const std::string& dir, const std::string& name);

}  // namespace pkm::internal_loader
