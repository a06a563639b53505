"""``python -m owjax.surrogate.generate --out DIR [--size ci|full] [--seed N] [--shard-size N] [--workers N]``:
generate (or finish) the surrogate's training data with owjax's body (see :mod:`owjax.surrogate.data`).

Running the same command again skips the shards already written (resume). The precision is set
here, once (``--dtype``, default float64).
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m owjax.surrogate.generate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder (shards, dataset.json)")
    ap.add_argument("--size", default="full", help="named size: ci or full (default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard-size", type=int, default=None, help="samples per shard (= vmapped batch)")
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    ap.add_argument("--count", action="append", default=[], metavar="FAMILY=N",
                    help="override the number of samples of a family (repeatable)")
    ap.add_argument("--no-ood", action="store_true",
                    help="no out-of-distribution samples (for extra training seeds; same as --count ood_X=0 for all)")
    ap.add_argument("--workers", type=int, default=None,
                    help="worker processes, one pinned to each core (default: every core this process may use; "
                         "each solves one sample at a time: ≈ 2× one process on 2 cores)")
    ap.add_argument("--physics-batch", type=int, default=None,
                    help="samples per vmapped physics solve (default: 1 with several workers, the shard with one)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    from owjax.core.precision import set_precision

    set_precision(a.dtype)
    from owjax.surrogate.data import SIZES, DatasetSpec, generate_dataset
    from owjax.surrogate.families import FAMILIES, OOD_FAMILIES

    if a.size not in SIZES:
        ap.error(f"unknown --size {a.size!r}; allowed: {sorted(SIZES)}")
    kw = dict(SIZES[a.size])
    base = DatasetSpec()
    counts, ood = dict(kw.pop("counts", base.counts)), dict(kw.pop("ood_counts", base.ood_counts))
    if a.no_ood:
        ood = {fam: 0 for fam in ood}
    for c in a.count:
        fam, _, n = c.partition("=")
        if fam in FAMILIES:
            counts[fam] = int(n)
        elif fam in OOD_FAMILIES:
            ood[fam] = int(n)
        else:
            ap.error(f"unknown family {fam!r}; allowed: {list(FAMILIES + OOD_FAMILIES)}")
    if a.shard_size:
        kw["shard_size"] = a.shard_size
    spec = DatasetSpec(counts=counts, ood_counts=ood, seed=a.seed, dtype=a.dtype, **kw)
    from owjax.surrogate.throughput import available_cores

    workers = len(available_cores()) if a.workers is None else a.workers
    try:
        summary = generate_dataset(a.out, spec, progress=not a.no_progress, workers=workers, physics_batch=a.physics_batch)
    except ValueError as e:
        ap.error(str(e))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
