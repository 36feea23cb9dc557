"""`segbench profile MODEL` (stage `profile@MODEL`): measure one model's cost."""
from __future__ import annotations

import argparse
import sys

from .. import paths
from .common import add_model_argument, load_params

HELP = "stage: measure one model's cost"


add_arguments = add_model_argument


def run(args: argparse.Namespace) -> None:
    from ..checkpoint import load_checkpoint
    from ..io import write_json
    from ..profile import profile

    params = load_params(args)
    params.model(args.model)
    # Cost does not depend on the training seed: the first seed's checkpoint is profiled.
    model, ckpt = load_checkpoint(paths.checkpoint_path(args.model, params.seeds[0]))
    result = profile(model, tuple(ckpt["image_size"]), params.profile)
    write_json(paths.metrics_path(args.model, "profile"), result)
    _report(args.model, result, params.profile.batch_size)


def _report(model: str, result: dict, batch_size: int) -> None:
    from ..keys import latency_keys, size_tag

    if not result.get("started_quiet", True):
        print(f"segbench: warning: the machine stayed busy for {result['quiet_wait_s']:.0f} s (profile.quiet_wait_s); "
              f"profiling {model} anyway", file=sys.stderr)
    if result["contention"]["contended"]:
        from ..contention import contention_warning

        print(contention_warning(result["contention"], f"profiling {model}"), file=sys.stderr)
    eager = [key for key in latency_keys(result, "cpu") if not key.tag]
    latencies = ", ".join(f"{size_tag(key.size) if key.size else 'training size'} {result[key.name]:.4g} ms "
                          f"[{result[key.stat('ci95_low_ms')]:.4g}, {result[key.stat('ci95_high_ms')]:.4g}]"
                          for key in eager)
    print(f"{model}: {result['params']:,} params, {result['threads']} threads, CPU latency {latencies} "
          f"(95% intervals over {result['rounds']} rounds, {result['rounds_stop_reason']}), "
          f"{result['throughput_cpu_ips']:.1f} images/s at batch {batch_size}")
    for backend, reason in result.get("backend_errors", {}).items():
        print(f"{model}: backend {backend} not measured: {reason}")
