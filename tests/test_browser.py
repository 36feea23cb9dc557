"""`dvc plots show` output drawn by headless Chromium with no network: every declared plot must draw.

The report comes from the plot stage's command (in-process, on fabricated per-model outputs
to stay fast) and real `dvc plots show` in a temporary git + DVC repo that uses the repository's
.dvc/config, so it exercises the offline page template. Chromium runs with a proxy that
points nowhere: anything the page fetched from a CDN would fail. The screenshot and the
rendered DOM are kept under test-artifacts/ (gitignored; SEGBENCH_TEST_ARTIFACTS moves it).
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from conftest import REPO, TINY_PARAMS, run
from fake_run import MODELS, SEEDS, fake_run

from segbench.cli import main

pytestmark = pytest.mark.integration

ARTIFACTS = Path(os.environ.get("SEGBENCH_TEST_ARTIFACTS", REPO / "test-artifacts"))
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def find_browser() -> str | None:
    explicit = os.environ.get("SEGBENCH_CHROMIUM")
    return explicit or next((path for name in BROWSERS if (path := shutil.which(name))), None)


BROWSER = find_browser()
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no Chromium binary (apt-get install chromium; .ci/run does)")


def chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    """Headless Chromium, offline: no background fetches, and every proxied request goes to a closed port."""
    args = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
            "--disable-sync", "--no-first-run", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
            f"--user-data-dir={profile}", "--virtual-time-budget=20000", *extra, url]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


class Node:
    def __init__(self, tag: str, attrs: dict):
        self.tag, self.attrs, self.children, self.text = tag, attrs, [], []

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    def all_text(self) -> str:
        return " ".join(t for n in self.walk() for t in n.text)


class Tree(HTMLParser):
    """Just enough of a DOM: elements, attributes, text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        if data.strip():
            self.stack[-1].text.append(data.strip())


def dvc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd)


@pytest.fixture
def report(workspace):
    """The workspace with the aggregate and plot stages run on fabricated per-seed outputs, and `dvc plots show` done."""
    repo = workspace
    params = dict(TINY_PARAMS, seeds=list(SEEDS), models={"big": {"arch": "unet"}, "small": {"arch": "unet", "base_channels": 4},
                                                          "twin": {"arch": "prior_baseline"}, "worse": {"arch": "unet"}})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    fake_run(repo)
    cwd = os.getcwd()
    os.chdir(repo)
    try:  # what stages/plot.py runs, in-process: torch is imported already
        assert main(["plot"]) == 0
    finally:
        os.chdir(cwd)
    declared = json.loads(dvc(["plots", "show", "--json"], repo).stdout)
    dvc(["plots", "show"], repo)
    return repo, declared


def test_dvc_plots_show_and_diff_draw_only_what_was_measured(report):
    """No Chromium needed: DVC itself loads every plot, with a GPU figure in one revision and not the other."""
    repo, declared = report
    assert not declared.get("errors"), declared.get("errors")
    kinds = {name: plots[0]["type"] for name, plots in declared["data"].items() if plots}
    measured = {"plots/measured/miou_vs_resources", "plots/measured/miou_vs_latency_cuda"}  # the fake run has a GPU
    assert {f"{m}.csv" for m in measured} <= {n for n, k in kinds.items() if k == "vega"}
    assert {f"{m}.png" for m in measured} <= {n for n, k in kinds.items() if k == "image"}
    assert not [name for name in kinds if "depth_rmse" in name]  # task segmentation: no depth figure
    git = ["git", "-c", "user.email=test@segbench", "-c", "user.name=segbench-test"]
    run([*git, "add", "-A"], repo)
    run([*git, "commit", "-qm", "with a GPU"], repo)
    for gpu in (repo / "plots/measured").glob("miou_vs_latency_cuda.*"):  # the next run had no GPU
        gpu.unlink()
    diff = json.loads(dvc(["plots", "diff", "HEAD", "--json"], repo).stdout)
    assert not diff.get("errors"), diff.get("errors")
    revisions = {name: set(plots[0]["revisions"]) for name, plots in diff["data"].items() if plots}
    assert revisions["plots/measured/miou_vs_resources.csv"] == {"HEAD", "workspace"}
    assert revisions["plots/measured/miou_vs_latency_cuda.csv"] == {"HEAD"}


@needs_browser
def test_every_declared_plot_draws_offline(report):
    repo, declared = report
    index = repo / "dvc_plots" / "index.html"
    html = index.read_text()
    assert not re.search(r"<script[^>]+src=", html), "the page loads a script file; it must inline everything"
    assert "cdn.jsdelivr" not in html and "{plot_divs}" not in html

    assert not declared.get("errors"), declared.get("errors")
    vega = [name for name, plots in declared["data"].items() if plots[0]["type"] == "vega"]
    images = [name for name, plots in declared["data"].items() if plots[0]["type"] == "image"]
    # the report's own plots, and every model's confusion matrix and predictions from aggregate
    assert {"plots/measured/miou_vs_latency_cuda.csv", "plots/measured/miou_vs_resources.csv", "plots/iou_per_class.csv",
            "Validation mIoU per epoch"} <= set(vega)
    depth = [name for name in vega + images if "depth" in name]
    assert not depth, depth  # no depth without task seg_depth: no figure
    assert {f"plots/{m}/confusion.csv" for m in MODELS} <= set(vega)
    assert {f"plots/{m}/predictions.png" for m in MODELS} | {"plots/training_curves.png"} <= set(images)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    profile = repo.parent / "chromium-profile"
    dom = chromium(index.as_uri(), profile, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    (ARTIFACTS / "report-dom.html").write_text(dom.stdout)
    shot = chromium(index.as_uri(), profile, "--hide-scrollbars", "--window-size=1400,5000",
                    f"--screenshot={ARTIFACTS / 'report-screenshot.png'}")
    assert shot.returncode == 0 and (ARTIFACTS / "report-screenshot.png").stat().st_size > 10_000, shot.stderr[-2000:]

    tree = Tree(dom.stdout).root
    views = [n for n in tree.walk() if "data-segbench" in n.attrs]
    failed = {n.attrs.get("id"): n.all_text() for n in views if n.attrs["data-segbench"] != "drawn"}
    assert not failed, f"views that did not draw: {failed}"
    assert len(views) == len(vega), f"{len(views)} views drew, {len(vega)} Vega plots declared"
    for view in views:
        assert [n for n in view.walk() if n.tag == "svg"], f"{view.attrs.get('id')}: no SVG"
        # data marks (dots, cells, lines), not just axes: Vega groups them as `role-mark`
        drawn = [c for n in view.walk() if "role-mark" in n.attrs.get("class", "") for c in n.children]
        assert drawn, f"{view.attrs.get('id')}: axes but no data drawn"
        assert "error" not in view.all_text().lower(), view.attrs.get("id")
        # readable at 100% zoom: each view fits the 1400-pixel window (a strip of panels did not)
        sizes = [(float(n.attrs["width"]), float(n.attrs.get("height", 0))) for n in view.walk()
                 if n.tag == "svg" and "width" in n.attrs]
        assert all(w <= 1400 for w, _ in sizes), (view.attrs.get("id"), sizes)

    imgs = [n for n in tree.walk() if n.tag == "img"]
    assert len(imgs) >= len(images)
    from PIL import Image  # the PNGs the page shows: at most 3 trade-off panels a row (issue 34's 4824 x 576 strip)
    for png in [*(repo / "plots").glob("miou_vs_*.png"), *(repo / "plots/measured").glob("*.png")]:
        with Image.open(png) as picture:
            assert picture.width <= 2100 and picture.height <= 2400, (png.name, picture.size)
    assert all(n.attrs.get("data-segbench-loaded") == "true" for n in imgs), [n.attrs.get("src") for n in imgs]
    status = next(n for n in tree.walk() if n.attrs.get("id") == "segbench-status")
    assert status.attrs["data-failed"] == "0" and status.attrs["data-broken-images"] == "0", status.all_text()

    # the GPU trade-off has one model with CUDA keys: its dot and label drew, and the others did not break it
    gpu = next(v for v in views if "latency_cuda" in v.attrs.get("id", ""))
    assert "big" in gpu.all_text() and "no measurements" not in gpu.all_text()


def rendered_views(index: Path, profile: Path) -> list[Node]:
    dom = chromium(index.as_uri(), profile, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    return [n for n in Tree(dom.stdout).root.walk() if "data-segbench" in n.attrs]


@needs_browser
def test_a_fresh_clone_shows_the_report_with_no_other_step(report, tmp_path):
    """`git clone` then `dvc plots show`: the committed page template, metrics and plot data are all
    it needs (no `dvc repro`, no `segbench html-template`, no network)."""
    repo, declared = report
    git = ["git", "-c", "user.email=test@segbench", "-c", "user.name=segbench-test"]
    run([*git, "add", "-A"], repo)
    run([*git, "commit", "-qm", "results"], repo)
    assert "plots/report_template.html" in run(["git", "ls-files", "plots"], repo).stdout  # committed, not ignored
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "data").exists()  # nothing but what git holds
    dvc(["plots", "show"], clone)
    index = clone / "dvc_plots" / "index.html"
    assert "{plot_divs}" not in index.read_text() and "cdn.jsdelivr" not in index.read_text()
    views = rendered_views(index, tmp_path / "profile")
    vega = [name for name, plots in declared["data"].items() if plots[0]["type"] == "vega"]
    assert len(views) == len(vega) and all(v.attrs["data-segbench"] == "drawn" for v in views), \
        {v.attrs.get("id"): v.attrs["data-segbench"] for v in views}


@needs_browser
def test_the_browser_really_is_offline(tmp_path):
    """Control: the same flags leave a CDN-loading page (DVC's default) without Vega."""
    page = tmp_path / "cdn.html"
    page.write_text('<html><head><script src="https://cdn.jsdelivr.net/npm/vega@5"></script></head><body>'
                    '<p id="out">pending</p><script>document.getElementById("out").textContent = '
                    '"vega: " + typeof vega;</script></body></html>')
    dom = chromium(page.as_uri(), tmp_path / "profile", "--dump-dom")
    assert "vega: undefined" in dom.stdout


PROBE = """<script>
window.addEventListener("load", function () {
  Promise.all(window.segbenchViews).then(function (results) {
    var views = {};
    results.forEach(function (result) {
      if (!result || !result.view) return;
      var marks = [];
      (function visit(mark) {
        marks.push({name: mark.name || "", role: mark.role || "", type: mark.marktype,
                    items: (mark.items || []).filter(function (i) { return i.datum; }).map(function (i) {
                      var d = i.datum;
                      return {model: d.model, rev: d.rev_name, panel: d.panel, move: d.move, line: d.line,
                              text: i.text, dash: i.strokeDash, width: i.strokeWidth, fill: i.fill};
                    })});
        (mark.items || []).forEach(function (item) { (item.items || []).forEach(visit); });
      })(result.view.scenegraph().root);
      views[result.view.container().closest("[id]").id] = marks;
    });
    var out = document.createElement("pre");
    out.id = "segbench-probe";
    out.textContent = JSON.stringify(views);
    document.body.appendChild(out);
  });
});
</script>"""


def probe(index: Path, profile: Path) -> dict[str, list[dict]]:
    """Every Vega view's scenegraph, by the id of its div: each mark's name, role and drawn items (their data)."""
    page = index.with_name("probe.html")
    head, tail = index.read_text().rsplit("</body>", 1)  # the last one: the inlined libraries hold the string too
    page.write_text(head + PROBE + "</body>" + tail)
    dom = chromium(page.as_uri(), profile, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = next((n for n in Tree(dom.stdout).root.walk() if n.attrs.get("id") == "segbench-probe"), None)
    assert found is not None, "the views did not finish drawing"
    return json.loads(found.all_text())


def view_of(views: dict, name: str) -> list[dict]:
    return next(marks for view_id, marks in views.items() if name in view_id)


def items(marks: list[dict], layer: str) -> list[dict]:
    """The drawn items of one trade-off layer (`layer_2`: segments, `layer_8`: labels, `concat_0`: notes)."""
    return [i for m in marks if m["role"] == "mark" and f"{layer}_marks" in m["name"] for i in m["items"]]


SEGMENTS, LABELS, NOTES = "layer_2", "layer_8", "concat_0"
TIMING = {"train_time_s", "latency_cpu_ms"}
COSTS = {"train_time_s", "latency_cpu_ms", "size_mb", "gflops"}


def fabricate(repo: Path, newer: bool) -> None:
    """Trade-off CSVs for one revision: `big` improves for real in the newer one (95% intervals apart),
    `small` moves within noise (they overlap), `worse`'s timings come from another environment, `twin`
    stays; no model has a GPU latency (so there is no GPU figure: plots/measured holds what was measured)."""
    for stale in (repo / "plots/measured").glob("miou_vs_latency_cuda.*"):
        stale.unlink()
    for cost in ("train_time_s", "latency_cpu_ms", "size_mb", "gflops"):
        path = repo / "plots" / f"miou_vs_{cost.removesuffix('_s').removesuffix('_ms').removesuffix('_mb')}.csv"
        rows = list(csv.DictReader(path.open()))
        for row in rows:
            base = {"big": 0.5, "small": 0.45, "twin": 0.1, "worse": 0.3}[row["model"]]
            miou = base + (newer and {"big": 0.2, "small": 0.01}.get(row["model"], 0.0))
            row.update(miou=miou, miou_ci95_low=miou - 0.03, miou_ci95_high=miou + 0.03, flag="")
            if newer and row["model"] == "worse" and cost in TIMING:
                row["env"] = "0ther0env"
                row[cost] = float(row[cost]) * 1.5
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


@needs_browser
def test_plots_diff_links_each_models_points_and_says_if_the_move_is_real(report, tmp_path):
    repo, _ = report
    git = ["git", "-c", "user.email=test@segbench", "-c", "user.name=segbench-test"]
    models = {"big", "small", "twin", "worse"}

    # one revision (`dvc plots show`): as before, no segments and no notes, one label per model
    fabricate(repo, newer=False)
    dvc(["plots", "show"], repo)
    shown = probe(repo / "dvc_plots" / "index.html", tmp_path / "profile")
    size = view_of(shown, "miou_vs_size")
    assert not items(size, SEGMENTS) and not items(size, NOTES)
    assert sorted(i["text"] for i in items(size, LABELS)) == sorted(models)

    run([*git, "add", "-A"], repo)
    run([*git, "commit", "-qm", "older"], repo)
    fabricate(repo, newer=True)
    run([*git, "add", "-A"], repo)
    run([*git, "commit", "-qm", "newer"], repo)
    dvc(["plots", "diff", "HEAD~1", "HEAD"], repo)
    index = repo / "dvc_plots" / "index.html"
    views = probe(index, tmp_path / "profile")

    for name in ("miou_vs_train_time", "miou_vs_latency_cpu", "miou_vs_size", "miou_vs_gflops"):
        marks = view_of(views, name)
        segments = items(marks, SEGMENTS)
        with (repo / "plots" / f"{name}.csv").open() as f:  # a model and panel with a cost in both revisions
            drawn = sorted(row["model"] for row in csv.DictReader(f) if row[next(iter(set(row) & COSTS))])
        # one segment per model and panel, from the older revision to the newer one
        assert sorted(s["model"] for s in segments) == drawn, name
        assert {s["rev"] for s in segments} == {"HEAD"}, name
        # one label per model and panel, at its newest point
        labels = items(marks, LABELS)
        assert sorted(i["text"] for i in labels) == drawn, name
        assert {i["rev"] for i in labels} == {"HEAD"}, name
        move = {s["model"]: s["move"] for s in segments}
        assert move["big"].startswith("real") and move["small"].startswith("noise"), (name, move)
        width = {s["model"]: s["width"] for s in segments}
        assert width["big"] > width["small"], (name, width)
        timing = name in ("miou_vs_train_time", "miou_vs_latency_cpu")
        assert move["worse"].startswith("not comparable") == timing, (name, move)
        notes = " ".join(i["line"] for i in items(marks, NOTES))
        assert "HEAD~1 \u2192 HEAD" in notes and "real move" in notes and "noise" in notes, notes
        assert ("not comparable" in notes) == timing, notes
        # the hollow dots: one per revision for `worse`'s timings, none for size and GFLOPs
        hollow = [i for m in marks if "layer_6_marks" in m["name"] for i in m["items"]]
        assert sorted(i["model"] for i in hollow) == (sorted([m for m in drawn if m == "worse"] * 2) if timing else []), name

    # no model has a GPU latency in either revision: no GPU figure at all (dvc plots diff draws what exists)
    assert not [view_id for view_id in views if "latency_cuda" in view_id]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = chromium(index.as_uri(), tmp_path / "profile", "--hide-scrollbars", "--window-size=1400,2600",
                    f"--screenshot={ARTIFACTS / 'report-diff-screenshot.png'}")
    assert shot.returncode == 0 and (ARTIFACTS / "report-diff-screenshot.png").stat().st_size > 10_000
