#include "common/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace pkm {
namespace {

TEST(Utf8, AcceptsWellFormedText) {
  EXPECT_EQ(FirstInvalidUtf8(""), std::nullopt);
  EXPECT_EQ(FirstInvalidUtf8("plain ascii\n"), std::nullopt);
  EXPECT_EQ(FirstInvalidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), std::nullopt);
  EXPECT_EQ(FirstInvalidUtf8("\xF4\x8F\xBF\xBF"), std::nullopt);  // U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8(std::string("a\0b", 3)), std::nullopt);
}

TEST(Utf8, ReportsTheOffsetOfTheFirstBadByte) {
  EXPECT_EQ(FirstInvalidUtf8("abc\xFF"), 3u);
  EXPECT_EQ(FirstInvalidUtf8("ab\x80"), 2u);            // a lone continuation byte
  EXPECT_EQ(FirstInvalidUtf8("x\xC3"), 1u);             // truncated at the end
  EXPECT_EQ(FirstInvalidUtf8("x\xE2\x82y"), 1u);        // truncated in the middle
  EXPECT_EQ(FirstInvalidUtf8("\xC0\xAF"), 0u);          // overlong '/'
  EXPECT_EQ(FirstInvalidUtf8("ok\xE0\x80\xAF"), 2u);    // overlong 3-byte form
  EXPECT_EQ(FirstInvalidUtf8("\xED\xA0\x80"), 0u);      // a surrogate, U+D800
  EXPECT_EQ(FirstInvalidUtf8("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8("\xC3\xA9\xC3\xA9\xF5"), 4u);
}

TEST(Utf8, ReplacesEachMaximalIllFormedSubpartWithOneReplacementCharacter) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(ReplaceInvalidUtf8("caf\xC3\xA9"), "caf\xC3\xA9");      // valid: unchanged
  EXPECT_EQ(ReplaceInvalidUtf8("a\xE2\x82"), "a" + r);              // truncated at the end: one
  EXPECT_EQ(ReplaceInvalidUtf8("\xE2\x82x"), r + "x");              // truncated in the middle
  EXPECT_EQ(ReplaceInvalidUtf8("\x80\x80"), r + r);                 // stray continuations: each
  EXPECT_EQ(ReplaceInvalidUtf8("\xF0\x9F\x90\x8B"), "\xF0\x9F\x90\x8B");  // U+1F40B
  EXPECT_EQ(ReplaceInvalidUtf8("\xED\xA0\x80"), r + r + r);         // a surrogate: E0-9F range fails
  EXPECT_EQ(FirstInvalidUtf8(ReplaceInvalidUtf8("\xFF\xC3(\xE2\x82")), std::nullopt);
}

TEST(Utf8, DescribesTheBadByteInOneWording) {
  EXPECT_EQ(DescribeInvalidUtf8("ab\xFFz", "stdin"),
            "stdin is not valid UTF-8: byte 2 (0xff) of 4 does not start a well-formed character");
  EXPECT_EQ(DescribeInvalidUtf8("caf\xC3\xA9", "text"), std::nullopt);
}

}  // namespace
}  // namespace pkm
