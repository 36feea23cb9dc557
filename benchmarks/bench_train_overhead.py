"""What does segbench's training loop cost over a bare PyTorch loop?

    python benchmarks/bench_train_overhead.py [--epochs 4] [--images 96] [--size 64 64] [--batch 8]

Same model architecture and initial weights, same data and DataLoader settings, batch size,
loss, optimizer and thread count; epochs of segbench.engine.train_one_epoch and of a bare
loop alternate in one process. Prints images/s of each (wall time of whole epochs) and the
ratio segbench / bare (target: >= 0.97). A PyTorch Lightning row is added only if
`lightning` is importable. Asserts nothing.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from segbench.engine import train_one_epoch
from segbench.losses import Criterion, Term, build_loss
from segbench.models import build_model


def make_loader(args) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.images, 3, *args.size, generator=g)
    y = torch.randint(0, 6, (args.images, *args.size), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=args.batch, shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(0))


def bare_epoch(model: nn.Module, loader: DataLoader, loss_fn: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    model.train()
    images = 0
    for x, y in loader:
        loss = loss_fn(model(x)["out"], y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        images += x.shape[0]
    return images


def timed(fn) -> float:
    start = time.perf_counter()
    images = fn()
    return images / (time.perf_counter() - start)


def lightning_runner(model: nn.Module, loader: DataLoader, loss_fn: nn.Module, lr: float):
    try:
        import lightning as L
    except ImportError:
        return None

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def training_step(self, batch, _):
            x, y = batch
            return loss_fn(self.net(x)["out"], y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.net.parameters(), lr=lr)

    module = Module()

    def epoch() -> int:
        trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(module, loader)
        return len(loader) * loader.batch_size

    return epoch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs per method (after one warm-up epoch each)")
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="0: torch.get_num_threads()")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    args.size = tuple(args.size)
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base = build_model(args.arch, 6, **({"base_channels": 16} if args.arch == "unet" else {}))
    loader = make_loader(args)
    loss_fn = build_loss("cross_entropy", 255)
    device = torch.device("cpu")

    ours_model, bare_model = copy.deepcopy(base), copy.deepcopy(base)
    ours_opt = torch.optim.Adam(ours_model.parameters(), lr=args.lr)
    bare_opt = torch.optim.Adam(bare_model.parameters(), lr=args.lr)
    runners = {
        "segbench train_one_epoch": lambda: train_one_epoch(ours_model, loader, Criterion({"mask": Term(loss_fn)}), ours_opt,
                                                            device, 0).images,
        "bare PyTorch loop": lambda: bare_epoch(bare_model, loader, loss_fn, bare_opt),
    }
    lightning = lightning_runner(copy.deepcopy(base), loader, loss_fn, args.lr)
    if lightning is None:
        print("lightning is not importable: Lightning comparison skipped (pip install lightning to add it)")
    else:
        runners["PyTorch Lightning"] = lightning

    for run in runners.values():  # warm-up epoch each: allocator, oneDNN primitives
        run()
    rates: dict[str, list[float]] = {name: [] for name in runners}
    started = time.perf_counter()
    for _ in range(args.epochs):
        for name, run in runners.items():  # alternate so drift hits every method alike
            rates[name].append(timed(run))
    bare = statistics.median(rates["bare PyTorch loop"])
    print(f"training throughput, {args.arch} at {args.size[0]}x{args.size[1]}, batch {args.batch}, {args.images} images "
          f"per epoch, {threads} threads, {args.epochs} alternating epochs each ({time.perf_counter() - started:.0f} s)")
    print("| loop | median images/s | min | max | ratio to bare |")
    print("|---|---:|---:|---:|---:|")
    for name, values in rates.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.1f} | {min(values):.1f} | {max(values):.1f} | {med / bare:.3f} |")
    print("target: segbench / bare >= 0.97")


if __name__ == "__main__":
    main()
