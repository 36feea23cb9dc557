"""Do latency intervals over rounds (worker processes) tell equal costs from different ones?

    python benchmarks/bench_latency_rounds.py [--repeats 10] [--pairs unet:unet_aug unet:deeplabv3_resnet18]

Needs the default run's checkpoints (data/checkpoints/<model>/seed<first seed>.pt). For each repeat,
each model is profiled at the training size, eager fp32 (the `profile:` section of params.yaml for the
rest), two ways side by side in the same repeat: `profile.rounds` worker processes (what the profile stage
does), and one round in this process (the interval of one process's median, what it did before). A pair
is "same cost" when the two latency intervals overlap (the summary's rule). Prints, per pair and way,
how many repeats called it the same cost, and the interval widths. Run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

from segbench import paths
from segbench.checkpoint import load_checkpoint
from segbench.config import load_params
from segbench.environment import describe_env, fingerprint
from segbench.profile import profile


def interval(result: dict) -> tuple[float, float, float]:
    return result["latency_cpu_ms"], result["latency_cpu_ci95_low_ms"], result["latency_cpu_ci95_high_ms"]


def overlap(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    return a[1] <= b[2] and b[1] <= a[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--pairs", nargs="+", default=["unet:unet_aug", "unet:deeplabv3_resnet18"])
    args = parser.parse_args()
    params = load_params("params.yaml")
    pairs = [tuple(p.split(":")) for p in args.pairs]
    models = list(dict.fromkeys(m for pair in pairs for m in pair))
    loaded = {m: load_checkpoint(paths.checkpoint_path(m, params.seeds[0])) for m in models}
    base = dataclasses.replace(params.profile, input_sizes=(), backends=("eager",), quiet_wait_s=0)
    ways = {"rounds": base, "one process": dataclasses.replace(base, rounds=1, max_rounds=1)}
    print(f"environment: {describe_env(fingerprint())}; {base.rounds}-{base.max_rounds} rounds, "
          f"{base.time_budget_s} s per round")
    same = {(pair, way): 0 for pair in pairs for way in ways}
    widths = {(m, way): [] for m in models for way in ways}
    seconds = {way: 0.0 for way in ways}
    for repeat in range(args.repeats):
        order = models if repeat % 2 == 0 else models[::-1]  # drift hits every model alike
        found = {}
        for model in order:
            net, ckpt = loaded[model]
            for way, cfg in ways.items():
                started = time.perf_counter()
                found[model, way] = interval(profile(net, tuple(ckpt["image_size"]), cfg))
                seconds[way] += time.perf_counter() - started
                median, low, high = found[model, way]
                widths[model, way].append((high - low) / 2 / median)
        for pair in pairs:
            for way in ways:
                same[pair, way] += overlap(found[pair[0], way], found[pair[1], way])
        print(f"repeat {repeat + 1}: " + "; ".join(f"{m} {found[m, 'rounds'][0]:.2f} [{found[m, 'rounds'][1]:.2f}, "
                                                 f"{found[m, 'rounds'][2]:.2f}] ms" for m in models))
    for pair in pairs:
        for way in ways:
            print(f"{pair[0]} vs {pair[1]}, {way}: same cost in {same[pair, way]}/{args.repeats} repeats")
    for (model, way), w in widths.items():
        middle = sorted(w)[len(w) // 2]
        print(f"{model}, {way}: interval half-width {min(w):.1%}-{max(w):.1%} of the median (median {middle:.1%})")
    for way, s in seconds.items():
        print(f"{way}: {s / args.repeats / len(models):.1f} s per model profile")


if __name__ == "__main__":
    main()
