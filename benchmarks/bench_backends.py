"""Deployment backends side by side: CPU latency of each backend relative to eager fp32, its
set-up time and its agreement with eager fp32, per model, at the training size and 750x1000.

Models come from params/full.yaml (untrained weights: latency does not depend on them, and
agreement is checked on the same random input for every backend). Everything runs in one
process, one model after another, through segbench.profile.

    python benchmarks/bench_backends.py [--models unet enet deeplabv3_mobilenet_v3_small_aspp]
                                        [--backends eager eager_bf16 compile onnxruntime]

Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse

import torch

from segbench.config import ProfileConfig, load_params
from segbench.environment import describe_env, fingerprint
from segbench.models import build_model
from segbench.profile import profile

TAGS = {"eager_bf16": "bf16", "compile": "compile", "onnxruntime": "onnxruntime"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params/full.yaml")
    parser.add_argument("--models", nargs="+", default=["unet", "enet", "deeplabv3_mobilenet_v3_small_aspp"])
    parser.add_argument("--backends", nargs="+", default=["eager", "eager_bf16", "compile", "onnxruntime"])
    parser.add_argument("--time-budget", type=float, default=2.0)
    args = parser.parse_args()
    params = load_params(args.params)
    size = tuple(params.data.image_size)
    print(f"environment: {describe_env(fingerprint())}; threads {torch.get_num_threads()}")
    print(f"{'model':<36}{'backend':<13}{'size':<10}{'latency ms':>11}{'vs eager':>10}{'setup s':>9}"
          f"{'argmax agree':>14}{'max |diff|':>12}")
    for name in args.models:
        spec = params.model(name)
        torch.manual_seed(0)
        model = build_model(spec.arch, params.data.synthetic.num_classes, **spec.options).eval()
        result = profile(model, size, ProfileConfig(
            input_sizes=((750, 1000),), batch_size=1, threads=0, warmup=3, min_runs=10, max_runs=200,
            time_budget_s=args.time_budget, device="cpu", quiet_wait_s=0, backends=tuple(args.backends)))
        for suffix, label in (("", f"{size[0]}x{size[1]}"), ("_750x1000", "750x1000")):
            eager = result[f"latency_cpu{suffix}_ms"]
            print(f"{name:<36}{'eager':<13}{label:<10}{eager:>11.2f}{1.0:>9.2f}x")
            for backend in args.backends[1:] if args.backends[0] == "eager" else args.backends:
                if backend == "eager":
                    continue
                tag = TAGS[backend]
                if backend in result.get("backend_errors", {}):
                    if suffix == "":
                        print(f"{name:<36}{backend:<13}{'':<10}  not measured: {result['backend_errors'][backend]}")
                    continue
                latency = result[f"latency_cpu_{tag}{suffix}_ms"]
                print(f"{name:<36}{backend:<13}{label:<10}{latency:>11.2f}{eager / latency:>9.2f}x"
                      f"{result[f'setup_{tag}_s'] if suffix == '' else float('nan'):>9.1f}"
                      f"{result[f'argmax_agreement_cpu_{tag}{suffix}']:>14.5f}"
                      f"{result[f'max_abs_diff_cpu_{tag}{suffix}']:>12.2e}")
    print("vs eager: eager latency / backend latency (higher is faster); setup: export or compilation, all sizes")


if __name__ == "__main__":
    main()
