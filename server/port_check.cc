#include "server/port_check.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

namespace pkm {

Status CheckCanListen(const std::string& address, const char* flag) {
  const size_t colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (port == "0") return OkStatus();
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) {
    return Status(StatusCode::kInvalidArgument, std::string(flag) + ": cannot resolve '" +
                                                    host + "': " + gai_strerror(rc));
  }
  Status result = OkStatus();
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const int bound = bind(fd, a->ai_addr, a->ai_addrlen);
    const int error = errno;
    close(fd);
    if (bound != 0) {
      std::string reason = std::strerror(error);
      for (char& c : reason) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string hint = error == EADDRINUSE
                             ? "; another process (another pkmserve?) listens there: stop it "
                               "or choose another port"
                             : "";
      result = Status(StatusCode::kUnavailable,
                      std::string(flag) + ": cannot listen on " + address + ": " + reason + hint);
      break;
    }
  }
  freeaddrinfo(found);
  return result;
}

}  // namespace pkm
