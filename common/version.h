// The build's identity, printed by `pkmserve --version` and `pkm --version` and exported as the
// pkmserve_build_info metric: the project version, the git commit it was built from and the
// CMake build type. Generated at build time (cmake/version.cmake), so a new commit is seen
// without reconfiguring.
#pragma once

namespace pkm {

const char* ProjectVersion();  // "0.1.0"
const char* GitCommit();       // "6ae5a58" (+ "-dirty" for uncommitted changes), or "unknown"
const char* BuildType();       // "Release", "Debug", ...
// "0.1.0 (commit 6ae5a58, Release build)".
const char* VersionLine();

}  // namespace pkm
