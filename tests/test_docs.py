"""Every command in README.md and docs/*.md runs here, page by page, in a scratch copy of the
repository, at a reduced size (tests/reduced.py); a block that cannot run says why, visibly."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from docs_blocks import SHELL, BlockFailed, collect, run_page, scratch_copy

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
BLOCKS = {page: collect(page) for page in PAGES}
MARKED = [block for blocks in BLOCKS.values() for block in blocks if block.skip_reason is not None]
RUN_BY = [block for blocks in BLOCKS.values() for block in blocks if block.run_by is not None]
NO_RUNNABLE_BLOCK = "no runnable block"


def _runnable(page: Path) -> bool:
    return any(block.runs_here for block in BLOCKS[page])


@pytest.mark.integration
@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_page_blocks_run(page: Path, tmp_path: Path) -> None:
    if not _runnable(page):
        pytest.skip(NO_RUNNABLE_BLOCK)
    work = scratch_copy(REPO, tmp_path / "repo")
    start = time.perf_counter()
    ran = run_page(BLOCKS[page], work)
    print(f"{page.name}: {ran} blocks in {time.perf_counter() - start:.1f} s")


@pytest.mark.parametrize("block", MARKED, ids=lambda block: block.where)
def test_marked_block_says_why(block) -> None:
    """A block the tests do not run is reported with its reason (pytest -ra lists it)."""
    assert block.skip_reason, f"{block.where}: '*Not run by the tests: <reason>.*' needs a reason"
    pytest.skip(f"{block.where}: not run by the tests: {block.skip_reason}")


@pytest.mark.parametrize("block", RUN_BY, ids=lambda block: block.where)
def test_a_block_run_by_another_test_names_one_that_exists(block) -> None:
    """A block marked `<!-- run by: tests/FILE.py::TEST -->` is run by that test (with assertions on what it
    does) instead of here: the test must exist, and the block must be a single command the test runs."""
    file, name = block.run_by.split("::")
    assert (REPO / file).is_file() and f"def {name}(" in (REPO / file).read_text(), \
        f"{block.where}: run by {block.run_by}, which does not exist"
    assert block.skip_reason is None and block.lang in SHELL, f"{block.where}: a run-by block is one shell command"
    pytest.skip(f"{block.where}: run by {block.run_by}")


def test_install_blocks_are_marked() -> None:
    """Blocks that install (a venv, pip) are the test command itself: each says so instead of running."""
    unmarked = [block.where for blocks in BLOCKS.values() for block in blocks
                if block.installs and block.runs_here]
    assert not unmarked, f"install blocks run by the tests (mark them '*Not run by the tests: ...*'): {unmarked}"


def test_every_docs_page_is_linked() -> None:
    """Each docs page is reachable from the README or the docs index."""
    text = (REPO / "README.md").read_text() + (REPO / "docs" / "index.md").read_text()
    missing = [page.name for page in PAGES if page.parent.name == "docs" and f"docs/{page.name}" not in text
               and f"({page.name})" not in text]
    assert not missing, f"docs pages linked from neither README.md nor docs/index.md: {missing}"


def test_runner_fails_on_a_failing_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# t\n\n```bash\necho one > one.txt\n```\n\n*Not run by the tests: a cluster.*\n\n"
                    "```bash\nexit 3\n```\n\n```bash\ncat one.txt\necho boom >&2\nfalse\n```\n")
    blocks = collect(page)
    assert [b.skip_reason for b in blocks] == [None, "a cluster", None]
    assert [b.runs_here for b in blocks] == [True, False, True]
    with pytest.raises(BlockFailed, match=r"page\.md:13: bash block exited 1\n(.|\n)*one(.|\n)*boom"):
        run_page(blocks, tmp_path, shrink=False)


def test_runner_checks_params_files(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- file: params/bad.yaml -->\n```yaml\nseed: 0\nseeds: [0]\nmodels: {m: {arch: nonet}}\n```\n")
    (tmp_path / "params").mkdir()
    with pytest.raises(BlockFailed, match=r"page\.md:2: `segbench --params params/bad.yaml check` exited"):
        run_page(collect(page), tmp_path, shrink=False)
    assert (tmp_path / "params" / "bad.yaml").read_text().startswith("seed: 0")


def test_cli_page_covers_every_command() -> None:
    """docs/cli.md has a line for every command `segbench --help` lists (a new command needs its docs)."""
    import argparse

    from segbench.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    page = (REPO / "docs" / "cli.md").read_text()
    missing = [name for name in commands if f"segbench {name}" not in page]
    assert not missing, f"docs/cli.md does not document: {missing}"


def test_runner_leaves_a_run_by_block_to_its_test(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# t\n\n<!-- run by: tests/test_demo.py::test_x -->\n```bash\nexit 4\n```\n\n"
                    "```bash\necho ok > ok.txt\n```\n")
    blocks = collect(page)
    assert [(b.run_by, b.runs_here) for b in blocks] == [("tests/test_demo.py::test_x", False), (None, True)]
    assert run_page(blocks, tmp_path, shrink=False) == 1 and (tmp_path / "ok.txt").read_text() == "ok\n"
