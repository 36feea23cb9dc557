"""Model zoo: exact sizes, any input size, gradients everywhere, clear option errors, offline weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from segbench.errors import ConfigError, DataError
from segbench.models import MODELS, build_model

# (arch, options): small widths where the default is slow; every registered arch appears.
CASES = [
    ("unet", {"base_channels": 4}),
    ("unet", {"base_channels": 4, "bilinear": True}),
    ("unet_lean", {"base_channels": 4}),
    ("fcn_baseline", {"base_channels": 4}),
    ("resnet_unet", {}),
    ("resnet_unet", {"skips": False}),
    ("enet", {}),
    ("esnet", {}),
    *(("deeplabv3", {"backbone": b, "aspp": a, "head_channels": 16})
      for b in ("resnet18", "vgg11_bn", "mobilenet_v3_small") for a in (True, False)),
    ("deeplabv3_resnet50", {}),
    ("fcn_resnet50", {}),
    ("lraspp_mobilenet_v3_large", {}),
    ("prior_baseline", {"grid_size": [8, 8]}),
]
CASE_IDS = [arch + "".join(f"-{k}={v}" for k, v in opts.items()) for arch, opts in CASES]
NUM_CLASSES = 5


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run on one thread


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def test_cases_cover_every_registered_arch():
    assert {arch for arch, _ in CASES} == set(MODELS.names())


@pytest.mark.parametrize(("arch", "expected"), [
    ("unet", 7_763_272),
    ("enet", 350_076),
    ("esnet", 1_658_356),
    ("deeplabv3_resnet50", 39_635_528),
])
def test_exact_parameter_count_for_8_classes(arch, expected):
    assert n_params(build_model(arch, 8)) == expected


def test_lean_unet_has_about_half_a_million_parameters():
    assert 400_000 <= n_params(build_model("unet_lean", 8)) <= 600_000


@pytest.mark.parametrize(("arch", "options"), CASES, ids=CASE_IDS)
def test_eval_logits_match_any_input_size(arch, options):
    model = build_model(arch, NUM_CLASSES, **options).eval()
    with torch.no_grad():
        for h, w in [(33, 47), (97, 131), (8, 9)]:
            assert model(torch.randn(1, 3, h, w))["out"].shape == (1, NUM_CLASSES, h, w)


@pytest.mark.parametrize(("arch", "options"), CASES, ids=CASE_IDS)
def test_training_step_reaches_every_trainable_parameter(arch, options):
    model = build_model(arch, NUM_CLASSES, **options).train()
    outputs = model(torch.randn(2, 3, 33, 47))
    assert set(outputs) == {"out"}  # named outputs, as torchvision's segmentation models return
    logits = outputs["out"]
    assert logits.shape == (2, NUM_CLASSES, 33, 47)
    params = trainable(model)
    if not params:  # prior_baseline: fitted, never stepped
        assert not logits.requires_grad
        return
    F.cross_entropy(logits, torch.randint(NUM_CLASSES, (2, 33, 47))).backward()
    missing = [name for name, p in params if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no (finite) gradient for {missing[:5]}"


@pytest.mark.parametrize(("arch", "options", "names_in_message"), [
    ("deeplabv3", {"aspp": "maybe"}, ["aspp", "'maybe'", "true or false"]),
    ("deeplabv3", {"backbone": "resnet19"}, ["backbone", "resnet19", "resnet18", "vgg11_bn", "mobilenet_v3_small"]),
    ("unet3", {}, ["unet3", "unet", "unet_lean", "enet", "esnet", "prior_baseline"]),
    ("unet", {"base_chanels": 8}, ["base_chanels", "base_channels", "bilinear"]),
    ("enet", {"dropout": 0.1}, ["dropout", "(none)"]),
    ("resnet_unet", {"skips": "no"}, ["skips", "true or false"]),
    ("prior_baseline", {"grid_size": [0, 8]}, ["grid_size", ">= 1"]),
])
def test_bad_options_raise_one_line_config_error(arch, options, names_in_message):
    with pytest.raises(ConfigError) as info:
        build_model(arch, 8, **options)
    message = str(info.value)
    assert "\n" not in message
    for name in names_in_message:
        assert name in message


def expected_resnet18_file(torch_home: Path) -> Path:
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    return torch_home / "hub" / "checkpoints" / Path(url).name


@pytest.mark.parametrize(("arch", "options"), [("resnet_unet", {}), ("deeplabv3", {"backbone": "resnet18"})])
def test_pretrained_without_local_weights_names_the_expected_file(arch, options, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="pretrained") as info:
        build_model(arch, 8, pretrained=True, **options)
    assert str(expected_resnet18_file(tmp_path)) in str(info.value)


def test_pretrained_encoder_loads_the_local_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = expected_resnet18_file(tmp_path)
    path.parent.mkdir(parents=True)
    saved = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(saved, path)

    encoder = build_model("resnet_unet", 8, pretrained=True).encoder.state_dict()
    assert set(encoder) == {k for k in saved if not k.startswith("fc.")}
    for key, value in encoder.items():
        assert torch.equal(value, saved[key]), key
    random_init = build_model("resnet_unet", 8).encoder.state_dict()
    assert not torch.equal(random_init["conv1.weight"], saved["conv1.weight"])


# Per-pixel majorities: 3 classes on a 2 x 3 image, 255 = unlabelled.
MASKS = torch.tensor([
    [[0, 1, 2], [2, 255, 1]],
    [[0, 1, 2], [2, 255, 0]],
    [[0, 0, 1], [2, 255, 1]],
    [[1, 1, 2], [0, 1, 1]],
])
MAJORITY = torch.tensor([[0, 1, 2], [2, 1, 1]])


def fitted_prior(grid_size=(2, 3)) -> nn.Module:
    model = build_model("prior_baseline", 3, grid_size=list(grid_size))
    model.fit_from_masks(MASKS, ignore_index=255)
    return model


def test_prior_predicts_each_pixels_training_majority():
    model = fitted_prior()
    logits = model(torch.randn(2, 3, 2, 3))["out"]
    assert logits.shape == (2, 3, 2, 3)
    assert torch.equal(logits.argmax(1), MAJORITY.expand(2, -1, -1))
    assert torch.allclose(logits.exp().sum(1), torch.ones(2, 2, 3))
    # Laplace smoothing: a class never seen at a pixel keeps a finite log-probability.
    assert torch.isfinite(logits).all()


def test_prior_has_no_trainable_parameters_and_round_trips_its_state():
    model = fitted_prior(grid_size=(4, 6))
    assert list(model.parameters()) == []
    fresh = build_model("prior_baseline", 3, grid_size=[4, 6])
    fresh.load_state_dict(model.state_dict())
    x = torch.zeros(1, 3, 33, 47)
    assert torch.equal(fresh(x)["out"], model(x)["out"])
    assert fresh(x)["out"].shape == (1, 3, 33, 47)


def test_prior_rejects_labels_that_are_not_classes():
    with pytest.raises(DataError, match="7"):
        build_model("prior_baseline", 3).fit_from_masks(torch.full((1, 2, 2), 7), ignore_index=255)


def _modules_after(code: str) -> set[str]:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1]).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_torchvision_is_imported_only_by_models_built_on_it():
    """torchvision's import costs about 2 s per stage process: validating params (every stage does)
    and building a model of this project's own code must not pay it."""
    validated = _modules_after("from segbench.config import load_params; load_params('params.yaml')\n"
                               "from segbench.models import build_model; build_model('unet', 3, base_channels=4)")
    assert "torchvision" not in validated and "torch" in validated
    built = _modules_after("from segbench.models import build_model\n"
                           "build_model('deeplabv3', 3, backbone='mobilenet_v3_small', aspp=True)")
    assert "torchvision" in built


def test_validating_params_reads_only_the_declarations_of_the_architectures_they_name():
    """A model's declaration is loaded by name: a new or edited architecture's files are read by no
    stage of another model (tests/test_stale.py checks what DVC then re-runs)."""
    loaded = _modules_after("from segbench.config import params_from_dict\n"
                            "params_from_dict({'seeds': [0], 'models': {'a': {'arch': 'unet'}, 'b': {'arch': 'enet'}}})")
    declarations = {name for name in loaded if name.startswith("segbench.models.archs.")}
    assert declarations == {"segbench.models.archs.unet", "segbench.models.archs.enet"}
    assert "torch" not in loaded and "segbench.data.sources.camvid" not in loaded  # nor a dataset layout not used
    assert set(MODELS.names()) >= {"unet", "enet", "deeplabv3", "lraspp_mobilenet_v3_large"}  # listed from file names
