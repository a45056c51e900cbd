#include "common/nearest_name.h"

#include <algorithm>

namespace pkm {

std::string NearestName(const std::string& name, const std::vector<std::string>& known) {
  // Levenshtein distance; a suggestion must be closer than a third of the name.
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diagonal = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        const size_t above = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
        diagonal = above;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_distance = std::max<size_t>(2, name.size() / 3) + 1;
  for (const std::string& candidate : known) {
    size_t d = distance(name, candidate);
    // A prefix ("--max-batch" for "--max-batch-tokens") is as good as a near miss.
    if (candidate.compare(0, name.size(), name) == 0 && name.size() >= 3) d = std::min<size_t>(d, 1);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

}  // namespace pkm
