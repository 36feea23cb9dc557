"""The report across models (the plot stage): declarative specs (spec), the metrics it reads
(view), pure tables (tables, summary, pareto), the prose notes (notes), the Markdown table
(markdown), the PNGs (figures), and the one entry point that writes the files (build).

`build_report` is imported on first use, so importing the package (or its stdlib-only spec)
does not load pandas or matplotlib.
"""
from __future__ import annotations

from typing import Any

__all__ = ["build_report"]


def __getattr__(name: str) -> Any:
    if name == "build_report":
        from .build import build_report

        return build_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
