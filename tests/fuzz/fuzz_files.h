// Files for the fuzz targets: the loaders under test read paths, so each input is written
// where a path can name it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pkm::fuzz {

// Bytes in an anonymous in-memory file (memfd), named by /proc/self/fd/N while it lives.
class InputFile {
 public:
  InputFile(const uint8_t* data, size_t size);
  explicit InputFile(std::string_view bytes)
      : InputFile(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) {}
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// A directory of this process's own under /dev/shm (else TMPDIR or /tmp), removed at exit;
// Write replaces one file in it.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  void Write(const std::string& name, std::string_view bytes) const;
  void Remove(const std::string& name) const;

 private:
  std::string path_;
};

// The repository's root (PKMSERVE_SOURCE_DIR at build time), for the bundled model's files.
std::string SourcePath(const std::string& relative);

}  // namespace pkm::fuzz
