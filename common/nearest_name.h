// "Did you mean" for mistyped flag and command names, shared by pkmserve and pkm.
#pragma once

#include <string>
#include <vector>

namespace pkm {

// The known name nearest `name` by edit distance (a prefix of 3+ characters counts as a near
// miss), or "" when none is close enough to suggest.
std::string NearestName(const std::string& name, const std::vector<std::string>& known);

}  // namespace pkm
