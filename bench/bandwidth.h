// The two halves of batch-1 decode's bandwidth limit (tokens/s <= read bandwidth / bytes a token
// reads): the bytes one decode token reads from the weights as the engine holds them, and the
// machine's read bandwidth, measured in the same run.
#pragma once

#include <cstddef>

#include "engine/engine.h"

namespace pkm::bench {

// Bytes one decode token reads at a context of `context` positions: every matrix in full (the
// LM head included), one row of each embedding table, the heads·knn rows each memory gathers
// (at its trained reads), the sub-keys, and the KV cache of the context. Norm vectors and
// biases are left out (a few KiB).
double DecodeBytesPerToken(const Engine& engine, int context);

// Read bandwidth in bytes/s of `threads` threads summing a buffer of `bytes` (much larger than
// the last-level cache): the best of `repeats` passes after one that faults the pages in.
double ReadBandwidth(int threads, size_t bytes = size_t{1} << 30, int repeats = 5);

}  // namespace pkm::bench
