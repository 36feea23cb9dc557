"""Run the fenced blocks of a Markdown page as a user would, top to bottom, in one scratch copy.

Hand-written rather than sybil or pytest-markdown-docs: those run Python (and, with custom
parsers, shell) blocks each in isolation, while a docs page here is a tutorial whose shell,
Python and file blocks share one working tree, in order, with params shrunk before each block.

What a block is, from the Markdown around it:
  - a line `*Not run by the tests: <reason>.*` just before it: skipped, with that reason;
  - a line `<!-- run by: tests/FILE.py::TEST -->` just before it: not run here, because that test runs
    the same command and asserts what it does (tests/test_docs.py checks that the test exists);
  - a line `<!-- file: PATH -->` just before it: its text is written to PATH (relative to the
    scratch copy); a params file (params.yaml, params/*.yaml) is then checked with
    `segbench --params PATH check`;
  - ```bash / ```sh / ```console: run with bash (-e -o pipefail); ```python: run with the venv's python;
  - ```yaml without a file line: a fragment; it must parse;
  - anything else (```text, output samples): shown, not run.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import yaml

SHELL = {"bash", "sh", "console", "shell"}
RUNNABLE = SHELL | {"python", "yaml"}
SKIP_RE = re.compile(r"^\*Not run by the tests:(?P<reason>.*?)\.?\*\s*$")
FILE_RE = re.compile(r"^<!--\s*file:\s*(?P<path>\S+)\s*-->\s*$")
RUN_BY_RE = re.compile(r"^<!--\s*run by:\s*(?P<test>tests/[\w/.-]+\.py::\w+)\s*-->\s*$")
COMMENT_RE = re.compile(r"^<!--.*-->$")
FENCE_RE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
INSTALL_RE = re.compile(r"pip install|python3? -m venv")
PARAMS_FILE_RE = re.compile(r"\bparams/[\w.-]+\.ya?ml\b")
BIN = Path(sys.executable).parent
TAIL = 3000


@dataclass(frozen=True)
class Block:
    path: Path
    line: int              # 1-based line of the opening fence
    lang: str
    text: str
    skip_reason: str | None = None   # set (maybe empty) when marked "Not run by the tests"
    file: str | None = None          # where a file block is written
    run_by: str | None = None        # the test (tests/FILE.py::TEST) that runs this command instead

    @property
    def runs_here(self) -> bool:
        return self.skip_reason is None and self.run_by is None

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"

    @property
    def installs(self) -> bool:
        return self.lang in SHELL and bool(INSTALL_RE.search(self.text))


class BlockFailed(AssertionError):
    """A docs block exited non-zero (or wrote a params file `segbench check` refuses)."""


def _markers(lines: list[str], fence_index: int) -> tuple[str | None, str | None, str | None]:
    """The skip reason, file target and running test among the non-blank lines just above a fence."""
    reason = target = run_by = None
    above = [line.strip() for line in reversed(lines[:fence_index]) if line.strip()]
    for line in above[:3]:  # a file line, a skip line and another comment (<!-- test-command -->) may stack
        if (m := FILE_RE.match(line)) and target is None:
            target = m.group("path")
        elif (m := RUN_BY_RE.match(line)) and run_by is None:
            run_by = m.group("test")
        elif (m := SKIP_RE.match(line)) and reason is None:
            reason = m.group("reason").strip()
        elif not COMMENT_RE.match(line):
            break
    return reason, target, run_by


def collect(path: Path) -> list[Block]:
    """Every fenced block of `path` whose language the runner knows, with its markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group("fence"), m.group("lang").lower(), i
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        reason, target, run_by = _markers(lines, start)
        if lang in RUNNABLE or target:
            blocks.append(Block(path, start + 1, lang, "\n".join(body) + "\n", reason, target, run_by))
    return blocks


def scratch_copy(repo: Path, dest: Path) -> Path:
    """The repository's tracked and non-ignored files, committed on a fresh `main` (DVC needs git)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = repo / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    env = git_env()
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "scratch copy"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    # ../shared (CamVid and friends) where the repository has it, so relative data paths resolve.
    shared = repo.parent / "shared"
    if shared.is_dir() and not (dest.parent / "shared").exists():
        (dest.parent / "shared").symlink_to(shared)
    return dest


def git_env(work: Path | None = None) -> dict[str, str]:
    # The venv's segbench is an editable install of the real checkout: PYTHONPATH makes the scratch
    # copy's src/ (where a page may add a model) the one imported.
    extra = {"PYTHONPATH": str(work / "src")} if work else {}
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONUNBUFFERED="1", **extra,
                GIT_AUTHOR_NAME="docs", GIT_AUTHOR_EMAIL="docs@example.org",
                GIT_COMMITTER_NAME="docs", GIT_COMMITTER_EMAIL="docs@example.org")


def _shrink(block: Block, work: Path, keep: frozenset[str], done: set[str]) -> None:
    """Reduced size, once per page and file: params.yaml and every params/*.yaml the block names go
    through shrink_params, then keep only the first model and those the page's commands name
    (`keep`): a page shows a workflow, and every model of every shipped params file runs in the
    params-file tests. Once: a later block sees the file as the page's commands left it.

    The dropped models' and seeds' stages leave entries in the copy's dvc.lock that DVC parses and
    rewrites at every stage it runs (about 2.5 s each); they go, as `segbench check --prune-lock`
    deletes them: the cut made them, not the page."""
    from dvc.utils.serialize import modify_yaml
    from reduced import shrink_params  # tests/reduced.py: the one definition of "reduced size"

    from segbench.commands.check import LOCK_FILE, prune_lock

    for name in {"params.yaml", *PARAMS_FILE_RE.findall(block.text)} - done:
        if (work / name).is_file():
            done.add(name)
            shrink_params(work / name)
            with modify_yaml(work / name) as params:
                for model in list(params.get("models") or {})[1:]:
                    if model not in keep:
                        del params["models"][model]
            if name == "params.yaml" and (work / LOCK_FILE).is_file():
                prune_lock(work)


def named_words(blocks: list[Block]) -> frozenset[str]:
    """The words of a page's commands that run, which may name a model (models.unet..., evaluate@unet-0)."""
    shell = [block.text for block in blocks if block.lang in SHELL and block.runs_here and not block.file]
    return frozenset(re.findall(r"[A-Za-z_]\w*", "\n".join(shell)))


def _fail(block: Block, what: str, proc: subprocess.CompletedProcess) -> BlockFailed:
    out = (proc.stdout or "") + (proc.stderr or "")
    return BlockFailed(f"{block.where}: {what} exited {proc.returncode}\n{textwrap.indent(out[-TAIL:], '  ')}")


def run_block(block: Block, work: Path, timeout: float = 600, shrink: bool = True,
              keep: frozenset[str] = frozenset(), done: set[str] | None = None) -> None:
    env = git_env(work)
    if block.file:
        target = work / block.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.text, encoding="utf-8")
        if re.fullmatch(r"(params/[\w.-]+|params)\.ya?ml", block.file):
            # checked as written: a later block that uses it (cp ... params.yaml) runs it shrunk
            cmd = [sys.executable, "-m", "segbench", "--params", block.file, "check"]
            proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
            if proc.returncode:
                raise _fail(block, f"`segbench --params {block.file} check`", proc)
        return
    if block.lang == "yaml":
        try:
            yaml.safe_load(block.text)
        except yaml.YAMLError as exc:
            raise BlockFailed(f"{block.where}: YAML does not parse: {exc}") from None
        return
    if shrink:
        _shrink(block, work, keep, set() if done is None else done)
    cmd = ["bash", "-e", "-o", "pipefail", "-c", block.text] if block.lang in SHELL else [sys.executable, "-c", block.text]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise _fail(block, f"{block.lang} block", proc)


def run_page(blocks: list[Block], work: Path, shrink: bool = True) -> int:
    """Run a page's unmarked blocks in order in `work`; the number run."""
    ran, keep, done = 0, named_words(blocks), set()
    for block in blocks:
        if block.runs_here:
            run_block(block, work, shrink=shrink, keep=keep, done=done)
            ran += 1
    return ran
