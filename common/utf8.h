// UTF-8 validation, shared by the server (request fields) and the CLI (prompts and files), so
// both refuse the same bytes and report the same offset.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pkm {

// The byte offset of the first byte that does not start (or continue) a well-formed UTF-8
// character, as RFC 3629 defines it: no overlong forms, no surrogates (U+D800..U+DFFF), nothing
// above U+10FFFF, no truncated sequence at the end. nullopt when the whole text is valid.
std::optional<size_t> FirstInvalidUtf8(std::string_view text);

// `text` with each maximal ill-formed subpart (Unicode 15, 3.9: the bytes of a character
// begun but not completed, or one stray byte) replaced by U+FFFD: a truncated character at the
// end becomes one U+FFFD, which a streaming decoder can hold back until the next bytes come.
std::string ReplaceInvalidUtf8(std::string_view text);

// "WHAT is not valid UTF-8: byte N (0xNN) of SIZE does not start a well-formed character", the
// one wording of the server's and the CLI's refusals; nullopt when the text is valid.
std::optional<std::string> DescribeInvalidUtf8(std::string_view text, const std::string& what);

}  // namespace pkm
