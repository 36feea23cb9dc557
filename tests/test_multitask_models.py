"""task seg_depth: (logits, depth) outputs, separate vs shared depth decoders, depth statistics, errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from segbench.config import params_from_dict
from segbench.errors import ConfigError, DataError
from segbench.models import build_model, set_depth_statistics
from segbench.models.multitask import DepthHead

NUM_CLASSES = 4
# arch -> (small options, state_dict prefixes of encoder, segmentation decoder, segmentation head)
ARCHS = {
    "unet": ({"base_channels": 4}, ("inc.", "downs."), ("ups.",), ("head.",)),
    "unet_lean": ({"base_channels": 4}, ("inc.", "downs."), ("ups.",), ("head.",)),
    "resnet_unet": ({}, ("encoder.",), ("blocks.",), ("head.",)),
}
CASES = [(arch, mode) for arch in ARCHS for mode in ("separate", "shared")]
SIZES = [(32, 32), (37, 45), (8, 8)]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run on one thread


def build(arch: str, mode: str | None, **extra) -> nn.Module:
    """mode None: segmentation only; else seg_depth with that depth_decoder."""
    options = {**ARCHS[arch][0], **extra}
    if mode is None:
        return build_model(arch, NUM_CLASSES, **options)
    return build_model(arch, NUM_CLASSES, task="seg_depth", depth_decoder=mode, **options)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def grads_by_part(model: nn.Module, prefixes: tuple[str, ...]) -> list[bool]:
    return [p.grad is not None and bool(p.grad.abs().sum() > 0)
            for name, p in model.named_parameters() if name.startswith(prefixes)]


def test_build_model_and_params_validation_refuse_a_task_with_the_same_message():
    """One task x architecture check: the architectures with a depth head come from the registry."""
    expected = ("deeplabv3.arch: deeplabv3 has no depth head, which task: seg_depth needs; "
                f"architectures with one: {', '.join(sorted(ARCHS))}")
    with pytest.raises(ConfigError) as built:
        build_model("deeplabv3", NUM_CLASSES, task="seg_depth")
    with pytest.raises(ConfigError) as validated:
        params_from_dict({"task": "seg_depth", "models": {"deeplabv3": {"arch": "deeplabv3"}}})
    assert str(built.value) == expected
    assert str(validated.value) == f"params.yaml: models.{expected}"


@pytest.mark.parametrize(("arch", "mode"), CASES)
def test_seg_depth_returns_logits_and_one_channel_depth_at_input_size(arch, mode):
    model = build(arch, mode).eval()
    with torch.no_grad():
        for h, w in SIZES:
            out = model(torch.randn(2, 3, h, w))
            assert isinstance(out, dict) and set(out) == {"out", "depth"}
            logits, depth = out["out"], out["depth"]
            assert logits.shape == (2, NUM_CLASSES, h, w)
            assert depth.shape == (2, 1, h, w) and depth.dtype == torch.float32


@pytest.mark.parametrize("arch", ARCHS)
def test_segmentation_task_returns_only_logits_without_depth_weights(arch):
    model = build(arch, None).eval()
    out = model(torch.randn(2, 3, 32, 32))
    assert set(out) == {"out"} and out["out"].shape == (2, NUM_CLASSES, 32, 32)
    assert not any(isinstance(m, DepthHead) for m in model.modules())
    assert not [k for k in model.state_dict() if k.startswith("depth")]


@pytest.mark.parametrize(("arch", "mode"), CASES)
def test_depth_branch_leaves_the_segmentation_weights_of_a_seed_unchanged(arch, mode):
    torch.manual_seed(0)
    seg_only = build(arch, None).eval()
    torch.manual_seed(0)
    both = build(arch, mode).eval()
    x = torch.randn(2, 3, 37, 45)
    with torch.no_grad():
        assert torch.equal(seg_only(x)["out"], both(x)["out"])


@pytest.mark.parametrize(("arch", "mode"), CASES)
def test_depth_loss_alone_trains_the_encoder_and_only_the_decoder_it_reads(arch, mode):
    _, encoder, decoder, head = ARCHS[arch]
    model = build(arch, mode).train()
    depth = model(torch.randn(2, 3, 37, 45))["depth"]
    depth.square().mean().backward()
    assert all(grads_by_part(model, encoder))
    assert all(grads_by_part(model, ("depth.",)))
    assert not any(grads_by_part(model, head))
    # separate: the depth loss never touches the segmentation decoder; shared: it trains it.
    assert all(grads_by_part(model, decoder)) == (mode == "shared")
    assert any(grads_by_part(model, decoder)) == (mode == "shared")


@pytest.mark.parametrize("arch", ARCHS)
def test_separate_decoder_has_its_own_weights_and_shared_adds_only_a_head(arch):
    seg, separate, shared = n_params(build(arch, None)), n_params(build(arch, "separate")), n_params(build(arch, "shared"))
    head = next(m for m in build(arch, "shared").modules() if isinstance(m, DepthHead))
    assert shared == seg + n_params(head)
    assert separate > shared
    decoder_params = sum(p.numel() for name, p in build(arch, None).named_parameters() if name.startswith(ARCHS[arch][2]))
    assert separate == shared + decoder_params


@pytest.mark.parametrize(("arch", "mode"), [("unet", "separate"), ("unet_lean", "shared")])
def test_depth_statistics_scale_and_shift_the_normalised_output(arch, mode):
    model = build(arch, mode).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        z = model(x)["depth"]
        set_depth_statistics(model, mean=5.0, std=2.0)
        depth = model(x)["depth"]
    assert torch.allclose(depth, 5.0 + 2.0 * z, atol=1e-5)
    state = model.state_dict()
    assert state["depth.head.mean"].item() == 5.0 and state["depth.head.std"].item() == 2.0

    fresh = build(arch, mode).eval()
    fresh.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(fresh(x)["depth"], depth)


def test_depth_head_starts_at_zero_mean_unit_std_and_rejects_bad_statistics():
    head = DepthHead(8)
    assert head.mean.item() == 0.0 and head.std.item() == 1.0
    assert {"mean", "std"} <= set(head.state_dict())
    for mean, std in [(1.0, 0.0), (1.0, -1.0), (float("nan"), 1.0), (1.0, float("inf"))]:
        with pytest.raises(DataError, match="std"):
            set_depth_statistics(head, mean, std)


def test_depth_stays_float32_under_autocast():
    model = build("unet_lean", "shared").eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        depth = model(torch.randn(1, 3, 32, 32))["depth"]
    assert depth.dtype == torch.float32


@pytest.mark.parametrize("arch", ["deeplabv3", "enet", "prior_baseline"])
def test_arch_without_depth_head_is_a_config_error_naming_those_with_one(arch):
    with pytest.raises(ConfigError) as info:
        build_model(arch, NUM_CLASSES, task="seg_depth")
    message = str(info.value)
    assert arch in message and "seg_depth" in message
    for name in ("unet", "unet_lean", "resnet_unet"):
        assert name in message


@pytest.mark.parametrize("task", ["depth", "", None, "Segmentation"])
def test_unknown_task_is_a_config_error(task):
    with pytest.raises(ConfigError, match="task: .* expected segmentation or seg_depth"):
        build_model("unet", NUM_CLASSES, task=task)


def test_bad_depth_decoder_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError) as info:
        build_model("unet", NUM_CLASSES, task="seg_depth", depth_decoder="both")
    for word in ("depth_decoder", "'both'", "separate", "shared"):
        assert word in str(info.value)


@pytest.mark.parametrize("mode", [None, "separate"])
def test_resnet34_encoder_builds_and_runs(mode):
    model = build("resnet_unet", mode, encoder="resnet34").eval()
    assert len(model.encoder.layer3) == 6  # resnet18 has 2
    with torch.no_grad():
        out = model(torch.randn(1, 3, 37, 45))
    logits = out["out"]
    assert logits.shape == (1, NUM_CLASSES, 37, 45)
    if mode is not None:
        assert out["depth"].shape == (1, 1, 37, 45)


def test_bad_encoder_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError) as info:
        build_model("resnet_unet", NUM_CLASSES, encoder="resnet50")
    for word in ("encoder", "resnet50", "resnet18", "resnet34"):
        assert word in str(info.value)


def test_pretrained_resnet34_reads_its_own_imagenet_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = torchvision.models.ResNet34_Weights.IMAGENET1K_V1.url
    path = tmp_path / "hub" / "checkpoints" / Path(url).name
    with pytest.raises(ConfigError, match="pretrained") as info:
        build_model("resnet_unet", NUM_CLASSES, encoder="resnet34", pretrained=True)
    assert str(path) in str(info.value)

    path.parent.mkdir(parents=True)
    saved = torchvision.models.resnet34(weights=None).state_dict()
    torch.save(saved, path)
    encoder = build_model("resnet_unet", NUM_CLASSES, encoder="resnet34", pretrained=True).encoder.state_dict()
    assert all(torch.equal(value, saved[key]) for key, value in encoder.items())
