#!/usr/bin/env python3
"""Writes a copy of one CUDA kernel source with one bug injected, to prove that the kernel tests
fail when the kernels are wrong (tests/kernels/cuda/CMakeLists.txt builds and runs them on the
emulated CUDA build and passes only when the tests fail).

usage: mutate_kernel.py --list              the mutations, one "name file needs" per line, needs
                                            being "asan" where only AddressSanitizer sees the bug
       mutate_kernel.py NAME SRC_DIR OUT    OUT = SRC_DIR/<file of NAME> with NAME's bug

Each mutation replaces text that must occur exactly once, so a kernel that changed under it
stops the build instead of silently testing the unchanged kernel.
"""
import sys

MUTATIONS = {
    # An index that drops the block's column slice: only the first 32 chunks of a row are summed.
    "wrong-index": ("pkm_gather.cu",
                    "const int chunk = blockIdx.y * kColumns + lane;",
                    "const int chunk = lane;"),
    # The barrier between loading the selection into shared memory and reading it.
    "missing-syncthreads": ("pkm_gather.cu",
                            "    sel_w[r] = weights[static_cast<size_t>(t) * selected + r];\n"
                            "  }\n  __syncthreads();\n",
                            "    sel_w[r] = weights[static_cast<size_t>(t) * selected + r];\n"
                            "  }\n"),
    # A warp reduction that skips its first step: lanes 16..31 never reach lane 0.
    "wrong-warp-reduction": ("pkm_select.cu",
                             "for (int offset = 16; offset > 0; offset /= 2) {",
                             "for (int offset = 8; offset > 0; offset /= 2) {"),
    # Grouped-query attention reading the wrong kv head (interleaved instead of grouped): the
    # same as the right one when kv_heads == heads or 1, so only GQA shapes can catch it.
    "wrong-kv-head": ("ops.cu",
                      "const int kvh = h / (heads / kv_heads);",
                      "const int kvh = h % kv_heads;"),
    # Loads without the bounds guard: lanes past the row's end read beyond it (and past the end
    # of the value table for its last rows). Only an AddressSanitizer build sees it: those lanes
    # never write.
    "out-of-bounds-read": ("pkm_gather.cu", "  if (active) {\n", "  if (true) {\n"),
}
NEEDS_ASAN = {"out-of-bounds-read"}


def main():
    if sys.argv[1:] == ["--list"]:
        for name, (path, _, _) in MUTATIONS.items():
            print(name, path, "asan" if name in NEEDS_ASAN else "plain")
        return
    if len(sys.argv) != 4 or sys.argv[1] not in MUTATIONS:
        sys.exit(__doc__ + "\nmutations: " + ", ".join(MUTATIONS))
    name, src_dir, out = sys.argv[1:]
    path, old, new = MUTATIONS[name]
    with open(f"{src_dir}/{path}", encoding="utf-8") as f:
        text = f.read()
    if text.count(old) != 1:
        sys.exit(f"mutate_kernel.py: {name}: the text to change occurs {text.count(old)} times in "
                 f"{path}, not once: update MUTATIONS to the kernel as it is now")
    with open(out, "w", encoding="utf-8") as f:
        f.write(text.replace(old, new))


if __name__ == "__main__":
    main()
