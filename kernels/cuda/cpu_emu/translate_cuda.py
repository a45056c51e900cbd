#!/usr/bin/env python3
"""Rewrites a .cu file as C++ for the emulated CUDA build (PKMSERVE_CUDA_ON_CPU).

Two CUDA spellings have no host-code equivalent, so they are rewritten mechanically; the .cu
files stay the real CUDA sources that nvcc builds:
  kernel<<<grid, block[, smem[, stream]]>>>(args...)  ->  PKM_EMU_LAUNCH(kernel, grid, block,
                                                            smem, stream, args...)
  extern __shared__ [__align__(n)] T name[];           ->  HIP_DYNAMIC_SHARED(T, name)
Line numbers are kept and a #line names the original file, so errors point into the .cu.
Anything that looks like a launch but cannot be parsed is an error, never left as is.

usage: translate_cuda.py IN.cu OUT.cc
"""
import re
import sys

SHARED = re.compile(
    r"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?([A-Za-z_][\w:\s]*?)\s+"
    r"([A-Za-z_]\w*)\s*\[\s*\]\s*;")
OPENERS, CLOSERS = "([{", ")]}"


def fail(path, text, pos, why):
    line = text.count("\n", 0, pos) + 1
    sys.exit(f"{path}:{line}: translate_cuda: {why}")


def kernel_start(text, end):
    """Start of the kernel expression that ends at `end` (just before <<<): a possibly
    qualified name with optional template arguments, e.g. ns::Kernel<T, 4>."""
    i = end
    while i > 0 and text[i - 1].isspace():
        i -= 1
    if i > 0 and text[i - 1] == ">":  # template arguments: walk back to the matching <
        depth = 0
        while i > 0:
            i -= 1
            if text[i] == ">":
                depth += 1
            elif text[i] == "<":
                depth -= 1
                if depth == 0:
                    break
    while i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_:"):
        i -= 1
    return i


def split_top_level(s):
    """Splits at commas outside (), [] and {}."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in OPENERS:
            depth += 1
        elif ch in CLOSERS:
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def matching_paren(text, open_pos):
    depth = 0
    for i in range(open_pos, len(text)):
        if text[i] in OPENERS:
            depth += 1
        elif text[i] in CLOSERS:
            depth -= 1
            if depth == 0:
                return i
    return -1


def translate(path, text):
    text = SHARED.sub(lambda m: f"HIP_DYNAMIC_SHARED({m.group(1).strip()}, {m.group(2)})", text)
    if "extern __shared__" in text:
        fail(path, text, text.index("extern __shared__"), "unrecognised extern __shared__")
    out, pos = [], 0
    while (lt := text.find("<<<", pos)) != -1:
        start = kernel_start(text, lt)
        kernel = text[start:lt].strip()
        if not kernel:
            fail(path, text, lt, "no kernel name before <<<")
        gt = text.find(">>>", lt)
        if gt == -1:
            fail(path, text, lt, "<<< without >>>")
        config = split_top_level(text[lt + 3:gt])
        if not 2 <= len(config) <= 4 or not all(config):
            fail(path, text, lt, f"a launch takes 2 to 4 parameters, got <<<{text[lt + 3:gt]}>>>")
        config += ["0", "nullptr"][len(config) - 2:]
        open_paren = gt + 3
        while open_paren < len(text) and text[open_paren].isspace():
            open_paren += 1
        if open_paren >= len(text) or text[open_paren] != "(":
            fail(path, text, gt, "no argument list after >>>")
        close = matching_paren(text, open_paren)
        if close == -1:
            fail(path, text, open_paren, "unbalanced argument list")
        args = text[open_paren + 1:close]
        if not args.strip():
            fail(path, text, open_paren, "a kernel without arguments is not supported")
        if "," in kernel:
            kernel = f"({kernel})"
        grid, block, smem, stream = (f"({c})" for c in config)
        out.append(text[pos:start])
        # The rewritten text keeps the original's newlines, so line numbers stay right.
        newlines = "\n" * text.count("\n", start, open_paren)
        out.append(f"PKM_EMU_LAUNCH({kernel}, {grid}, {block}, {smem}, {stream},{newlines}{args})")
        pos = close + 1
    out.append(text[pos:])
    return "".join(out)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        text = f.read()
    result = f'#line 1 "{src}"\n' + translate(src, text)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(result)


if __name__ == "__main__":
    main()
