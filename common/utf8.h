// UTF-8 validation, shared by the server (request fields) and the CLI (prompts and files), so
// both refuse the same bytes and report the same offset.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace pkm {

// The byte offset of the first byte that does not start (or continue) a well-formed UTF-8
// character, as RFC 3629 defines it: no overlong forms, no surrogates (U+D800..U+DFFF), nothing
// above U+10FFFF, no truncated sequence at the end. nullopt when the whole text is valid.
std::optional<size_t> FirstInvalidUtf8(std::string_view text);

}  // namespace pkm
