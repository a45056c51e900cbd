// Stop strings for streamed generation: finds them in text that arrives in arbitrary chunks
// and decides which bytes are final and may be sent to the client.
//
// Rules:
//  * Emitted text never contains any part of a stop string that matches: a suffix that could
//    still become a stop string (a proper prefix of one) is held back until later text settles
//    it; if it does not match after all, it is emitted with a later Feed or by Flush.
//  * The first stop string to complete wins: the match with the earliest END in the whole
//    stream, and among those ending at the same byte the longest (it starts first). This is
//    what a streaming reader can decide without waiting for more text, and the outcome (what
//    is emitted in total, and whether and where it stopped) is the same however the text is
//    split into chunks. E.g. stops {"abcd", "bc"} on "abcd" stop at "bc" and emit "a".
//  * The stop string itself is never emitted, nor is anything after it.
//
// Matching is bytewise (Knuth-Morris-Pratt, one automaton per stop string, so each byte of
// text costs O(number of stop strings) amortised, whatever the chunking). That is UTF-8 safe:
// a stop string is valid UTF-8, so a held-back suffix starts at the first byte of a character,
// and emitted text ends on a character boundary whenever the fed text does.
//
// Thread-safety: not thread-safe; one request's matcher is used by one thread at a time.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace pkm {

class StopMatcher {
 public:
  struct Result {
    std::string emit;      // text that became final with this Feed
    bool stopped = false;  // a stop string completed; `emit` ends right before it
  };

  // "" if `stops` can be matched, else a message naming the offending entry (an empty stop
  // string would match everywhere).
  static std::string Validate(const std::vector<std::string>& stops);

  // No stop strings: Feed emits everything at once.
  StopMatcher() = default;
  // Empty entries are ignored here; servers reject them with Validate first.
  explicit StopMatcher(const std::vector<std::string>& stops);

  // Appends generated text. Once stopped, further text is ignored: returns {"", true}.
  Result Feed(std::string_view text);

  // Ends the stream for another reason (EOS, length, cancellation): returns the held-back text,
  // which is final now that nothing can complete it. "" once stopped. Text fed afterwards is
  // matched as a new stream.
  std::string Flush();

  bool stopped() const { return matched_ >= 0; }
  // Index in the constructor's list of the stop string that matched; -1 while not stopped.
  int matched_index() const { return matched_; }

 private:
  struct Pattern {
    std::string text;
    int index;                   // in the constructor's list
    std::vector<size_t> border;  // border[i]: longest proper border of text[0, i]
    size_t state = 0;            // bytes of `text` matched by the end of the stream so far
  };

  std::vector<Pattern> patterns_;
  // Fed text not yet emitted: always the longest suffix of the stream that is a proper prefix
  // of some stop string (the largest Pattern::state).
  std::string held_;
  int matched_ = -1;
};

}  // namespace pkm
