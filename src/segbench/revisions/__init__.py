"""Across two revisions (branches, commits, DVC experiments): `segbench diff`.

read (a revision's metrics, params and files: git and DVC), arrays (its per-image files), quality and
costs (old -> new with an interval and a verdict, segbench.stats' methods), params (what changed in the
inputs), rows (one compared number), compare (the entry points), render (text, Markdown, JSON).
"""
