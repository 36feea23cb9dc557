"""Is a profile run on a busy machine flagged, and a quiet one not?

Profiles the default `unet` (untrained weights: latency does not depend on them) three times in
one process, side by side: quiet, with one CPU burner running beside it (a process outside this
one's tree spinning a core), and quiet again. Prints each run's recorded contention and latency,
the latency ratios, and whether profile.quiet_wait_s's bounded wait gave up under the burner.

    python benchmarks/bench_contention.py [--model unet] [--burners 1]

Run it on an otherwise idle machine: the quiet runs must be quiet.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import time

from segbench.config import load_params
from segbench.environment import describe_env, fingerprint
from segbench.models import build_model
from segbench.profile import profile


def start_burner() -> int:
    """A busy process that is not our descendant (its shell exits), as another user's job would be."""
    out = subprocess.run(["sh", "-c", f"{sys.executable} -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def run(model, size, cfg, quiet_wait_s: float) -> dict:
    return profile(model, size, dataclasses.replace(cfg, input_sizes=(), device="cpu", quiet_wait_s=quiet_wait_s,
                                               backends=("eager",)))


def line(name: str, result: dict) -> str:
    c = result["contention"]
    wait = (f", waited {result['quiet_wait_s']:.1f} s (quiet: {result['started_quiet']})"
            if "quiet_wait_s" in result else "")
    return (f"{name:<14} latency {result['latency_cpu_ms']:7.2f} ms ({result['latency_cpu_stop_reason']}, "
            f"{result['latency_cpu_runs']} runs)  other_cpu {c['other_cpu']:.3f} (max {c['other_cpu_max']:.3f})  "
            f"steal {c['steal']:.3f}  over {c['seconds']:.1f} s  contended: {c['contended']}{wait}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet")
    parser.add_argument("--burners", type=int, default=1)
    args = parser.parse_args()
    params = load_params("params.yaml")
    spec = params.model(args.model)
    model = build_model(spec.arch, params.data.synthetic.num_classes, **spec.options)
    size = tuple(params.data.image_size)
    print(f"environment: {describe_env(fingerprint())}; profile.time_budget_s {params.profile.time_budget_s}")
    quiet = run(model, size, params.profile, 0)
    burners = [start_burner() for _ in range(args.burners)]
    try:
        time.sleep(0.5)
        busy = run(model, size, params.profile, 0)
        waited = run(model, size, params.profile, 3.0)  # the bounded wait gives up after 3 s
    finally:
        for pid in burners:
            os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    again = run(model, size, params.profile, 0)
    for name, result in (("quiet", quiet), (f"{args.burners} burner(s)", busy), ("burner + wait", waited),
                         ("quiet again", again)):
        print(line(name, result))
    print(f"latency ratio busy / quiet: {busy['latency_cpu_ms'] / quiet['latency_cpu_ms']:.2f}x; "
          f"quiet again / quiet: {again['latency_cpu_ms'] / quiet['latency_cpu_ms']:.2f}x")


if __name__ == "__main__":
    main()
