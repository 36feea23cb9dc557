"""Data-parallel training throughput on CPU: 1 vs N processes (gloo), and what each extra one costs.

    python benchmarks/bench_ddp.py [--procs 1 2] [--images 128] [--size 64 64] [--batch 16]
                                   [--epochs 3] [--arch unet] [--base-channels 16] [--threads 0] [--cuda]

Every configuration trains the same model (same seed) on the same random images with the same
global batch, through segbench's own pieces: DistributedSampler order, DDP, train_one_epoch, the
global batch split across processes and the machine's cores shared out among them (as
`train.launcher: torchrun` does). Per configuration it prints images/s over whole epochs after a
warm-up epoch, the speed-up and parallel efficiency against one process, the time of one gradient
all-reduce (what DDP adds per step) and each process's resident memory. With --cuda (and a GPU) it
adds one-GPU rows: fp32 against bf16 autocast. Asserts nothing; run on a quiet machine and compare
the ratios of one run, not figures across runs.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from segbench.distributed import usable_cores
from segbench.engine import train_one_epoch
from segbench.losses import Criterion, Term, build_loss
from segbench.models import build_model
from segbench.runtime import Precision


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dataset(args) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.images, 3, *args.size, generator=g)
    y = torch.randint(0, args.classes, (args.images, *args.size), generator=g)
    return TensorDataset(x, y)


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def worker(rank: int, world: int, port: int, args, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    threads = args.threads or max(1, usable_cores() // world)
    torch.set_num_threads(threads)
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = build_model(args.arch, args.classes, base_channels=args.base_channels)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    data = dataset(args)
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=args.batch // world, sampler=sampler, drop_last=True)
    loss_fn = Criterion({"mask": Term(build_loss("cross_entropy", 255))})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    device = torch.device("cpu")

    def epoch(e: int) -> float:
        sampler.set_epoch(e)
        if world > 1:
            dist.barrier()
        start = time.perf_counter()
        train_one_epoch(net, loader, loss_fn, optimizer, device, e)
        if world > 1:
            dist.barrier()
        return time.perf_counter() - start

    epoch(0)  # warm-up: allocator, oneDNN primitives, gloo connections
    times = [epoch(e) for e in range(1, args.epochs + 1)]
    grads = torch.zeros(sum(p.numel() for p in model.parameters()))
    sync = []
    if world > 1:  # one all-reduce of every gradient: what DDP adds per step (it overlaps part of it)
        for _ in range(10):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(grads)
            sync.append(time.perf_counter() - start)
    rss = torch.tensor([rss_mb()], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(rss)
        dist.destroy_process_group()
    if rank == 0:
        images = len(loader) * args.batch  # global images per epoch
        results.put({"procs": world, "threads": threads, "ips": images / statistics.median(times),
                     "step_ms": 1000 * statistics.median(times) / len(loader),
                     "sync_ms": 1000 * statistics.median(sync) if sync else 0.0, "rss_mb": float(rss) / world,
                     "params": grads.numel()})


def run_cpu(args, procs: int) -> dict:
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    mp.start_processes(worker, args=(procs, free_port(), args, results), nprocs=procs, join=True, start_method="spawn")
    return results.get()


def run_cuda(args, amp: bool) -> dict:
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build_model(args.arch, args.classes, base_channels=args.base_channels).to(device)
    data = dataset(args)
    loader = DataLoader(data, batch_size=args.batch, shuffle=True, drop_last=True)
    loss_fn = Criterion({"mask": Term(build_loss("cross_entropy", 255))}).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    precision = Precision("cuda", torch.bfloat16 if amp else None)
    times = []
    for e in range(args.epochs + 1):
        torch.cuda.synchronize()
        start = time.perf_counter()
        train_one_epoch(model, loader, loss_fn, optimizer, device, e, precision=precision)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"mode": "bf16 autocast" if amp else "fp32", "ips": len(loader) * args.batch / statistics.median(times[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64))
    parser.add_argument("--batch", type=int, default=16, help="global batch (split across processes)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0,
                        help="threads per process; 0: the cores shared out (segbench's policy under torchrun)")
    parser.add_argument("--cuda", action="store_true", help="also time one GPU, fp32 vs bf16 autocast")
    args = parser.parse_args()
    for n in args.procs:
        if args.batch % n:
            parser.error(f"--batch {args.batch} is not divisible by {n} processes")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {args.arch} (base_channels {args.base_channels}), {args.images} images {args.size[0]}x{args.size[1]}, "
          f"global batch {args.batch}, {args.epochs} timed epochs; {usable_cores()} cores, load {load:.2f}, "
          f"torch {torch.__version__}")
    rows = [run_cpu(args, n) for n in args.procs]
    base = next((r for r in rows if r["procs"] == 1), rows[0])
    print("| processes | threads each | images/s | speed-up | efficiency | step ms | all-reduce ms | RSS MB each |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        speedup = r["ips"] / base["ips"]
        print(f"| {r['procs']} | {r['threads']} | {r['ips']:.1f} | {speedup:.2f}x | {speedup / r['procs'] * base['procs']:.0%} "
              f"| {r['step_ms']:.1f} | {r['sync_ms']:.2f} | {r['rss_mb']:.0f} |")
    for r in rows:
        if r["procs"] > base["procs"]:
            extra = r["procs"] - base["procs"]
            lost = (base["ips"] * r["procs"] / base["procs"] - r["ips"]) / extra
            print(f"# each extra process: {lost:+.1f} images/s short of linear, {r['sync_ms']:.2f} ms of gradient "
                  f"all-reduce per step ({r['params']:,} floats), ~{r['rss_mb']:.0f} MB of memory")
    if args.cuda and torch.cuda.is_available():
        print(f"\n# one GPU: {torch.cuda.get_device_name()}, global batch {args.batch}")
        print("| precision | images/s |\n|---|---|")
        for amp in (False, True):
            r = run_cuda(args, amp)
            print(f"| {r['mode']} | {r['ips']:.1f} |")


if __name__ == "__main__":
    main()
