// Start-up check that a listen address can be bound, run before the model loads so that a busy
// port fails in a second with the OS's reason instead of after the load (or, for gRPC, not at
// all: its SO_REUSEPORT default lets two servers share a port and split its requests).
#pragma once

#include <string>

#include "common/status.h"

namespace pkm {

// Binds (and releases) "host:port", as a listening server would (SO_REUSEADDR, no
// SO_REUSEPORT). OK for port 0. kUnavailable naming `flag`, the address and the OS's reason
// ("address already in use") otherwise.
Status CheckCanListen(const std::string& address, const char* flag);

}  // namespace pkm
