"""The HTML page `dvc plots show` fills: Vega, Vega-Lite and Vega-Embed inlined, no CDN.

DVC's own page loads the three libraries from cdn.jsdelivr.net through its `{scripts}`
placeholder, so the report is blank without a network. This template leaves `{scripts}` out
and inlines the bundle that the installed vl-convert-python package carries. It is generated
(by the plot stage, or `segbench html-template`), never committed: `.dvc/config` points
`plots.html_template` at it.

It also wraps `vegaEmbed` to draw SVG, show a failed view's error in the page instead of
leaving it blank, and mark each view (`data-segbench="drawn"|"error"`) and image
(`data-segbench-loaded`) so a browser test can tell that everything drew.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from . import paths
from .errors import SegbenchError
from .io import write_text

TEMPLATE_PATH = paths.REPORT_TEMPLATE  # .dvc/config: plots.html_template = ../plots/report_template.html

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{refresh_tag}
<title>segbench report</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 1.5em; }
  body > div[id] { margin: 0 0 2em 0; }
  .segbench-error { color: #b00020; white-space: pre-wrap; border: 1px solid #b00020; padding: 0.5em; }
  #segbench-status { color: #555; font-size: 0.85em; border-top: 1px solid #ccc; padding-top: 0.5em; }
  img { max-width: 100%; }
</style>
<script>
@@BUNDLE@@
</script>
<script>
@@WRAPPER@@
</script>
</head>
<body>
<h1>segbench report</h1>
<p>Trade-offs (Pareto fronts), per-class IoU, training curves, then each model's confusion matrix and
predictions. Interactive plots: Vega @@VEGA@@, Vega-Lite @@VEGALITE@@, Vega-Embed @@EMBED@@, inlined from
vl-convert-python @@VLCONVERT@@ (no network needed).</p>
{plot_divs}
<p id="segbench-status">rendering&hellip;</p>
</body>
</html>
"""

_WRAPPER = r"""
(function () {
  var embed = window.vegaEmbed;
  var pending = [];
  window.segbenchViews = pending;
  window.vegaEmbed = function (el, spec, opts) {
    var target = (typeof el === "string" ? document.querySelector(el) : el) || document.body;
    var actions = {export: true, source: true, compiled: true, editor: false};
    var options = Object.assign({renderer: "svg", actions: actions}, opts || {});
    var started = typeof embed === "function" ? Promise.resolve().then(function () { return embed(el, spec, options); })
                                              : Promise.reject(new Error("Vega-Embed did not load"));
    var done = started.then(function (result) {
      target.setAttribute("data-segbench", "drawn");
      return result;
    }, function (error) {
      target.setAttribute("data-segbench", "error");
      var box = document.createElement("pre");
      box.className = "segbench-error";
      box.textContent = "This plot failed to render: " + (error && error.message ? error.message : error);
      target.appendChild(box);
    });
    pending.push(done);
    return done;
  };
  window.addEventListener("load", function () {
    var images = Array.prototype.slice.call(document.images);
    images.forEach(function (img) {
      img.setAttribute("data-segbench-loaded", String(img.complete && img.naturalWidth > 0));
    });
    Promise.all(pending).then(function () {
      var failed = document.querySelectorAll("[data-segbench=error]").length;
      var broken = images.filter(function (img) { return img.naturalWidth === 0; }).length;
      var status = document.getElementById("segbench-status");
      status.setAttribute("data-views", String(pending.length));
      status.setAttribute("data-failed", String(failed));
      status.setAttribute("data-images", String(images.length));
      status.setAttribute("data-broken-images", String(broken));
      status.textContent = (pending.length - failed) + " of " + pending.length + " interactive plots drawn, " +
        (images.length - broken) + " of " + images.length + " images loaded.";
    });
  });
})();
"""


def _vl_convert():
    try:
        import vl_convert
    except ImportError:
        raise SegbenchError("the offline report needs vl-convert-python: pip install vl-convert-python") from None
    return vl_convert


def template_stamp() -> str:
    """Names what the template is made of; an existing file with the same stamp is up to date."""
    from importlib.metadata import version

    _vl_convert()
    digest = hashlib.sha256((_PAGE + _WRAPPER + version("vl-convert-python")).encode()).hexdigest()[:16]
    return f"<!-- segbench report template {digest} -->"


def render_template() -> str:
    """The whole template text (about 1 MB, most of it the JavaScript bundle)."""
    from importlib.metadata import version

    vl_convert = _vl_convert()
    bundle = vl_convert.javascript_bundle()  # seconds: write_template skips it when the file is current
    # Inline script: the bundle must not close the tag, nor hold DVC's placeholders.
    bundle = bundle.replace("</script", "<\\/script")
    for placeholder in ("{plot_divs}", "{scripts}", "{refresh_tag}"):
        if placeholder in bundle:
            raise SegbenchError(f"vl-convert-python's bundle contains DVC's {placeholder} placeholder; pin another version")
    versions = {"@@VEGA@@": _call(vl_convert, "get_vega_version"), "@@VEGALITE@@": _call(vl_convert, "get_vegalite_versions"),
                "@@EMBED@@": _call(vl_convert, "get_vega_embed_version"), "@@VLCONVERT@@": version("vl-convert-python")}
    page = _PAGE
    for key, value in versions.items():
        page = page.replace(key, value)
    page = page.replace("@@WRAPPER@@", _WRAPPER.strip()).replace("@@BUNDLE@@", bundle)
    return page.replace("<!DOCTYPE html>\n", f"<!DOCTYPE html>\n{template_stamp()}\n", 1)


def _call(module, name: str) -> str:
    """A version string for the page's footnote; informative only, so absent functions are tolerated."""
    try:
        value = getattr(module, name)()
    except Exception:  # noqa: BLE001 - any failure just leaves the version unnamed
        return "(bundled)"
    return str(value[-1] if isinstance(value, (list, tuple)) and value else value)


def write_template(path: Path = TEMPLATE_PATH, force: bool = False) -> Path:
    """Write the template unless `path` already holds this version of it (the stage keeps it: persist)."""
    if not force and path.is_file():
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(200)
        if template_stamp() in head:
            return path
    write_text(path, render_template())
    return path
