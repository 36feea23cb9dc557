"""Command line: one sub-command per pipeline stage, plus tools.

    segbench download | preprocess | train MODEL SEED | evaluate MODEL SEED | aggregate MODEL | profile MODEL | plot
    segbench check                 validate params.yaml and exit
    segbench generate OUT ...      write a synthetic dataset anywhere
    segbench html-template [OUT]   write the offline page `dvc plots show` fills (the plot stage does too)

The DVC stage scripts in stages/ call these. A user mistake (SegbenchError) becomes one line
on stderr and exit code 2; anything else is our bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import paths
from .errors import SegbenchError


def _params(args):
    from .config import load_params

    return load_params(args.params)


def cmd_check(args) -> None:
    params = _params(args)
    print(f"{args.params}: ok ({len(params.models)} models: {', '.join(params.models)})")
    print(environment_check(list(params.models)))


def environment_check(models: list[str]) -> str:
    """One line: does this machine match the environment the metrics in metrics/ were made in?"""
    from .environment import describe_env, env_differences, environment_id, fingerprint, is_fingerprint
    from .io import read_json

    here = fingerprint()
    made: dict[str, tuple[dict, list[str]]] = {}
    for model in models:
        for part in paths.METRIC_PARTS:
            path = paths.metrics_path(model, part)
            try:
                env = read_json(path).get("env") if path.is_file() else None
            except (SegbenchError, AttributeError):
                continue
            envs = env["per_seed"].values() if isinstance(env, dict) and "per_seed" in env else [env]
            for e in filter(is_fingerprint, envs):
                made.setdefault(environment_id(e), (e, []))[1].append(str(path))
    if not made:
        return f"environment: {here['id']} ({describe_env(here)}); no metrics in {paths.METRICS_DIR} to compare with"
    differ = {env_id: env_differences(env, here) for env_id, (env, _) in made.items()}
    if not any(differ.values()):
        return f"environment: {here['id']}, the same as the one that made {paths.METRICS_DIR}/ ({describe_env(here)})"
    env_id, (env, files) = next((i, made[i]) for i, d in differ.items() if d)
    return (f"environment: this machine differs from the one that made {files[0]}"
            f"{f' and {len(files) - 1} other metrics files' if len(files) > 1 else ''} "
            f"({'; '.join(d.replace(' vs ', ' there, ') + ' here' for d in differ[env_id])}): a re-run will not "
            f"reproduce their timings, and quality may differ in the last digits")


def cmd_download(args) -> None:
    from .data.download import download

    params = _params(args)
    record = download(params, paths.RAW_DIR)
    if record is None:
        print(f"generated the {params.data.dataset} dataset into {paths.RAW_DIR}")
    elif "url" in record:
        print(f"downloaded {record['url']} (sha256 ok), extracted {record['files']} files into {paths.RAW_DIR}")
    else:
        print(f"using {record['path']} in place ({record['files']} files, {record['bytes'] / 1e6:.1f} MB); "
              f"fingerprint in {paths.RAW_DIR / 'source.json'}")


def cmd_preprocess(args) -> None:
    import time

    from .data.preprocess import preprocess

    start = time.perf_counter()
    manifest = preprocess(_params(args), paths.RAW_DIR, paths.PROCESSED_DIR)
    carved = [s for s in ("test", "val") if manifest.get(f"{s}_from_train")]
    made = f" ({' and '.join(carved)} carved from train)" if carved else ""
    for split, count in manifest["unlabelled_splits"].items():
        print(f"{split}: {count} images without masks: not evaluated (nothing to score them against)")
    print(f"preprocessed {manifest['dataset']} {manifest['splits']}{made} at {manifest['image_size']} into "
          f"{paths.PROCESSED_DIR} in {time.perf_counter() - start:.1f} s")


def cmd_train(args) -> None:
    from .distributed import inside_torchrun, process_group, run_under_torchrun
    from .engine import train_and_save

    params = _params(args)
    spec = params.model(args.model)
    seed = params.seed_of(args.seed)
    if spec.train.launcher == "torchrun" and not inside_torchrun():
        from .data.dataset import load_manifest

        load_manifest(paths.PROCESSED_DIR)  # a missing cache is one line here, not one per rank
        code = run_under_torchrun(spec.train.nproc, ["--params", args.params, "train", args.model, str(seed)])
        if code:
            raise SystemExit(code)
        return
    with process_group(spec.train.device) as dist:
        metrics = train_and_save(spec, paths.PROCESSED_DIR, paths.checkpoint_path(args.model, seed), seed=seed,
                                 log_dir=paths.train_log_dir(args.model, seed), augmentation=params.augmentation,
                                 metrics_path=paths.seed_metrics_path(args.model, seed, "train"), dist=dist)
    if dist.is_main:
        if metrics["contention"]["contended"]:
            from .environment import contention_warning

            print(contention_warning(metrics["contention"], f"training {args.model} seed {seed}"), file=sys.stderr)
        ranks = f" on {dist.world_size} processes" if dist.world_size > 1 else ""
        depth = f", depth RMSE {metrics['best_val_depth_rmse']:.3f} m" if "best_val_depth_rmse" in metrics else ""
        print(f"{args.model} seed {seed}: best val mIoU {metrics['best_val_miou']:.4f}{depth} at epoch {metrics['best_epoch']} "
              f"in {metrics['train_time_s']:.1f} s{ranks}")


def cmd_evaluate(args) -> None:
    from . import model_figures as figures
    from .evaluate import evaluate_checkpoint
    from .io import save_npz, write_json
    from .report_figures import save

    params = _params(args)
    params.model(args.model)
    seed = params.seed_of(args.seed)
    cfg = params.evaluate
    result = evaluate_checkpoint(paths.checkpoint_path(args.model, seed), paths.PROCESSED_DIR, cfg.split, cfg.batch_size,
                                 params.train.device, samples=cfg.samples, ap_bins=cfg.ap_bins)
    save_npz(paths.per_image_path(args.model, seed), confusion=result.confusion.matrix.numpy(),
             class_names=result.class_names, **result.per_image)
    save(figures.predictions_figure(result.samples, result.class_names, f"first validation images (seed {seed})"),
         paths.seed_predictions_png(args.model, seed), params.plot.dpi)
    write_json(paths.seed_metrics_path(args.model, seed, "eval"), result.report)
    note = "" if result.report["split_source"] == "the dataset's own" else f" ({result.report['split_source']})"
    depth = ""
    if "depth_rmse" in result.report:
        depth = (f", depth RMSE {result.report['depth_rmse']:.3f} m (mean-depth predictor "
                 f"{result.report['depth_rmse_mean_baseline']:.3f} m)")
    print(f"{args.model} seed {seed}: {result.split} mIoU {result.report['miou']:.4f}, mAP {result.report['map']:.4f}"
          f"{depth}{note}")


def cmd_aggregate(args) -> None:
    from .aggregate import aggregate_model

    params = _params(args)
    params.model(args.model)
    summary = aggregate_model(args.model, params.seeds, dpi=params.plot.dpi)
    miou = summary["eval"]["miou"]
    spread = (f" +- {miou['ci95_high'] - miou['mean']:.4f} (95% CI over {miou['n']} seeds)" if miou["n"] > 1
              else " (1 seed: no interval)")
    print(f"{args.model}: test mIoU {miou['mean']:.4f}{spread}")


def cmd_profile(args) -> None:
    import re

    from .checkpoint import load_checkpoint
    from .io import write_json
    from .profile import profile
    from .runtime import resolve_device

    params = _params(args)
    params.model(args.model)
    cfg = params.profile
    # Cost does not depend on the training seed: the first seed's checkpoint is profiled.
    model, ckpt = load_checkpoint(paths.checkpoint_path(args.model, params.seeds[0]))
    result = profile(model, tuple(ckpt["image_size"]), input_sizes=cfg.input_sizes, batch_size=cfg.batch_size,
                     threads=cfg.threads, warmup=cfg.warmup, min_runs=cfg.min_runs, max_runs=cfg.max_runs,
                     time_budget_s=cfg.time_budget_s, cuda=resolve_device(cfg.device).type == "cuda",
                     amp_dtype=cfg.amp_dtype, quiet_wait_s=cfg.quiet_wait_s, backends=cfg.backends)
    write_json(paths.metrics_path(args.model, "profile"), result)
    if not result.get("started_quiet", True):
        print(f"segbench: warning: the machine stayed busy for {result['quiet_wait_s']:.0f} s (profile.quiet_wait_s); "
              f"profiling {args.model} anyway", file=sys.stderr)
    if result["contention"]["contended"]:
        from .environment import contention_warning

        print(contention_warning(result["contention"], f"profiling {args.model}"), file=sys.stderr)
    others = "".join(f", {key[len('latency_cpu_'):-3]} {value:.1f} ms ({result[key[:-3] + '_stop_reason']})"
                     for key, value in result.items() if re.fullmatch(r"latency_cpu_\d+x\d+_ms", key))
    print(f"{args.model}: {result['params']:,} params, {result['threads']} threads, CPU latency "
          f"{result['latency_cpu_ms']:.2f} ms ({result['latency_cpu_stop_reason']}){others}, "
          f"{result['throughput_cpu_ips']:.1f} images/s at batch {cfg.batch_size}")
    for backend, reason in result.get("backend_errors", {}).items():
        print(f"{args.model}: backend {backend} not measured: {reason}")


def cmd_plot(args) -> None:
    from .html_template import write_template
    from .report import build_report

    params = _params(args)
    df = build_report(paths.METRICS_DIR, paths.PLOTS_DIR, list(params.models), params.seeds, dpi=params.plot.dpi,
                      resamples=params.plot.bootstrap, bootstrap_seed=params.plot.bootstrap_seed)
    write_template()
    print(df[["pareto", "miou", "miou_vs_best", "train_time_s", "latency_cpu_ms", "size_mb"]].to_string(
        float_format=lambda v: f"{v:.4g}"))
    for line in paths.summary_md().read_text(encoding="utf-8").splitlines():
        if line.startswith("⚠"):  # mixed environments, contended timings, unconverged models
            print(line)
    print(f"wrote {paths.summary_md()} and the report's plots; `dvc plots show` renders them offline")


def cmd_html_template(args) -> None:
    from .html_template import write_template

    print(f"wrote {write_template(Path(args.out))} (the page `dvc plots show` fills; plots.html_template in .dvc/config)")


def cmd_generate(args) -> None:
    from .data.sources.synthetic import generate

    generate(Path(args.out), seed=args.seed, sizes={"train": args.train, "val": args.val, "test": args.test},
             height=args.size[0], width=args.size[1], num_classes=args.classes)
    print(f"wrote synthetic dataset to {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segbench", description="Reproducible segmentation benchmarks (PyTorch + DVC).")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="validate the params file").set_defaults(fn=cmd_check)
    sub.add_parser("download", help="stage: fetch or generate the raw dataset").set_defaults(fn=cmd_download)
    sub.add_parser("preprocess", help="stage: decode + resize into the cache").set_defaults(fn=cmd_preprocess)
    for name, fn, what in (("train", cmd_train, "train one model with one seed"),
                           ("evaluate", cmd_evaluate, "score one model's checkpoint of one seed"),
                           ("aggregate", cmd_aggregate, "summarise one model's seeds (mean, sd, 95%% CI)"),
                           ("profile", cmd_profile, "measure one model's cost")):
        p = sub.add_parser(name, help=f"stage: {what}")
        p.add_argument("model", help="a key of models: in the params file")
        if name in ("train", "evaluate"):
            p.add_argument("seed", help="a training seed listed in seeds: in the params file")
        p.set_defaults(fn=fn)
    sub.add_parser("plot", help="stage: cross-model tables and plots").set_defaults(fn=cmd_plot)
    tpl = sub.add_parser("html-template", help="write the offline page template `dvc plots show` uses (no CDN)")
    tpl.add_argument("out", nargs="?", default="plots/report_template.html")
    tpl.set_defaults(fn=cmd_html_template)
    gen = sub.add_parser("generate", help="write a synthetic dataset (the embedded default) to a folder")
    gen.add_argument("out")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--train", type=int, default=320)
    gen.add_argument("--val", type=int, default=80)
    gen.add_argument("--test", type=int, default=80)
    gen.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    gen.add_argument("--classes", type=int, default=6)
    gen.set_defaults(fn=cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except SegbenchError as exc:
        print(f"segbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("segbench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a machine failure (worker killed, out of memory, disk full) is one line too
        from .errors import explain

        known = explain(exc)
        if known is None:
            raise  # our bug: keep the traceback
        print(f"segbench: error: {known}", file=sys.stderr)
        return 2
    return 0
