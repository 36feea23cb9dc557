"""The deployment latency the headline shows: one CPU setting (backend and size) for every model.

params plot.deployment names it ("onnxruntime 750x1000"); its default, auto, is the largest profiled size on the
fastest CPU backend there (geometric mean over models) whose predictions agree with eager fp32
(argmax agreement >= keys.FP32_AGREEMENT for every model that has it): the question a user brings is
"which model is good enough and cheapest where I deploy it", and that is rarely 64x64 eager fp32.
"""
from __future__ import annotations

import math

import numpy as np

from ..keys import BACKEND_TAGS, FP32_AGREEMENT, LatencyKey, agreement_keys, parse_latency_key, size_tag
from .spec import Column
from .view import ModelMetrics


def _agrees(metrics: list[ModelMetrics], key: LatencyKey) -> bool:
    if not key.tag:
        return True
    values = [m.get("profile", agreement_keys(key)[1]) for m in metrics]
    measured = [v for v in values if not math.isnan(v)]
    return bool(measured) and all(v >= FP32_AGREEMENT for v in measured)


def _candidates(metrics: list[ModelMetrics]) -> list[LatencyKey]:
    found = {}
    for m in metrics:
        for name in m.profile:
            key = parse_latency_key(name)
            if key is not None and key.device == "cpu" and name == key.name:
                found[name] = key
    return list(found.values())


def _area(key: LatencyKey, metrics: list[ModelMetrics]) -> int:
    if key.size:
        return key.size[0] * key.size[1]
    h, w = (int(metrics[0].get("profile", k)) if metrics[0].has("profile", k) else 0 for k in ("input_height", "input_width"))
    return h * w


def named_key(choice: str, metrics: list[ModelMetrics]) -> LatencyKey:
    """params plot.deployment "<backend> <H>x<W>" (validated against profile's settings by the config)
    as a latency key; the training size has the plain key."""
    backend, size = choice.split()
    h, w = (int(v) for v in size.split("x"))
    at_training = bool(metrics) and size == metrics[0].training_size
    return LatencyKey("cpu", BACKEND_TAGS[backend], None if at_training else (h, w))


def deployment_key(metrics: list[ModelMetrics], choice: str = "auto") -> LatencyKey | None:
    """The CPU latency setting of the headline: `choice` (params plot.deployment) unless auto; auto: the
    rule above, None when no CPU latency was measured."""
    if choice != "auto":
        return named_key(choice, metrics)
    keys = _candidates(metrics)
    if not keys:
        return None
    largest = max(_area(k, metrics) for k in keys)
    at_size = [k for k in keys if _area(k, metrics) == largest and _agrees(metrics, k)]

    def typical(k: LatencyKey) -> float:
        values = [m.get("profile", k.name) for m in metrics]
        values = [v for v in values if v > 0]
        return float(np.exp(np.mean(np.log(values)))) if values else math.inf

    return min(at_size, key=typical) if at_size else None


def deployment_column(key: LatencyKey | None, metrics: list[ModelMetrics]) -> Column | None:
    """The headline's latency column at `key`, named by backend and size."""
    if key is None:
        return None
    where = size_tag(key.size) if key.size else metrics[0].training_size
    backend = {v: b for b, v in BACKEND_TAGS.items()}.get(key.tag, key.tag)
    return Column("deploy_latency_ms", f"latency (ms, {backend} {where})", "profile", key=key.name, cost_interval=True)
