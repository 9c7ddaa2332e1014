"""Keeping freed memory (mind_core/heap.py) against glibc's defaults, on whole demo runs.

    python -m benchmarks.freed_memory [--backend torch] [--repeats 3] [--threads N]
        [--json benchmarks/results/freed-memory.json] [--quick]

Each round runs the demo twice in child processes, one after the other: `kept` as `mind run`
does by default, and `default`, where the child's environment carries a malloc tunable that
changes nothing (GLIBC_TUNABLES=glibc.malloc.check=0, glibc's own default) but counts as the
user's choice, so mind leaves glibc's thresholds alone. For each run: wall and CPU seconds,
page faults, peak resident memory, the final TAg / TAw / routing. Reported: the medians over
rounds and the ratios kept / default (wall, CPU, faults, peak memory), and whether every kept
run computed exactly the default run's results (only where memory comes from changes).
Target (TARGETS): wall ratio <= 0.95, peak memory ratio <= 1.1.

--quick: the demo shrunk to seconds as benchmarks/precision_run.py shrinks it (tests); no
timing of it means anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.precision_run import PER_CLASS, QUICK, mind_run, padded_subset, sets
from benchmarks.under_load import neighbours

TARGETS = {"wall_ratio": 0.95, "peak_rss_ratio": 1.1}
UNTOUCHED = {"GLIBC_TUNABLES": "glibc.malloc.check=0"}  # a malloc setting equal to the default
MODES = {"kept": {}, "default": UNTOUCHED}
RESULTS = ("tag", "taw", "routing")
MEASURES = ("wall_s", "cpu_s", "page_faults", "peak_rss_mb")


def run_rounds(backend: str, repeats: int, threads: int | None, quick: bool,
               work: Path) -> dict[str, Any]:
    args = ["--preset", "demo", "--backend", backend]
    if quick:
        data = work / "fmnist-quick.npz"
        padded_subset("fmnist-mini", PER_CLASS["quick"], data)
        args += ["--dataset", f"npz:{data}", *sets(QUICK)]
    base = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    rounds = [{mode: mind_run(args, work / f"{mode}-{r}", threads, {**base, **extra})
               for mode, extra in MODES.items()} for r in range(repeats)]
    medians = {mode: {key: round(statistics.median(one[mode][key] for one in rounds), 2)
                      for key in MEASURES} for mode in MODES}
    ratios = {f"{key}_ratio": round(medians["kept"][key] / medians["default"][key], 3)
              for key in ("wall_s", "cpu_s", "peak_rss_mb")}
    ratios["page_faults_ratio"] = round(medians["kept"]["page_faults"]
                                        / max(1, medians["default"]["page_faults"]), 4)
    same = all(one["kept"][key] == one["default"][key] for one in rounds for key in RESULTS)
    return {"quick": quick, "backend": backend, "rounds": rounds, "medians": medians,
            "ratios": ratios, "same_results": same, "targets": TARGETS,
            "met": {"wall": ratios["wall_s_ratio"] <= TARGETS["wall_ratio"],
                    "peak_rss": ratios["peak_rss_mb_ratio"] <= TARGETS["peak_rss_ratio"]},
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "python": platform.python_version(), "threads_flag": threads},
            "neighbours": neighbours(),
            "load_average": [round(v, 2) for v in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of both (default 3)")
    parser.add_argument("--threads", type=int, help="mind run --threads (default: its own)")
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for tests")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / time.strftime("runs-%Y%m%d-%H%M%S")
        result = run_rounds(args.backend, max(1, args.repeats), args.threads, args.quick, work)
    for mode, medians in result["medians"].items():
        print(f"{mode}: " + ", ".join(f"{key} {value}" for key, value in medians.items()))
    print(f"ratios kept/default: {result['ratios']}; same results: {result['same_results']}")
    print(f"met: {result['met']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
