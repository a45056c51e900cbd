#include "tests/fuzz/fuzz_files.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace pkm::fuzz {

InputFile::InputFile(const uint8_t* data, size_t size) {
  fd_ = memfd_create("fuzz-input", MFD_CLOEXEC);
  if (fd_ < 0) {
    std::perror("memfd_create");
    std::abort();
  }
  for (size_t done = 0; done < size;) {
    const ssize_t n = ::write(fd_, data + done, size - done);
    if (n <= 0) {
      std::perror("write");
      std::abort();
    }
    done += static_cast<size_t>(n);
  }
  path_ = "/proc/self/fd/" + std::to_string(fd_);
}

InputFile::~InputFile() { ::close(fd_); }

ScratchDir::ScratchDir() {
  std::string base = "/dev/shm";
  if (!std::filesystem::is_directory(base)) {
    const char* tmp = std::getenv("TMPDIR");
    base = tmp != nullptr ? tmp : "/tmp";
  }
  std::string pattern = base + "/pkm-fuzz-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void ScratchDir::Write(const std::string& name, std::string_view bytes) const {
  // A new file each time (rename over the old): a mapping of the old one stays intact.
  const std::string target = path_ + "/" + name;
  const std::string staging = target + ".new";
  {
    std::ofstream out(staging, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) std::abort();
  }
  std::filesystem::rename(staging, target);
}

void ScratchDir::Remove(const std::string& name) const {
  std::error_code ec;
  std::filesystem::remove(path_ + "/" + name, ec);
}

std::string SourcePath(const std::string& relative) {
  return std::string(PKMSERVE_SOURCE_DIR) + "/" + relative;
}

}  // namespace pkm::fuzz
