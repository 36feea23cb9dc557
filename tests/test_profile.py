"""segbench.profile: the timer measures the forward pass and nothing else, FLOPs and size are
exact, the adaptive stop is deterministic, and the keys follow the hardware present."""
from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import torch
from torch import nn

import segbench.latency as latency
import segbench.profile as prof
import segbench.timing as timing_module
from segbench import stats
from segbench.config import ProfileConfig
from segbench.errors import ConfigError, SegbenchError
from segbench.keys import LatencyKey
from segbench.schema import parse

FAST = {"warmup": 1, "min_runs": 5, "max_runs": 10, "time_budget_s": 0.3, "device": "cpu", "quiet_wait_s": 0,
        "backends": ("eager",), "rounds": 1, "max_rounds": 1}


def profiled(model, size, **options):
    """segbench.profile.profile with FAST settings, `options` overriding them."""
    return prof.profile(model, size, ProfileConfig(**{**FAST, **options}))


class Sleeper(nn.Module):
    """A forward pass of known duration."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return x


class NeedsWideInput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] < 32:
            raise RuntimeError("input is too small\nsecond line of the message")
        return x


@pytest.mark.serial  # bounds a wall-clock time (5-7 ms for a 5 ms sleep): alone, after the parallel part
def test_latency_is_the_forward_pass_not_the_input_creation(monkeypatch):
    made = []
    real_make_input = latency.make_input

    def slow_make_input(*args, **kwargs):
        made.append(args)
        time.sleep(0.02)  # were it inside the timed region, the median would be >= 25 ms
        return real_make_input(*args, **kwargs)

    monkeypatch.setattr(latency, "make_input", slow_make_input)
    result = profiled(Sleeper(0.005), (16, 16), input_sizes=[], batch_size=2, warmup=1, min_runs=10,
                          max_runs=40, time_budget_s=2.0, device="cpu", quiet_wait_s=0)
    assert made, "inputs must come from make_input"
    assert 5.0 <= result["latency_cpu_ms"] <= 7.0
    assert result["latency_cpu_min_ms"] >= 5.0
    assert 2 / 0.007 <= result["throughput_cpu_ips"] <= 2 / 0.005


def test_a_quiet_wait_is_bounded_and_recorded():
    """profile.quiet_wait_s > 0: timing starts once the machine is quiet or after that many seconds
    (one more window at most), and the metrics say how long it waited and whether it was quiet."""
    result = profiled(nn.Conv2d(3, 4, 3, padding=1), (16, 16), input_sizes=[], quiet_wait_s=0.6)
    assert 0.5 <= result["quiet_wait_s"] < 0.6 + 0.5 + 1.0 and isinstance(result["started_quiet"], bool)
    assert "quiet_wait_s" not in profiled(nn.Conv2d(3, 4, 3, padding=1), (16, 16), input_sizes=[])  # FAST: 0, no wait


def test_keys_per_size_threads_and_no_cuda_keys_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = torch.get_num_threads()
    model = nn.Conv2d(3, 4, 3, padding=1)
    result = profiled(model, (16, 16), input_sizes=[(24, 40), (16, 16)], batch_size=3, threads=1,
                          device="auto")
    assert result["threads"] == 1 and torch.get_num_threads() == before
    for key in ("latency_cpu_ms", "latency_cpu_p90_ms", "latency_cpu_runs", "latency_cpu_stop_reason",
                "latency_cpu_24x40_ms", "latency_cpu_24x40_p90_ms", "latency_cpu_24x40_runs",
                "latency_cpu_24x40_stop_reason", "throughput_cpu_ips", "params", "size_mb", "gflops", "peak_rss_mb"):
        assert key in result, key
    assert not any(k.startswith("latency_cpu_16x16") for k in result)  # the training size keeps the plain keys
    assert result["latency_cpu_runs"] >= 3
    assert not [k for k in result if "cuda" in k]
    assert result["env"]["gpu"] is None and {"cpu", "cpu_features", "usable_cores", "torch", "id"} <= set(result["env"])
    assert {"other_cpu", "steal", "contended"} <= set(result["contention"])


def test_threads_zero_records_torch_default():
    result = profiled(nn.Conv2d(3, 2, 1), (8, 8), input_sizes=[], batch_size=1, threads=0)
    assert result["threads"] == torch.get_num_threads()


def test_default_sizes_are_training_size_then_750x1000():
    assert prof.resolve_sizes((64, 64), None) == [(64, 64), (750, 1000)]
    assert prof.resolve_sizes((64, 64), [[64, 64], [32, 48]]) == [(64, 64), (32, 48)]
    assert prof.resolve_sizes((64, 64), []) == [(64, 64)]


@pytest.mark.parametrize("cin,cout,k,stride,pad,h,w", [(3, 8, 3, 1, 1, 16, 20), (3, 4, 5, 2, 0, 17, 23)])
def test_conv_flops_match_closed_form(cin, cout, k, stride, pad, h, w):
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=True)
    h_out, w_out = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    # torch.utils.flop_counter counts 2 FLOPs per multiply-add and does not count the bias add.
    assert prof.count_flops(conv, (h, w)) == 2 * cin * cout * k * k * h_out * w_out


def test_size_mb_is_the_saved_state_dict_file(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.Conv2d(16, 5, 1))
    # Saved through a file object: torch.save(obj, "name.pt") names the zip's top folder after
    # the file stem, so the size by path shifts with the name's length (by ~200 B here).
    path = tmp_path / "weights.pt"
    with open(path, "wb") as fh:
        torch.save(model.state_dict(), fh)
    result = profiled(model, (16, 16), input_sizes=[], batch_size=1)
    assert result["size_mb"] * 1e6 == pytest.approx(path.stat().st_size, abs=0.5)
    assert result["params"] == sum(p.numel() for p in model.parameters())


def _ticks(step: float):
    return itertools.count(0.0, step).__next__


def test_adaptive_stop_stable_with_constant_times():
    timing = timing_module.measure(lambda: None, warmup=0, min_runs=5, max_runs=50, time_budget_s=100,
                          clock=lambda run: 0.010, now=_ticks(0.0))
    assert timing.stop_reason == "stable" and len(timing.times_ms) == 5


def test_adaptive_stop_max_runs_with_noisy_times():
    noisy = itertools.cycle([0.010, 0.020, 0.030]).__next__
    timing = timing_module.measure(lambda: None, warmup=0, min_runs=5, max_runs=12, time_budget_s=100,
                          clock=lambda run: noisy(), now=_ticks(0.0))
    assert timing.stop_reason == "max_runs" and len(timing.times_ms) == 12


def test_adaptive_stop_time_budget_after_at_least_three_runs():
    noisy = itertools.cycle([0.010, 0.020, 0.030]).__next__
    timing = timing_module.measure(lambda: None, warmup=0, min_runs=20, max_runs=100, time_budget_s=2.5,
                          clock=lambda run: noisy(), now=_ticks(1.0))
    assert timing.stop_reason == "time_budget" and len(timing.times_ms) == 5
    slow = timing_module.measure(lambda: None, warmup=0, min_runs=20, max_runs=100, time_budget_s=0.5,
                        clock=lambda run: noisy(), now=_ticks(10.0))
    assert slow.stop_reason == "time_budget" and len(slow.times_ms) == 3


def test_warmup_stops_at_half_the_budget():
    calls = []
    timing_module.measure(lambda: calls.append(1), warmup=10, min_runs=3, max_runs=3, time_budget_s=4.0,
                 clock=lambda run: 0.01, now=_ticks(1.0))
    assert len(calls) == 3  # warm-up ends once more than 2 s (half of 4) have passed; timed runs use the fake clock


def test_model_failing_at_a_size_is_one_line_naming_class_and_size():
    with pytest.raises(SegbenchError, match=r"NeedsWideInput.*16x16") as info:
        profiled(NeedsWideInput(), (32, 32), input_sizes=[(16, 16)], batch_size=1)
    assert "\n" not in str(info.value) and "input_sizes" in str(info.value)


def test_profile_config_input_sizes():
    assert parse(ProfileConfig, {}, "profile").input_sizes is None
    cfg = parse(ProfileConfig, {"input_sizes": [[750, 1000], [64, 64]], "batch_size": 4}, "profile")
    assert cfg.input_sizes == ((750, 1000), (64, 64)) and cfg.batch_size == 4
    with pytest.raises(ConfigError, match=r"profile\.input_sizes\[0\]"):
        parse(ProfileConfig, {"input_sizes": [[750]]}, "profile")
    with pytest.raises(ConfigError, match=r"profile\.input_sizes"):
        parse(ProfileConfig, {"input_sizes": [[4, 1000]]}, "profile")


# --- rounds: the interval covers the spread between processes ---------------------------------------------

def test_rounds_combine_to_the_geometric_mean_with_a_t_interval_over_their_medians():
    key = LatencyKey("cpu")
    rounds = [{key: timing_module.Timing(np.full(5, median), "stable")} for median in (10.0, 11.0, 12.1)]
    out = timing_module.combine_rounds(rounds)
    logs = np.log([10.0, 11.0, 12.1])
    half = stats.t_quantile(2) * logs.std(ddof=1) / np.sqrt(3)
    assert out["latency_cpu_ms"] == pytest.approx(np.exp(logs.mean()))
    assert out["latency_cpu_ci95_low_ms"] == pytest.approx(np.exp(logs.mean() - half))
    assert out["latency_cpu_ci95_high_ms"] == pytest.approx(np.exp(logs.mean() + half))
    assert out["latency_cpu_rounds"] == 3 and out["latency_cpu_runs"] == 15
    # every run of a round equal: its own interval is zero, but the rounds disagree, and the interval says so
    assert out["latency_cpu_ci95_low_ms"] < 10.0 and out["latency_cpu_ci95_high_ms"] > 12.1


def test_the_p90_is_never_below_the_median_when_rounds_have_unequal_runs():
    """A busy round stops at its few minimum runs, a quiet one runs many: pooled over runs, the p90 was
    the quiet round's and fell below the median (one per round). Combined per round, it cannot."""
    key = LatencyKey("cpu")
    rounds = [{key: timing_module.Timing(np.full(3, 50.0), "max_runs")},
              {key: timing_module.Timing(np.linspace(9.0, 11.0, 40), "stable")}]
    out = timing_module.combine_rounds(rounds)
    assert out["latency_cpu_p90_ms"] >= out["latency_cpu_ms"] >= out["latency_cpu_min_ms"] == 9.0
    assert out["latency_cpu_p90_ms"] == pytest.approx(np.sqrt(50.0 * np.percentile(np.linspace(9.0, 11.0, 40), 90)))


def test_one_round_falls_back_to_the_interval_of_its_median():
    key = LatencyKey("cpu", "", (48, 64))
    times = np.linspace(9.0, 11.0, 41)
    out = timing_module.combine_rounds([{key: timing_module.Timing(times, "stable")}])
    rel = timing_module.median_rel_ci(times)
    assert out["latency_cpu_48x64_ms"] == pytest.approx(10.0)
    assert out["latency_cpu_48x64_ci95_high_ms"] == pytest.approx(10.0 * (1 + rel))


def test_each_round_runs_in_its_own_process_and_more_rounds_come_while_the_interval_is_wide():
    result = profiled(nn.Conv2d(3, 2, 3), (16, 16), input_sizes=[(24, 32)], rounds=2, max_rounds=3, target_rel_ci=1e-9)
    assert result["rounds"] == 3 and result["rounds_stop_reason"] == "max_rounds"  # never that tight: up to max_rounds
    assert result["rounds_in_process"] is False
    for key in ("latency_cpu", "latency_cpu_24x32"):
        assert result[f"{key}_rounds"] == 3
        assert result[f"{key}_ci95_low_ms"] <= result[f"{key}_ms"] <= result[f"{key}_ci95_high_ms"]
    assert result["throughput_cpu_ips"] > 0


def test_a_model_a_worker_cannot_load_is_timed_here_round_by_round():
    class Local(nn.Module):  # a class defined in a function (as in a notebook cell): not picklable
        def forward(self, x):
            return {"out": x[:, :2]}

    result = profiled(Local(), (16, 16), input_sizes=[], rounds=2, max_rounds=2)
    assert result["rounds"] == 2 and result["rounds_in_process"] is True and result["latency_cpu_rounds"] == 2


def test_later_rounds_time_only_the_latencies_still_wider_than_the_target(monkeypatch):
    class Local(nn.Module):  # timed in this process, round by round, so the fake timer below applies
        def forward(self, x):
            return {"out": x[:, :2]}

    calls: list[tuple[int, ...]] = []

    def fake_time_forward(model, x, budget, clock=None, autocast=None):
        calls.append(tuple(x.shape))
        if x.shape[-1] == 32:  # 24x32: the same median every round, so precise after the first rounds
            return timing_module.Timing(np.full(5, 4.0), "stable")
        return timing_module.Timing(np.full(5, 1.0 + len(calls)), "stable")  # training size: a new median each round

    monkeypatch.setattr(latency, "_time_forward", fake_time_forward)
    result = profiled(Local(), (16, 16), input_sizes=[(24, 32)], rounds=2, max_rounds=4, target_rel_ci=0.05)
    assert result["rounds"] == 4 and result["rounds_stop_reason"] == "max_rounds"
    assert result["latency_cpu_rounds"] == 4  # still wide: timed in every round
    assert result["latency_cpu_24x32_rounds"] == 2  # precise after the first 2 rounds: not timed again
    assert result["latency_cpu_24x32_ms"] == pytest.approx(4.0)
    assert sum(shape == (1, 3, 24, 32) for shape in calls) == 2
