"""How long do the aggregation and the paired bootstrap take, and are the intervals calibrated?

    python benchmarks/bench_stats.py [--models 7] [--seeds 3] [--images 80] [--resamples 2000] [--repeats 300]
    python benchmarks/bench_stats.py --only-speed    # 1. alone;  --table: the calibration of every summary statement

1. Speed (target: <= 10 s on 2 cores for 7 models x 3 seeds x 80 test images): the plot
   stage's statistics on the committed default run's per-image files when they are there
   (metrics/<model>/seeds/<seed>/per_image.npz, every model of params.yaml), otherwise on
   simulated ones of that shape: load every per-image file, draw the shared resamples, compare
   every model with the best and every pair (segbench.comparison), and summarise every seed's
   eval.json (segbench.aggregate.aggregate_reports).
2. Calibration on simulated benchmarks (a fixed test set, images of varying difficulty, each
   seed shifting every class's hit rate): two identical configurations must come out tied in
   >= 95% of independent repeats; a configuration planted to be better by a known margin must
   come out better. Also shown: what the image bootstrap alone (no seed term) would say.
3. `segbench diff` calibration (segbench.revisions.quality and rows): revision A and revision B
   run the same configuration with other training seeds on the same test set; B must say "no
   detectable change" for >= 95% of repeats, with both of diff's methods (the paired bootstrap
   over per-image files, and the Welch interval over per-seed values when those are missing).
   A planted margin must come out "better". Also: how often a diff of 7 unchanged models flags
   at least one as "worse" (what `--fail-on worse` would do without any real change).
Prints the figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from segbench import paths, stats
from segbench.aggregate import aggregate_reports
from segbench.comparison import compare_scores, load_per_image
from segbench.io import read_json, save_npz

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from simulation import calibration_trials, simulated_config  # noqa: E402  (the tests' generator: they check what this measures)


def committed_run() -> tuple[list[str], list[int]] | None:
    """The models and seeds of params.yaml when every per-image file of the default run is present."""
    from segbench.config import load_params

    params = load_params("params.yaml")
    models, seeds = list(params.models), list(params.seeds)
    if all(paths.per_image_path(m, s).is_file() for m in models for s in seeds):
        return models, seeds
    return None


def speed(args) -> None:
    found = committed_run()
    with tempfile.TemporaryDirectory() as tmp:
        if found is not None:
            models, seeds = found
            metrics_dir = paths.METRICS_DIR
            what = f"the committed run ({len(models)} models x {len(seeds)} seeds)"
        else:
            rng = np.random.default_rng(0)
            models, seeds, metrics_dir = [f"model{i}" for i in range(args.models)], list(range(args.seeds)), Path(tmp)
            truth = rng.integers(50, 800, (args.images, 6)) * (rng.random((args.images, 6)) < 0.7)
            effect = rng.normal(0, 0.8, (args.images, 1))
            for i, m in enumerate(models):
                counts = simulated_config(rng, truth, effect, 0.05 * i, len(seeds))
                for s in seeds:
                    save_npz(paths.per_image_path(m, s, metrics_dir), mask_counts=counts[s].astype(np.int64))
            what = f"simulated files ({len(models)} models x {len(seeds)} seeds x {args.images} images)"
        start = time.perf_counter()
        per_image = load_per_image(metrics_dir, models, seeds)
        loaded = time.perf_counter()
        result = compare_scores(per_image, args.resamples, 0)["miou"]
        compared = time.perf_counter()
        reports = ([read_json(paths.seed_metrics_path(m, s, "eval")) for s in seeds] for m in models) if found else None
        if reports is not None:
            for model_reports in reports:
                aggregate_reports(model_reports, seeds)
        done = time.perf_counter()
    print(f"speed on {what}, {args.resamples} resamples:")
    print(f"  load {loaded - start:.2f} s, bootstrap + every pair {compared - loaded:.2f} s, "
          f"aggregate eval.json {done - compared:.2f} s: total {done - start:.2f} s (target <= 10 s)")
    print(f"  best: {result.best}; tied with it: {[m for m in result.models if m != result.best and result.tied_with_best(m)]}")


def calibration(margin: float, seeds: int, repeats: int, resamples: int) -> dict[str, float]:
    counts = {"tied": 0, "better": 0, "image_only_tied": 0}
    for a_full, b_full, a_boot, b_boot in calibration_trials(margin, seeds, repeats, resamples):
        c = stats.compare(a_full, b_full, a_boot, b_boot)
        image_only = stats.compare(a_full.mean(keepdims=True), b_full.mean(keepdims=True), a_boot, b_boot)
        counts["tied"] += not c.significant
        counts["better"] += c.low > 0
        counts["image_only_tied"] += not image_only.significant
    return {k: v / repeats for k, v in counts.items()}


def diff_calibration(margin: float, seeds: int, repeats: int, resamples: int, models: int = 1) -> dict[str, float]:
    """Shares of repeats in which `segbench diff` (segbench.revisions) calls B against A each verdict."""
    from segbench.revisions import quality as diff
    from segbench.revisions import rows as diff_rows

    rng = np.random.default_rng(7)
    rule = stats.SCORE_RULES["miou"]
    counts = {"paired_same": 0, "paired_better": 0, "welch_same": 0, "welch_better": 0, "any_worse": 0, "diff": 0.0}
    for r in range(repeats):
        truth = rng.integers(50, 800, (80, 6)) * (rng.random((80, 6)) < 0.7)
        effect = rng.normal(0, 0.8, (80, 1))
        weights = stats.bootstrap_weights(80, resamples, seed=r)
        verdicts = []
        for _ in range(models):
            a = simulated_config(rng, truth, effect, 0.0, seeds)  # revision A's training seeds
            b = simulated_config(rng, truth, effect, margin, seeds)  # revision B: other seeds, maybe a planted margin
            paired = diff.paired_row("miou", "mIoU", rule, a, b, lambda n, w=weights: w)
            welch = diff_rows.seed_row("miou", "mIoU", list(rule.compute(a.sum(1))), list(rule.compute(b.sum(1))), True)
            verdicts.append(paired.verdict)
        counts["paired_same"] += paired.verdict == diff_rows.SAME
        counts["paired_better"] += paired.verdict == diff_rows.BETTER
        counts["welch_same"] += welch.verdict == diff_rows.SAME
        counts["welch_better"] += welch.verdict == diff_rows.BETTER
        counts["any_worse"] += diff_rows.WORSE in verdicts
        counts["diff"] += paired.diff
    return {k: v / repeats for k, v in counts.items()}


def print_diff_calibration(repeats: int) -> None:
    print(f"segbench diff calibration: {repeats} repeats, 80 test images, 1000 resamples; A and B with other seeds")
    for margin, seeds in ((0.0, 3), (0.0, 5), (0.15, 3), (0.3, 3)):
        start = time.perf_counter()
        share = diff_calibration(margin, seeds, repeats, 1000)
        print(f"  margin {margin:<4} seeds {seeds}: mean mIoU B - A {share['diff']:+.4f}; paired bootstrap: no detectable "
              f"change {share['paired_same']:.3f}, better {share['paired_better']:.3f}; Welch over seeds: no detectable "
              f"change {share['welch_same']:.3f}, better {share['welch_better']:.3f} ({time.perf_counter() - start:.1f} s)")
    share = diff_calibration(0.0, 3, repeats, 1000, models=7)
    print(f"  7 unchanged models, 3 seeds: a diff flags at least one as worse in {share['any_worse']:.3f} of repeats")


def test_set(rng, images: int = 80):
    return rng.integers(50, 800, (images, 6)) * (rng.random((images, 6)) < 0.7), rng.normal(0, 0.8, (images, 1))


def k_model_calibration(repeats: int, margin: float) -> None:
    """The plausibly-best set (Holm) and the verdicts over k models (segbench.comparison.compare_scores)."""
    rng = np.random.default_rng(11)
    planted = (0.3, 0.25, 0.2, 0.0, -0.3)  # model0 is truly best, model1 close behind
    covered = fwer = 0
    for _ in range(repeats):
        truth, effect = test_set(rng)
        per_image = {f"m{i}": {"mask_counts": simulated_config(rng, truth, effect, d, 3)} for i, d in enumerate(planted)}
        covered += "m0" in compare_scores(per_image, 1000, 0, margin)["miou"].best_set
        per_image = {f"m{i}": {"mask_counts": simulated_config(rng, truth, effect, 0.0, 3)} for i in range(7)}
        fwer += len(compare_scores(per_image, 1000, 0, margin)["miou"].best_set) < 7
    print(f"  plausibly-best set holds the true best (5 models, 3 seeds): {covered / repeats:.3f} (target >= 0.95)")
    print(f"  7 identical models, 3 seeds: any called worse after Holm {fwer / repeats:.3f} (target <= 0.05)")


def equivalence_calibration(repeats: int, margin: float, seed_sd: float = 0.05) -> None:
    """Two truly equal configurations: how often they are called equivalent as seeds grow."""
    rng = np.random.default_rng(12)
    for seeds in (3, 10, 30):
        words = {"equivalent": 0, "inconclusive": 0, "worse": 0}
        for _ in range(repeats):
            truth, effect = test_set(rng, 400)
            per_image = {m: {"mask_counts": simulated_config(rng, truth, effect, 0.0, seeds, seed_sd, 0.1)} for m in "ab"}
            result = compare_scores(per_image, 500, 0, margin)["miou"]
            words[result.verdicts[next(m for m in "ab" if m != result.best)]] += 1
        print(f"  equal models, 400 images, {seeds:>2} seeds (seed sd {seed_sd} logit): " +
              ", ".join(f"{w} {n / repeats:.3f}" for w, n in words.items()) + f" (margin {margin})")


def significant_share(rng, planted: float, seeds: int, repeats: int, seed_sd: float) -> tuple[float, list]:
    hits, estimates = 0, []
    for _ in range(repeats):
        truth, effect = test_set(rng)
        per_image = {m: {"mask_counts": simulated_config(rng, truth, effect, d, seeds, seed_sd)}
                     for m, d in (("a", planted), ("b", 0.0))}
        result = compare_scores(per_image, 500, 0)["miou"]
        hits += result.best == "a" and result.vs_best["b"].significant
        c = result.vs_best["b"] if result.best == "a" else result.vs_best["a"]
        estimates.append((stats.seeds_needed(c), c))
    return hits / repeats, estimates


def seeds_needed_calibration(repeats: int, planted: float = 0.12, seed_sd: float = 0.3) -> None:
    """The estimate from a 3-seed pilot against the seeds at which the simulation reached 80% power."""
    rng = np.random.default_rng(13)
    _, pilots = significant_share(rng, planted, 3, repeats, seed_sd)
    estimates = [e for e, _ in pilots]
    finite = [e for e in estimates if e is not None]
    true_diff = float(np.mean([abs(c.diff) for _, c in pilots]))  # the pilots' mean |difference|: near the true one
    at_true = [stats.seeds_needed(replace(c, diff=true_diff)) for _, c in pilots]
    at_true = float(np.median([e for e in at_true if e is not None]))
    estimate = float(np.median(finite)) if finite else float("nan")
    needed, powers = None, []
    for seeds in (2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 25, 30):
        power, _ = significant_share(rng, planted, seeds, repeats, seed_sd)
        powers.append(f"{seeds}: {power:.2f}")
        if power >= 0.8:
            needed = seeds
            break
    print(f"  planted {planted} logit, seed sd {seed_sd}: power by seeds {', '.join(powers)}")
    print(f"  seeds needed: pilot (3 seeds) median estimate {estimate:.1f} (quartiles "
          f"{np.percentile(finite, 25):.0f}-{np.percentile(finite, 75):.0f}, none {estimates.count(None)}/{repeats}); "
          f"simulation reached 80% at {needed}; ratio {estimate / needed if needed else float('nan'):.2f} (target 1/1.5-1.5); "
          f"with the pilots' variances but the mean |difference| {true_diff:.4f}: {at_true:.1f}")


def calibration_table(repeats: int) -> None:
    """Every statement of the summary against its target (tests/test_stats.py asserts the same on fewer repeats)."""
    from simulation import benchmark_trials, round_medians

    from segbench.keys import LatencyKey
    from segbench.report.cost_tests import latency_estimate, welch
    from segbench.timing import combined_summary

    def share(values) -> float:
        values = list(values)
        return float(np.mean(values)) if values else float("nan")

    def latency(ms, rounds, rng):
        s = combined_summary(LatencyKey("cpu"), round_medians(ms, rounds, rng))
        return latency_estimate(s["latency_cpu_ms"], s["latency_cpu_ci95_low_ms"], s["latency_cpu_ci95_high_ms"], rounds)

    def tied_low(margins):
        out = []
        for per in benchmark_trials(margins, 3, repeats, 1000, seed=11):
            r = compare_scores(per, 1000)["miou"]
            out += [r.p_best[m] < 0.01 for m in r.best_set - {r.best} if r.tied_with_best(m)]
        return f"{share(out):.3f} of {len(out)} members"
    rows = [
        ("interval coverage, 3 seeds (>= 0.93)", share(not stats.compare(*t).significant
                                                        for t in calibration_trials(0.0, 3, repeats, 1000))),
        ("5 identical models: any called worse (<= 0.05)", share(
            any(v == "worse" for v in compare_scores(p, 1000)["miou"].verdicts.values())
            for p in benchmark_trials([0.0] * 5, 3, repeats, 1000))),
        ("2 identical models: lower P(best) <= 2.5% (<= 0.06)", share(
            stats.prob_best([a, b], [ab, bb], True).min() <= 0.025
            for a, b, ab, bb in calibration_trials(0.0, 3, repeats, 1000))),
        ("true best in the plausibly-best set, 4 models (>= 0.95)", share(
            "m0" in compare_scores(p, 1000)["miou"].best_set for p in benchmark_trials([0.3, 0.25, 0.1, 0.0], 3, repeats, 1000))),
        ("members tied with the best with P(best) < 1%, 2 models (0)", tied_low([0.3, 0.2])),
        ("  the same, 4 models (not a property of P(best) over k > 2)", tied_low([0.3, 0.25, 0.1, 0.0])),
    ]
    rng = np.random.default_rng(3)
    rows += [("identical latency distributions, 6 rounds: same cost (>= 0.95)",
              share(not welch(latency(10, 6, rng), latency(10, 6, rng)).significant for _ in range(repeats))),
             ("20% slower over 6 rounds: found (>= 0.8)",
              share(welch(latency(12, 6, rng), latency(10, 6, rng)).low > 0 for _ in range(repeats)))]
    print(f"calibration table: {repeats} repeats each, 3 seeds, 80 test images, 1000 resamples; rounds spread 0.08 (log)")
    for label, value in rows:
        print(f"  {label:<66} {value if isinstance(value, str) else f'{value:.3f}'}")
    seeds_needed_calibration(max(repeats // 3, 50), seed_sd=0.15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=7)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--images", type=int, default=80)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--only-diff", action="store_true", help="only the `segbench diff` calibration")
    parser.add_argument("--only-k", action="store_true", help="only the k-model calibration (set, verdicts, seeds)")
    parser.add_argument("--margin", type=float, default=0.01, help="plot.equivalence_margin")
    parser.add_argument("--table", action="store_true", help="only the calibration table of every summary statement")
    parser.add_argument("--only-speed", action="store_true", help="only the plot stage's statistics, timed")
    args = parser.parse_args()
    if args.only_speed or args.table:
        return speed(args) if args.only_speed else calibration_table(args.repeats)
    if args.only_diff:
        print_diff_calibration(args.repeats)
        return
    if args.only_k:
        print_k_calibration(args)
        return
    speed(args)
    print(f"calibration: {args.repeats} independent repeats, 80 images, 1000 resamples each")
    for margin, seeds in ((0.0, 3), (0.0, 5), (0.0, 1), (0.15, 3), (0.3, 3)):
        start = time.perf_counter()
        share = calibration(margin, seeds, args.repeats, 1000)
        print(f"  margin {margin:<4} seeds {seeds}: tied {share['tied']:.3f}, found better {share['better']:.3f}, "
              f"image bootstrap alone tied {share['image_only_tied']:.3f} ({time.perf_counter() - start:.1f} s)")
    print_diff_calibration(args.repeats)
    print_k_calibration(args)


def print_k_calibration(args) -> None:
    start = time.perf_counter()
    print(f"k-model calibration: {args.repeats} repeats (80 test images unless said)")
    k_model_calibration(args.repeats, args.margin)
    equivalence_calibration(max(args.repeats // 5, 20), args.margin)
    seeds_needed_calibration(max(args.repeats // 3, 50))
    print(f"  ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
