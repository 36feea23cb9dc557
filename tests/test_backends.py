"""Deployment backends in the profile stage: agreement with eager fp32, failures recorded instead of
raised, only the listed backends run, and the report's fastest-backend column."""
from __future__ import annotations

import json

import pytest
import torch
from fake_run import edit_json, fake_run, run_cli
from torch import nn

import segbench.backends as backends
import segbench.keys as keys
from segbench import profile as prof
from segbench.config import ProfileConfig
from segbench.errors import ConfigError
from segbench.schema import parse

FAST = {"warmup": 1, "min_runs": 3, "max_runs": 5, "time_budget_s": 0.3, "device": "cpu", "quiet_wait_s": 0, "threads": 1,
        "batch_size": 1, "rounds": 1, "max_rounds": 1}


def profiled(model, size, **options):
    """segbench.profile.profile with FAST settings, `options` overriding them."""
    return prof.profile(model, size, ProfileConfig(**{**FAST, **options}))


class TinyNet(nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.conv(x)}


class SpectralNet(TinyNet):
    """An FFT in the graph: the ONNX exporter has no fft_fft2."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.conv(torch.fft.fft2(x).real)}


def test_onnxruntime_agrees_with_eager_and_is_timed_at_every_size():
    result = profiled(TinyNet().eval(), (16, 16), input_sizes=[(24, 32)], backends=("eager", "onnxruntime"))
    assert result["backend_errors"] == {}
    for suffix in ("", "_24x32"):
        assert result[f"latency_cpu_onnxruntime{suffix}_ms"] > 0
        assert result[f"argmax_agreement_cpu_onnxruntime{suffix}"] == 1.0
        assert result[f"max_abs_diff_cpu_onnxruntime{suffix}"] < 1e-4
    assert result["setup_onnxruntime_s"] > 0
    assert result["gmacs"] == pytest.approx(result["gflops"] / 2)


def test_a_model_onnx_cannot_export_records_the_reason_and_the_stage_goes_on():
    result = profiled(SpectralNet().eval(), (16, 16), input_sizes=[], backends=("eager", "onnxruntime"))
    reason = result["backend_errors"]["onnxruntime"]
    assert "fft" in reason and "\n" not in reason
    assert not [k for k in result if "onnxruntime" in k and k != "backend_errors"]
    assert result["latency_cpu_ms"] > 0  # eager is measured as ever
    json.dumps(result)


def test_a_perturbed_backend_output_is_caught(monkeypatch):
    def perturbed(model, x, threads):  # answers like onnxruntime would, with a few pixels' classes flipped
        def run(inputs):
            logits = model(inputs)["out"].clone()
            logits[:, :, :2, :] = -logits[:, :, :2, :]
            return logits
        return run

    monkeypatch.setitem(backends._BUILDERS, "onnxruntime", perturbed)
    result = profiled(TinyNet().eval(), (16, 16), input_sizes=[], backends=("eager", "onnxruntime"))
    assert result["argmax_agreement_cpu_onnxruntime"] < 0.999
    assert result["max_abs_diff_cpu_onnxruntime"] > 0.01
    reference = torch.randn(1, 3, 4, 4)
    assert backends.agreement(reference, reference) == {"max_abs_diff": 0.0, "argmax_agreement": 1.0}
    flipped = reference.clone()
    flipped[0, :, 0, 0] = -flipped[0, :, 0, 0] + 10 * (flipped[0, :, 0, 0].argmax() != torch.arange(3))
    assert backends.agreement(reference, flipped)["argmax_agreement"] == pytest.approx(15 / 16)


def test_only_the_listed_backends_run(monkeypatch):
    called = []
    for name in ("eager_bf16", "compile", "onnxruntime"):
        monkeypatch.setitem(backends._BUILDERS, name, lambda *a, name=name: called.append(name))
    result = profiled(TinyNet().eval(), (16, 16), input_sizes=[], backends=("eager",))
    assert called == [] and "backend_errors" not in result
    assert not [k for k in result if any(t in k for t in ("onnxruntime", "compile", "bf16"))]


def test_eager_bf16_runs_only_on_a_cpu_with_native_bf16(monkeypatch):
    import segbench.runtime as runtime

    monkeypatch.setattr(runtime, "cpu_features", lambda: ["avx2", "fma"])
    result = profiled(TinyNet().eval(), (16, 16), input_sizes=[], backends=("eager", "eager_bf16"))
    assert "no native bf16" in result["backend_errors"]["eager_bf16"] and "latency_cpu_bf16_ms" not in result
    monkeypatch.setattr(runtime, "cpu_features", lambda: ["amx_bf16"])
    result = profiled(TinyNet().eval(), (16, 16), input_sizes=[], backends=("eager", "eager_bf16"))
    assert result["latency_cpu_bf16_ms"] > 0 and result["argmax_agreement_cpu_bf16"] > 0.5


@pytest.mark.parametrize("value, needle", [(["onnxruntime"], "lacks eager"), (["eager", "tensorrt"], "tensorrt"),
                                           (["eager", "compile", "compile"], "listed twice")])
def test_bad_backend_lists_are_one_line_errors(value, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        parse(ProfileConfig, {"backends": value}, "profile")
    assert "\n" not in str(info.value)


def test_summary_names_the_fastest_backend_that_agrees(tmp_path):
    import pandas as pd

    fake_run(tmp_path)
    edits = {"big": {"latency_cpu_onnxruntime_ms": 8.0, "argmax_agreement_cpu_onnxruntime": 1.0, "backend_errors": {}},
             "small": {"latency_cpu_onnxruntime_ms": 0.5, "argmax_agreement_cpu_onnxruntime": 0.9, "backend_errors": {}},
             "twin": {"backend_errors": {"onnxruntime": "UnsupportedOperatorError: fft_fft2"}}}
    for model, changes in edits.items():
        edit_json(tmp_path / "metrics" / model / "profile.json", changes)
    params = {"seeds": [0, 1, 2], "models": {m: {"arch": "unet"} for m in ("big", "small", "twin", "worse")},
              "plot": {"dpi": 50, "bootstrap": 200}}
    run_cli(tmp_path, params, "plot")

    summary = pd.read_csv(tmp_path / "plots" / "summary.csv", keep_default_na=False).set_index("model")
    assert summary.loc["big", "fastest_cpu_backend"] == "onnxruntime"
    assert summary.loc["big", "fastest_cpu_speedup"] == pytest.approx(20.0 / 8.0)
    assert summary.loc["small", "fastest_cpu_backend"] == "eager"  # faster, but it changes the answer
    md = (tmp_path / "plots" / "summary.md").read_text()
    assert "Backend onnxruntime not measured for twin: UnsupportedOperatorError: fft_fft2." in md
    assert "| fastest CPU backend | speed-up vs eager fp32 |" in md
    latency = pd.read_csv(tmp_path / "plots" / "miou_vs_latency_cpu.csv")
    assert any("onnxruntime" in s for s in latency["setting"].unique())  # a panel of its own


def test_every_configurable_backend_has_an_implementation():
    assert set(backends._BUILDERS) == set(backends.BACKENDS) == set(keys.BACKEND_TAGS)


def test_a_model_that_ignores_its_input_runs_on_onnxruntime():
    """The prior baseline: the exported graph has no input at all."""
    from segbench.models import build_model

    prior = build_model("prior_baseline", 3).eval()
    result = profiled(prior, (16, 16), input_sizes=[], backends=("eager", "onnxruntime"))
    assert result["backend_errors"] == {} and result["argmax_agreement_cpu_onnxruntime"] == 1.0
