"""Differential fuzzing of the DER fast path (pyasn1-fasder) against the strict pyasn1 path.

For mutated openssl vectors (the mutator of ``scripts/fuzz.py``): whenever the fast path
accepts an input, the strict pyasn1 path (decode, no trailing bytes, identical
re-encoding) must accept it too, with the same value.  Prints the counts; exit 1 on any
disagreement (each one is printed as hex).

Usage: ``.venv/bin/python scripts/fuzz_fastpath.py [--count N] [--seed S]``
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyasn1.codec.der import decoder as der_decoder  # noqa: E402
from pyasn1.codec.der import encoder as der_encoder  # noqa: E402

from cmpclient.asn1 import cmp, codec  # noqa: E402


def strict_pyasn1(data: bytes):
    try:
        value, rest = der_decoder.decode(data, asn1Spec=cmp.PKIMessage())
        if rest or der_encoder.encode(value) != data:
            return None
    except Exception:  # noqa: BLE001 - any refusal
        return None
    return der_decoder.decode(data, asn1Spec=cmp.PKIMessage())[0]  # fresh: encoding touches the value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location("cmp_fuzz_script", ROOT / "scripts" / "fuzz.py")
    fuzz = importlib.util.module_from_spec(spec)
    sys.modules["cmp_fuzz_script"] = fuzz
    spec.loader.exec_module(fuzz)  # type: ignore[union-attr]
    corpus = [p.read_bytes() for p in sorted((ROOT / "tests" / "vectors" / "openssl").rglob("*.der"))]
    rng = random.Random(args.seed)
    counts = {"fast_accepts": 0, "strict_accepts": 0, "both_refuse": 0, "fast_stricter": 0, "disagree": 0}
    start = time.monotonic()
    for _ in range(args.count):
        data = fuzz.mutate(rng, rng.choice(corpus), corpus)
        fast = codec.fast_decode(data, cmp.PKIMessage())
        slow = strict_pyasn1(data)
        counts["fast_accepts"] += fast is not None
        counts["strict_accepts"] += slow is not None
        if fast is None and slow is None:
            counts["both_refuse"] += 1
        elif fast is None:
            counts["fast_stricter"] += 1  # decode() falls back to pyasn1: same verdict as before
        elif slow is None or fast.prettyPrint() != slow.prettyPrint():
            counts["disagree"] += 1
            print("DISAGREE", data.hex(), flush=True)
    took = time.monotonic() - start
    print(f"{args.count} inputs (seed {args.seed}) in {took:.0f} s: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 1 if counts["disagree"] else 0


if __name__ == "__main__":
    sys.exit(main())
