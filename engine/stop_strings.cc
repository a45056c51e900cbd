#include "engine/stop_strings.h"

#include <algorithm>
#include <utility>

namespace pkm {

std::string StopMatcher::Validate(const std::vector<std::string>& stops) {
  for (size_t i = 0; i < stops.size(); ++i) {
    if (stops[i].empty()) {
      return "stop string " + std::to_string(i) +
             " is empty; every stop string needs at least "
             "one character";
    }
  }
  return "";
}

StopMatcher::StopMatcher(const std::vector<std::string>& stops) {
  for (size_t n = 0; n < stops.size(); ++n) {
    const std::string& s = stops[n];
    if (s.empty()) continue;
    Pattern p{s, static_cast<int>(n), std::vector<size_t>(s.size(), 0)};
    // The KMP failure function: on a mismatch after matching q bytes, the longest shorter
    // prefix that is still a suffix of the text is border[q - 1] bytes long.
    for (size_t i = 1, q = 0; i < s.size(); ++i) {
      while (q > 0 && s[i] != s[q]) q = p.border[q - 1];
      if (s[i] == s[q]) ++q;
      p.border[i] = q;
    }
    patterns_.push_back(std::move(p));
  }
}

StopMatcher::Result StopMatcher::Feed(std::string_view text) {
  Result result;
  if (stopped()) {
    result.stopped = true;
    return result;
  }
  if (patterns_.empty()) {
    result.emit.assign(text);
    return result;
  }
  const size_t scan_from = held_.size();
  held_.append(text);
  for (size_t i = scan_from; i < held_.size(); ++i) {
    const char c = held_[i];
    const Pattern* winner = nullptr;
    for (Pattern& p : patterns_) {
      size_t q = p.state;
      while (q > 0 && p.text[q] != c) q = p.border[q - 1];
      if (p.text[q] == c) ++q;
      p.state = q;
      // All automata see this byte before deciding: among matches ending here the longest
      // wins, so that no byte of it is emitted.
      if (q == p.text.size() && (winner == nullptr || q > winner->text.size())) winner = &p;
    }
    if (winner != nullptr) {
      // The match starts inside held_: the state before this byte (its length minus one) never
      // exceeds the held-back length.
      result.emit = held_.substr(0, i + 1 - winner->text.size());
      result.stopped = true;
      matched_ = winner->index;
      held_.clear();
      return result;
    }
  }
  size_t hold = 0;
  for (const Pattern& p : patterns_) hold = std::max(hold, p.state);
  result.emit = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return result;
}

std::string StopMatcher::Flush() {
  std::string out = std::move(held_);
  held_.clear();
  for (Pattern& p : patterns_) p.state = 0;
  return out;
}

}  // namespace pkm
