#!/usr/bin/env python3
"""Write the reshaped seeds of fuzz_sni_openssl into tests/fuzz/corpus/sni_openssl/.

    python3 tests/fuzz/sni_openssl_seeds.py

The captured hellos (tests/unit/data/clienthello/*.bin: openssl s_client,
curl, Python's ssl) are copied as they are, then every reshaped form of
harness/hello.py (empty records, versions 3.9, 100 extensions, a hello past
32 KiB) is written for each of them.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import hello  # noqa: E402

SRC = os.path.join(ROOT, "tests", "unit", "data", "clienthello")
DST = os.path.join(ROOT, "tests", "fuzz", "corpus", "sni_openssl")

os.makedirs(DST, exist_ok=True)
for f in sorted(os.listdir(SRC)):
    if not f.endswith(".bin") or f.startswith("padded"):
        continue
    wire = open(os.path.join(SRC, f), "rb").read()
    base = f[:-4]
    open(os.path.join(DST, f), "wb").write(wire)
    for label, data in hello.reshapes(wire).items():
        open(os.path.join(DST, "%s_%s.bin" % (base, label)), "wb").write(data)
    open(os.path.join(DST, base + "_ech.bin"), "wb").write(
        hello.records(hello.with_ech(hello.message(wire))))
