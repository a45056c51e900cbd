// StopMatcher (engine/stop_strings.h): stop strings split across feeds at every position,
// hold-back of partial prefixes that turn out not to match, several stop strings and the
// earliest-end rule, Flush, matches at the very start, overlapping patterns, UTF-8, and a
// randomised comparison of every chunking against a brute-force reference.
#include <gtest/gtest.h>

#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "engine/stop_strings.h"

namespace pkm {
namespace {

struct Outcome {
  std::string text;  // everything emitted, Flush included when not stopped
  bool stopped = false;
  int matched = -1;
  bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  return os << "{\"" << o.text << "\", stopped=" << o.stopped << ", matched=" << o.matched << "}";
}

// The rule, written directly on the whole text: the first end position at which some stop
// string ends; there, the longest one.
Outcome Reference(const std::vector<std::string>& stops, std::string_view text) {
  for (size_t end = 1; end <= text.size(); ++end) {
    int best = -1;
    for (size_t i = 0; i < stops.size(); ++i) {
      const std::string& s = stops[i];
      if (!s.empty() && s.size() <= end && text.substr(end - s.size(), s.size()) == s &&
          (best < 0 || s.size() > stops[best].size())) {
        best = static_cast<int>(i);
      }
    }
    if (best >= 0) return {std::string(text.substr(0, end - stops[best].size())), true, best};
  }
  return {std::string(text), false, -1};
}

// Feeds `chunks` in order, checking after every Feed that what was emitted so far is a prefix
// of `expected.text` (nothing emitted is ever taken back or part of the stop string), and
// that nothing is emitted after the stop.
Outcome FeedAll(const std::vector<std::string>& stops, const std::vector<std::string>& chunks,
                const Outcome& expected) {
  StopMatcher m(stops);
  Outcome out;
  for (const std::string& chunk : chunks) {
    const bool was_stopped = out.stopped;
    StopMatcher::Result r = m.Feed(chunk);
    if (was_stopped) {
      EXPECT_TRUE(r.emit.empty() && r.stopped) << "emitted after the stop";
    }
    out.text += r.emit;
    out.stopped = r.stopped;
    EXPECT_EQ(expected.text.compare(0, out.text.size(), out.text), 0)
        << "emitted \"" << out.text << "\" is not a prefix of \"" << expected.text << "\"";
  }
  if (!out.stopped) out.text += m.Flush();
  out.matched = m.matched_index();
  EXPECT_EQ(m.stopped(), out.stopped);
  return out;
}

std::vector<std::string> Bytes(std::string_view text) {
  std::vector<std::string> chunks;
  for (char c : text) chunks.emplace_back(1, c);
  return chunks;
}

TEST(StopMatcherTest, NoStopStringsEmitsEverythingAtOnce) {
  StopMatcher m;
  StopMatcher::Result r = m.Feed("hello <");
  EXPECT_EQ(r.emit, "hello <");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, StopStringSplitAtEveryPosition) {
  const std::vector<std::string> stops = {"<END>"};
  const std::string text = "Hello world<END>ignored";
  const Outcome expected{"Hello world", true, 0};
  ASSERT_EQ(Reference(stops, text), expected);
  EXPECT_EQ(FeedAll(stops, {text}, expected), expected);
  EXPECT_EQ(FeedAll(stops, Bytes(text), expected), expected);
  for (size_t a = 0; a <= text.size(); ++a) {
    for (size_t b = a; b <= text.size(); ++b) {
      const std::vector<std::string> chunks = {text.substr(0, a), text.substr(a, b - a),
                                               text.substr(b)};
      EXPECT_EQ(FeedAll(stops, chunks, expected), expected) << "split at " << a << ", " << b;
    }
  }
}

TEST(StopMatcherTest, HeldBackPrefixIsEmittedWhenItDoesNotMatch) {
  StopMatcher m({"<END>"});
  StopMatcher::Result r = m.Feed("abc<EN");
  EXPECT_EQ(r.emit, "abc");
  EXPECT_FALSE(r.stopped);
  r = m.Feed("X<");
  EXPECT_EQ(r.emit, "<ENX");  // the final '<' may still start a stop string
  EXPECT_FALSE(r.stopped);
  r = m.Feed("E");
  EXPECT_EQ(r.emit, "");
  r = m.Feed("ND>tail");
  EXPECT_EQ(r.emit, "");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(m.matched_index(), 0);
}

TEST(StopMatcherTest, FlushReturnsTheHeldBackText) {
  StopMatcher m({"</s>"});
  StopMatcher::Result r = m.Feed("the end </");
  EXPECT_EQ(r.emit, "the end ");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(m.Flush(), "</");
  EXPECT_EQ(m.Flush(), "");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.matched_index(), -1);
  // After a Flush the next text is a new stream: "s>" does not complete the old "</".
  r = m.Feed("s>");
  EXPECT_EQ(r.emit, "s>");
  EXPECT_FALSE(r.stopped);
}

TEST(StopMatcherTest, StopStringAtTheVeryStart) {
  const std::vector<std::string> stops = {"STOP"};
  const Outcome expected{"", true, 0};
  EXPECT_EQ(FeedAll(stops, {"STOP and more"}, expected), expected);
  EXPECT_EQ(FeedAll(stops, Bytes("STOP and more"), expected), expected);
  EXPECT_EQ(FeedAll(stops, {"", "ST", "", "OP"}, expected), expected);
}

TEST(StopMatcherTest, AfterTheStopFurtherTextIsIgnored) {
  StopMatcher m({"\n"});
  StopMatcher::Result r = m.Feed("line one\nline two");
  EXPECT_EQ(r.emit, "line one");
  EXPECT_TRUE(r.stopped);
  r = m.Feed("more");
  EXPECT_EQ(r.emit, "");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, OverlappingPatterns) {
  struct Case {
    std::vector<std::string> stops;
    std::string text;
    Outcome expected;
  };
  const std::vector<Case> cases = {
      {{"aab"}, "aaab", {"a", true, 0}},          {{"aab"}, "aaaaaab!", {"aaaa", true, 0}},
      {{"abab"}, "abaabababx", {"aba", true, 0}}, {{"abcabd"}, "abcabcabd", {"abc", true, 0}},
      {{"aa"}, "abab", {"abab", false, -1}},
  };
  for (const Case& c : cases) {
    ASSERT_EQ(Reference(c.stops, c.text), c.expected) << c.text;
    EXPECT_EQ(FeedAll(c.stops, {c.text}, c.expected), c.expected) << c.text;
    EXPECT_EQ(FeedAll(c.stops, Bytes(c.text), c.expected), c.expected) << c.text;
  }
}

TEST(StopMatcherTest, MultipleStopStringsEarliestEndWins) {
  struct Case {
    std::vector<std::string> stops;
    std::string text;
    Outcome expected;
  };
  const std::vector<Case> cases = {
      {{"\n\n", "User:"}, "Hi there\nUser: hello\n\n", {"Hi there\n", true, 1}},
      {{"\n\n", "User:"}, "Hi\n\nUser:", {"Hi", true, 0}},
      // "bc" completes before "abcd" could, so it wins although "abcd" starts earlier.
      {{"abcd", "bc"}, "xabcd", {"xa", true, 1}},
      // Both end at the same byte: the longer one, so none of it is emitted.
      {{"b", "ab"}, "xab", {"x", true, 1}},
      {{"ab", "b"}, "xab", {"x", true, 0}},
      {{"cat", "dog"}, "hot do", {"hot do", false, -1}},
  };
  for (const Case& c : cases) {
    ASSERT_EQ(Reference(c.stops, c.text), c.expected) << c.text;
    EXPECT_EQ(FeedAll(c.stops, {c.text}, c.expected), c.expected) << c.text;
    EXPECT_EQ(FeedAll(c.stops, Bytes(c.text), c.expected), c.expected) << c.text;
  }
}

TEST(StopMatcherTest, Utf8IsMatchedBytewiseAndNeverSplitByHoldBack) {
  StopMatcher m({"\xC3\xA9"});              // "é"
  StopMatcher::Result r = m.Feed("x\xC3");  // the first byte of "ä" or "é"
  EXPECT_EQ(r.emit, "x");
  r = m.Feed("\xA4 \xE2\x86\x92 ");  // "ä → "
  EXPECT_EQ(r.emit, "\xC3\xA4 \xE2\x86\x92 ");
  r = m.Feed("caf\xC3\xA9!");
  EXPECT_EQ(r.emit, "caf");
  EXPECT_TRUE(r.stopped);
}

TEST(StopMatcherTest, ValidateRejectsEmptyStopStrings) {
  EXPECT_EQ(StopMatcher::Validate({}), "");
  EXPECT_EQ(StopMatcher::Validate({"a", "\n\n"}), "");
  const std::string msg = StopMatcher::Validate({"a", ""});
  EXPECT_NE(msg.find("stop string 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
  // The constructor ignores empty entries instead of stopping everywhere; indices still refer
  // to the caller's list.
  StopMatcher m({"", "z"});
  StopMatcher::Result r = m.Feed("abz");
  EXPECT_EQ(r.emit, "ab");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(m.matched_index(), 1);
}

// Every property at once: random texts over a small alphabet (so prefixes and overlaps are
// common), random stop sets and random chunkings, against the brute-force reference.
TEST(StopMatcherTest, RandomChunkingsMatchReference) {
  std::mt19937 rng(12345);
  auto random_string = [&](size_t min_len, size_t max_len) {
    std::string s(std::uniform_int_distribution<size_t>(min_len, max_len)(rng), 'a');
    for (char& c : s) c = static_cast<char>('a' + std::uniform_int_distribution<int>(0, 2)(rng));
    return s;
  };
  int stopped = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<std::string> stops(std::uniform_int_distribution<int>(1, 3)(rng));
    for (std::string& s : stops) s = random_string(1, 5);
    const std::string text = random_string(0, 30);
    const Outcome expected = Reference(stops, text);
    stopped += expected.stopped;
    std::vector<std::string> chunks;
    for (size_t pos = 0; pos < text.size();) {
      const size_t len = std::uniform_int_distribution<size_t>(0, 6)(rng);
      chunks.push_back(text.substr(pos, len));
      pos += len;
    }
    ASSERT_EQ(FeedAll(stops, chunks, expected), expected)
        << "trial " << trial << " text " << text << " stops[0] " << stops[0];
  }
  EXPECT_GT(stopped, 500);  // both outcomes are well represented
  EXPECT_LT(stopped, 2900);
}

}  // namespace
}  // namespace pkm
