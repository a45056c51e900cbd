#include "common/utf8.h"

#include <cstdio>

namespace pkm {

namespace {

// The character starting at s[i] (i < n), or, when there is none, the maximal subpart of one
// (Unicode 15, section 3.9): the lead byte and the continuation bytes that could still have
// completed it, at least one byte.
struct Scan {
  size_t length;
  bool valid;
};

Scan ScanAt(const unsigned char* s, size_t n, size_t i) {
  const unsigned char c = s[i];
  if (c < 0x80) return {1, true};
  // Lead byte: the sequence length and the allowed range of the second byte (the table of
  // RFC 3629 section 4, which excludes overlong forms, surrogates and > U+10FFFF).
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return {1, false};  // a continuation byte, 0xC0/0xC1 or 0xF5..0xFF cannot start a character
  }
  size_t k = 1;
  for (; k < len && i + k < n; ++k) {
    const unsigned char b = s[i + k];
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
  }
  return {k, k == len};
}

}  // namespace

std::optional<size_t> FirstInvalidUtf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t i = 0; i < text.size();) {
    const Scan scan = ScanAt(s, text.size(), i);
    if (!scan.valid) return i;
    i += scan.length;
  }
  return std::nullopt;
}

std::string ReplaceInvalidUtf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const Scan scan = ScanAt(s, text.size(), i);
    if (scan.valid) {
      out.append(text.substr(i, scan.length));
    } else {
      out += "\xEF\xBF\xBD";
    }
    i += scan.length;
  }
  return out;
}

std::optional<std::string> DescribeInvalidUtf8(std::string_view text, const std::string& what) {
  const std::optional<size_t> bad = FirstInvalidUtf8(text);
  if (!bad) return std::nullopt;
  char byte[8];
  std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(text[*bad]));
  return what + " is not valid UTF-8: byte " + std::to_string(*bad) + " (" + byte + ") of " +
         std::to_string(text.size()) + " does not start a well-formed character";
}

}  // namespace pkm
