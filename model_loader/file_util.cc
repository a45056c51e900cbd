#include "model_loader/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pkm::internal_loader {

StatusOr<int> OpenRegularFile(const std::string& path, const std::string& hint) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return NotFoundError(path + ": no such file" + (hint.empty() ? "" : "; " + hint));
    }
    return FailedPreconditionError(path + ": cannot open: " + std::strerror(err));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return FailedPreconditionError(path + ": not a regular file");
  }
  return fd;
}

StatusOr<std::string> ReadFileToString(const std::string& path, const std::string& hint) {
  PKM_ASSIGN_OR_RETURN(const int fd, OpenRegularFile(path, hint));
  std::string contents;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return FailedPreconditionError(path + ": read failed: " + std::strerror(err));
    }
    contents.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return contents;
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

}  // namespace pkm::internal_loader
