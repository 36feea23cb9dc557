"""The training loop on a tiny cache: schedulers, early stopping, precision, determinism."""
import copy
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY_PARAMS, train_setting_error

import segbench.engine as engine
import segbench.training_run as training_run
from segbench.config import TrainConfig, params_from_dict
from segbench.data.preprocess import preprocess
from segbench.data.sources.synthetic import generate
from segbench.engine import train
from segbench.errors import ConfigError, TrainingError
from segbench.optim import build_scheduler
from segbench.state import Progress


def tiny_params(**train_overrides):
    raw = copy.deepcopy(TINY_PARAMS)
    raw["data"]["synthetic"].update(num_train=8, num_val=4, num_test=1, num_classes=4)
    raw["train"].update({"epochs": 1, "batch_size": 4, "lr": 0.01, "device": "cpu",
                         "threads": 1,  # tiny tensors: one thread is fastest and immune to a busy machine
                         **train_overrides})
    raw["models"] = {"unet": {"arch": "unet", "base_channels": 4}}
    return params_from_dict(raw)


@pytest.fixture(autouse=True)
def restore_threads():
    """train.threads sets a process-wide torch setting; give the rest of the session its own."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    params = tiny_params()
    root = tmp_path_factory.mktemp("tiny")
    cfg = params.data.synthetic
    generate(root / "raw", seed=params.seed, sizes={"train": cfg.num_train, "val": cfg.num_val, "test": cfg.num_test},
             height=cfg.height, width=cfg.width, num_classes=cfg.num_classes)
    preprocess(params, root / "raw", root / "processed", workers=1)
    return root / "processed"


def run(cache, log_dir=None, **train_overrides):
    params = tiny_params(**train_overrides)
    return train(params.model("unet"), cache, seed=params.seed, log_dir=log_dir)


def logged(log_dir, metric: str) -> list[float]:
    """The per-epoch values of `metric` in the run's train log (DVCLive's plots/metrics/<metric>.tsv)."""
    rows = (log_dir / "plots" / "metrics" / f"{metric}.tsv").read_text().splitlines()[1:]
    steps, values = zip(*(row.split("\t") for row in rows))
    assert list(steps) == [str(i) for i in range(len(rows))]  # one row per epoch, in order
    return [float(v) for v in values]


def scripted_validation(monkeypatch, mious):
    """Real training, but validation mIoU follows a script, so stopping decisions are exact."""
    script = iter(mious)

    def fake(*args, **kwargs):
        return SimpleNamespace(scores={"miou": next(script)}, losses={"loss": 0.1})

    monkeypatch.setattr(engine, "run_evaluation", fake)


def test_training_is_deterministic(cache, tmp_path):
    a, b = run(cache, tmp_path / "a", epochs=2), run(cache, tmp_path / "b", epochs=2)
    assert a.metrics["best_val_miou"] == b.metrics["best_val_miou"]
    losses = logged(tmp_path / "a", "train_loss")
    assert len(losses) == 2 and losses == logged(tmp_path / "b", "train_loss")
    assert losses[-1] == a.metrics["final_train_loss"]
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.metrics["stopped_early"] == 0 and a.metrics["epochs"] == 2
    assert a.metrics["peak_rss_mb"] > 10 and "cuda_peak_allocated_mb" not in a.metrics  # peak training memory (CPU)


def test_early_stopping_stops_and_records_it(cache, monkeypatch, tmp_path):
    scripted_validation(monkeypatch, [0.5, 0.6, 0.6, 0.55, 0.7, 0.8])
    result = run(cache, tmp_path, epochs=6, patience=2, scheduler="none")
    assert result.metrics["stopped_early"] == 1
    assert result.metrics["epochs"] == 4 and logged(tmp_path, "val_miou") == [0.5, 0.6, 0.6, 0.55]
    assert result.metrics["best_epoch"] == 2 and result.metrics["best_val_miou"] == 0.6


def test_patience_zero_never_stops(cache, monkeypatch):
    scripted_validation(monkeypatch, [0.5, 0.4, 0.3])
    result = run(cache, epochs=3, patience=0)
    assert result.metrics["stopped_early"] == 0 and result.metrics["epochs"] == 3


def test_running_out_of_patience_on_the_last_epoch_is_not_early(cache, monkeypatch):
    scripted_validation(monkeypatch, [0.5, 0.4])
    result = run(cache, epochs=2, patience=1)
    assert result.metrics["stopped_early"] == 0 and result.metrics["epochs"] == 2


@pytest.mark.parametrize("mious, converged, gain", [
    ([0.2, 0.4, 0.5, 0.55, 0.6, 0.62, 0.64, 0.66], False, 0.04 / 0.62),   # still rising in its last 2 epochs
    ([0.2, 0.5, 0.6, 0.61, 0.612, 0.611, 0.613, 0.612], True, 0.001 / 0.612),  # a plateau: +0.16%
    ([0.3, 0.5], False, None),                                            # too short to tell
])
def test_train_json_says_whether_training_had_plateaued(cache, monkeypatch, mious, converged, gain):
    scripted_validation(monkeypatch, mious)
    m = run(cache, epochs=len(mious), scheduler="none").metrics
    assert m["converged"] is converged and m["late_epochs"] == max(2, -(-len(mious) // 4))
    assert m["late_gain"] == (None if gain is None else pytest.approx(gain))


def test_early_stopping_is_a_plateau_and_lower_is_better_scores_count_the_other_way(cache, monkeypatch):
    scripted_validation(monkeypatch, [0.5, 0.6, 0.6, 0.55])
    assert run(cache, epochs=6, patience=2, scheduler="none").metrics["converged"] is True
    progress = Progress()
    for epoch, rmse in enumerate([3.0, 2.0, 1.5, 1.2, 1.0, 0.9], start=1):  # metres, still falling
        progress.record({"epoch": epoch, "val_depth_rmse": rmse}, True, None, 0, 6)
    result = progress.convergence("depth_rmse", higher_is_better=False)
    assert result["converged"] is False and result["late_gain"] == pytest.approx((1.2 - 0.9) / 1.2)


def stops(patience: int, improvements, last_epoch: int = 100) -> list[bool]:
    progress, seen = Progress(), []
    for epoch, improved in enumerate(improvements, start=1):
        progress.record({"epoch": epoch}, improved, None, patience, last_epoch)
        seen.append(progress.stopped_early)
    return seen


def test_early_stopping_counter():
    assert stops(2, (True, False, True, False, False)) == [False, False, False, False, True]
    assert not any(stops(0, [False] * 10))
    assert stops(1, (True, False), last_epoch=2) == [False, False]  # the last epoch is no early stop


def test_plateau_scheduler_gets_the_validation_miou(cache, monkeypatch, tmp_path):
    scripted_validation(monkeypatch, [0.5] * 5)
    run(cache, tmp_path, epochs=5, scheduler="plateau", lr=0.01)
    lrs = logged(tmp_path, "lr")
    # best at epoch 1, then 3 epochs without improvement > plateau patience 2: lr x 0.1 for epoch 5
    assert lrs[:4] == [0.01] * 4 and lrs[4] == pytest.approx(0.001)


def test_onecycle_steps_per_batch(cache, tmp_path):
    run(cache, tmp_path, epochs=2, scheduler="onecycle", lr=0.01)
    lrs = logged(tmp_path, "lr")
    assert lrs[0] == pytest.approx(0.01 / 25)  # OneCycleLR starts at max_lr / div_factor
    assert lrs[1] > lrs[0]  # warmed up within the first epoch's batches


def test_onecycle_schedule_covers_every_batch():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedule = build_scheduler(opt, TrainConfig(scheduler="onecycle", epochs=3, lr=0.1, optimizer="sgd"), steps_per_epoch=5)
    lrs = []
    for _ in range(3):
        for _ in range(5):
            lrs.append(opt.param_groups[0]["lr"])  # the lr this batch uses
            opt.step()
            schedule.after_batch()
        schedule.after_epoch(0.5)  # a no-op for per-batch schedules
    assert lrs[0] == pytest.approx(0.1 / 25) and max(lrs) > 0.09 and lrs[-1] < 1e-5


def test_weighted_ce_and_channels_last_train(cache):
    result = run(cache, epochs=1, loss="weighted_ce", class_weighting="median", channels_last=True)
    assert 0.0 <= result.metrics["best_val_miou"] <= 1.0
    conv = next(m for m in result.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous()  # the checkpoint keeps the default layout


@pytest.mark.parametrize("loss", ["focal", "jaccard", "ce_dice"])
def test_new_losses_train(cache, loss):
    result = run(cache, epochs=1, loss=loss, beta=0.7, focal_gamma=1.5)
    assert torch.isfinite(torch.tensor(result.metrics["final_train_loss"]))


def _cpu_bf16_autocast_works() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = torch.nn.functional.conv2d(torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3))
        return out.dtype == torch.bfloat16
    except (RuntimeError, TypeError):
        return False


@pytest.mark.skipif(not _cpu_bf16_autocast_works(), reason="this torch build has no bf16 autocast on CPU")
def test_bf16_trains_on_cpu(cache):
    result = run(cache, epochs=1, amp="bf16")
    assert 0.0 <= result.metrics["best_val_miou"] <= 1.0
    assert all(p.dtype == torch.float32 for p in result.model.parameters())  # autocast keeps float32 weights


def test_fp16_on_cpu_config_is_a_one_line_error():
    with pytest.raises(ConfigError) as info:
        tiny_params(amp="fp16", device="cpu")
    message = str(info.value)
    assert "fp16 needs CUDA" in message and "bf16 or off" in message and "\n" not in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only fallback of device: auto")
def test_fp16_when_auto_resolves_to_cpu_is_a_clear_error(cache):
    with pytest.raises(TrainingError, match="train.amp: fp16 needs CUDA but training runs on cpu; use amp: bf16 or off"):
        run(cache, amp="fp16", device="auto")


@pytest.mark.parametrize("key,value,needle", [
    ("patience", -1, "train.patience: -1 is out of range"),
    ("amp", "fp8", "train.amp: unknown value 'fp8'"),
    ("channels_last", "yes", "train.channels_last"),
    ("scheduler", "one_cycle", "did you mean 'onecycle'"),
])
def test_bad_training_settings_are_one_line_config_errors(key, value, needle):
    message = train_setting_error(key, value)
    assert needle in message and "\n" not in message


def test_channels_last_reaches_the_model(cache, monkeypatch):
    seen = []
    real_build = training_run.build_model

    def build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        model.register_forward_pre_hook(
            lambda mod, inputs: seen.append((mod.training, inputs[0].is_contiguous(memory_format=torch.channels_last))))
        return model

    monkeypatch.setattr(training_run, "build_model", build)
    run(cache, channels_last=True)
    training_calls = [cl for training, cl in seen if training]
    assert training_calls and all(training_calls)


@pytest.mark.parametrize("features, expected", [([], "off"), (["avx2", "fma"], "off"), (["avx2", "amx_bf16"], "bf16"),
                                                (["avx512_bf16"], "bf16")])
def test_amp_auto_uses_bf16_only_where_the_cpu_has_it_and_records_what_ran(cache, monkeypatch, features, expected):
    import segbench.runtime as runtime

    monkeypatch.setattr(runtime, "cpu_features", lambda: features)  # the machine's CPU flags, as /proc/cpuinfo lists them
    result = run(cache, amp="auto")
    assert result.metrics["amp"] == expected
    assert run(cache, amp="off").metrics["amp"] == "off"


def test_every_epoch_logs_its_cumulative_training_seconds(cache, tmp_path):
    result = run(cache, tmp_path / "log", epochs=2)
    elapsed = logged(tmp_path / "log", "elapsed_s")
    assert len(elapsed) == 2 and 0 < elapsed[0] < elapsed[1] <= result.metrics["train_time_s"]
    assert [row["elapsed_s"] for row in result.metrics.get("history", [])] in ([], elapsed)
