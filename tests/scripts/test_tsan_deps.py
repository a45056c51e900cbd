"""The ThreadSanitizer build loads gRPC, Abseil and cpp-httplib from scripts/tsan-deps.sh's
folder.

Registered only in a build configured with PKMSERVE_INSTRUMENTED_LIBS (`make test-tsan`): if a
binary fell back to Debian's uninstrumented copies, TSan would report every RPC's hand-over
as a race, or, with those silenced, miss real ones.
"""
import os
import re
import subprocess
import sys

import pytest

if "PKMSERVE_INSTRUMENTED_LIBS" not in os.environ:
    pytest.skip("only in the TSan build's ctest (make test-tsan)", allow_module_level=True)
LIBDIR = os.environ["PKMSERVE_INSTRUMENTED_LIBS"]
BINARIES = os.environ["PKMSERVE_TSAN_BINARIES"].split(os.pathsep)
# What scripts/tsan-deps.sh builds; each binary's copies of these must come from LIBDIR.
INSTRUMENTED = re.compile(r"^lib(grpc|grpc\+\+|grpc\+\+_reflection|gpr|upb|address_sorting"
                          r"|absl_\w+|cpp-httplib)\.so")


def resolved_libraries(binary):
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    pairs = re.findall(r"^\s*(\S+) => (\S+)", out, re.MULTILINE)
    assert pairs, f"ldd found no libraries in {binary}"
    return dict(pairs)


def test_grpc_abseil_and_httplib_resolve_to_the_instrumented_copies():
    for binary in BINARIES:
        libraries = resolved_libraries(binary)
        ours = {name: path for name, path in libraries.items() if INSTRUMENTED.match(name)}
        assert "libgrpc.so.29" in ours and "libabsl_synchronization.so.20220623" in ours, binary
        if os.path.basename(binary) == "pkmserve":  # the HTTP front end
            assert "libcpp-httplib.so.0.11" in ours, binary
        elsewhere = {n: p for n, p in ours.items() if os.path.dirname(p) != LIBDIR}
        assert not elsewhere, f"{binary} loads these from outside {LIBDIR}: {elsewhere}"


def test_the_copies_are_built_with_tsan():
    for name in ("libgrpc.so.29", "libgpr.so.29", "libabsl_synchronization.so.20220623",
                 "libcpp-httplib.so.0.11"):
        symbols = subprocess.run(["nm", "-D", "--undefined-only", os.path.join(LIBDIR, name)],
                                 check=True, capture_output=True, text=True).stdout
        assert "__tsan_func_entry" in symbols, f"{name} is not instrumented"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
