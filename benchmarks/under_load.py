"""The demo under load: does a run slow down in proportion to the cores it actually gets?

    python -m benchmarks.under_load [--backend torch] [--full] [--json PATH] [--env K=V ...]

Runs `mind run` (the demo preset, shortened to 2 teacher + 2 distill epochs unless --full) in a
child process twice: alone, then beside one busy process (`yes > /dev/null`, started here and
killed after). For each it measures the child's wall time and CPU time (user + system, from
os.wait4's rusage of that child alone). Ratios (loaded / alone; targets in TARGETS):
  wall_ratio  <= 2.3: one busy process takes at most about half of 2 cores, so a run that
              degrades in proportion to the cores it gets takes about 2x
  cpu_ratio   <= 1.2: the same work should cost the same CPU time; more means threads
              spinning while they wait for a core
--env K=V sets a variable in the child's environment (e.g. OMP_WAIT_POLICY=PASSIVE to see the
behaviour without mind's load-dependent choice). Other processes on the machine are listed in the
JSON (`neighbours`) since they load it too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"wall_ratio": 2.3, "cpu_ratio": 1.2}
SHORT = ["--set", "teacher.epochs=2", "--set", "distill.epochs=2"]


def run_demo(backend: str, full: bool, env: dict[str, str]) -> dict:
    """One `mind run` in a child: its wall and CPU seconds and the summary it printed."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", "import sys; from mind_core.cli import main; "
               "sys.exit(main())", "run", "--backend", backend, "--seed", "0", "--quiet",
               "--out", str(Path(tmp) / "run"), *([] if full else SHORT)]
        start = time.perf_counter()
        child = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"mind run failed ({child.returncode}):\n{out}")
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "user_s": round(usage.ru_utime, 2), "sys_s": round(usage.ru_stime, 2),
            "summary": summary(out)}


def summary(out: str) -> list[str]:
    """The run's summary lines, without the framework's log lines around them."""
    lines = out.strip().splitlines()
    return [line for line in lines if line.startswith(("TAg", "Run directory"))] or lines[-6:]


def neighbours() -> list[str]:
    """Other processes using CPU now (ps), for the record."""
    try:
        ps = subprocess.run(["ps", "-eo", "pid,ni,pcpu,args", "--sort=-pcpu"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line[:160] for line in ps[1:6] if "ps -eo" not in line]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--full", action="store_true", help="the whole demo, not 2+2 epochs")
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--env", action="append", default=[], metavar="K=V")
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)

    before = neighbours()
    alone = run_demo(args.backend, args.full, env)
    busy = subprocess.Popen("exec yes > /dev/null", shell=True)
    try:
        loaded = run_demo(args.backend, args.full, env)
    finally:
        busy.kill()
        busy.wait()
    ratios = {"wall_ratio": round(loaded["wall_s"] / alone["wall_s"], 2),
              "cpu_ratio": round(loaded["cpu_s"] / alone["cpu_s"], 2)}
    result = {"backend": args.backend, "demo": "full" if args.full else "2+2 epochs",
              "env": env, "cpus": os.cpu_count(), "neighbours": before,
              "alone": alone, "beside_one_busy": loaded, **ratios,
              "targets": TARGETS, "met": {k: ratios[k] <= v for k, v in TARGETS.items()}}
    for key, value in ratios.items():
        print(f"{key}: {value} (target <= {TARGETS[key]})")
    print(f"alone {alone['wall_s']} s wall, {alone['cpu_s']} s CPU; beside one busy process "
          f"{loaded['wall_s']} s wall, {loaded['cpu_s']} s CPU")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
