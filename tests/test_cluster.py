"""segbench cluster-repro: a tiny DVC project (download -> train matrix -> profile -> plot) run on a
local Dask cluster leaves the lock a sequential `dvc repro` leaves, runs stages side by side, keeps a
profile stage alone, survives a failing stage and a killed worker, and refuses bad input in one line."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("distributed")

STEP = '''\
import hashlib, json, os, pathlib, sys, time
name, deps = sys.argv[1], sys.argv[2:]
started = time.time()
marks = pathlib.Path("times"); marks.mkdir(exist_ok=True)
tries = marks / (name + ".tries")
tries.write_text(str(int(tries.read_text()) + 1 if tries.exists() else 1))
if pathlib.Path("kill-" + name).exists() and tries.read_text() == "1":
    import psutil  # the Dask worker running this stage dies mid-stage (the nearest python above the
    worker = psutil.Process().parent()  # stage's shell and its group leader: a shell may not exec `-c`)
    while "python" not in worker.name() or "segbench.cluster.group" in " ".join(worker.cmdline()):
        worker = worker.parent()
    (marks / (name + ".orphan")).write_text(str(os.getpid()))
    worker.kill()
    time.sleep(60)  # a stage left running would outlive the test
out = pathlib.Path("out") / (name.replace("@", "-") + ".txt"); out.parent.mkdir(exist_ok=True)
out.write_text("partial")  # what an interrupted stage leaves behind
sleep = pathlib.Path("sleep-" + name.split("@")[0])  # a slow stage group, for the tests that interrupt one
time.sleep(float(sleep.read_text() if sleep.exists() else os.environ.get("STEP_SLEEP", "0.4")))
if pathlib.Path("fail-" + name).exists():
    sys.exit("step " + name + ": told to fail")
digest = hashlib.sha256(name.encode() + b"".join(pathlib.Path(d).read_bytes() for d in deps)).hexdigest()
out.write_text(digest + "\\n")
(marks / (name + ".json")).write_text(json.dumps([started, time.time()]))
'''

DVC_YAML = """\
stages:
  download:
    cmd: python step.py download
    deps: [step.py]
    outs: [out/download.txt]
  train:
    matrix: {model: [a, b], seed: [0, 1]}
    cmd: python step.py train@${item.model}-${item.seed} out/download.txt
    deps: [step.py, out/download.txt]
    params:
      - models.${item.model}
    outs:
      - out/train-${item.model}-${item.seed}.txt
  profile:
    foreach: [a, b]
    do:
      cmd: python step.py profile@${item} out/train-${item}-0.txt
      deps:
        - step.py
        - out/train-${item}-0.txt
      outs:
        - out/profile-${item}.txt
  plot:
    cmd:
      - python step.py plot out/profile-a.txt out/profile-b.txt out/train-a-1.txt out/train-b-1.txt
      - cp out/plot.txt out/score.txt
    deps: [step.py, out/profile-a.txt, out/profile-b.txt, out/train-a-1.txt, out/train-b-1.txt]
    outs:
      - out/plot.txt
      - out/score.txt: {cache: false}  # kept in git, as metrics are: it cannot travel through a DVC remote
"""
PARAMS = {"seeds": [0, 1], "models": {"a": {"arch": "unet"}, "b": {"arch": "unet", "train": {"device": "cpu"}}}}
STAGES = ["download", "train@a-0", "train@a-1", "train@b-0", "train@b-1", "profile@a", "profile@b", "plot"]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def dvc(root: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("template") / "project"
    root.mkdir()
    (root / "step.py").write_text(STEP)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    (root / ".gitignore").write_text("times/\nfail-*\nkill-*\nsleep-*\n")
    git(root, "init", "-q")
    dvc(root, "init", "-q")
    dvc(root, "config", "core.analytics", "false")
    git(root, "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny project")
    return root


@pytest.fixture
def project(template, tmp_path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(template, root, symlinks=True)
    return root


@pytest.fixture(scope="module")
def sequential(template, tmp_path_factory):
    """`dvc repro` of the tiny project, once for the module; started at once, so it runs beside the
    first cluster run. Call it for the finished project."""
    root = tmp_path_factory.mktemp("sequential") / "project"
    shutil.copytree(template, root, symlinks=True)
    baseline = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "-q"], cwd=root)

    def finished() -> Path:
        assert baseline.wait(timeout=120) == 0
        return root

    yield finished
    baseline.wait(timeout=120)


def assert_like_dvc_repro(project: Path, sequential: Path) -> None:
    assert lock_entries(project) == lock_entries(sequential)  # every dep, out and params hash, field by field
    assert "up to date" in dvc(project, "status")
    for entry in lock_entries(project).values():  # every out is in the DVC cache, as after dvc repro
        md5 = entry["outs"][0]["md5"]
        assert (project / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).is_file()


def cluster_repro(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "segbench", "cluster-repro", *args], cwd=root, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def lock_entries(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]


def spans(root: Path) -> dict[str, tuple[float, float]]:
    return {p.stem: tuple(json.loads(p.read_text())) for p in (root / "times").glob("*.json")}


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_the_lock_equals_dvc_repro_and_stages_ran_side_by_side(project, sequential):
    done = cluster_repro(project, "--workers", "3")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "8 ran; 0 unchanged" in done.stdout and "dashboard: http" in done.stdout
    assert "started train@a-0 on tcp://" in done.stdout and "finished plot on tcp://" in done.stdout
    assert_like_dvc_repro(project, sequential())
    times = spans(project)
    trains = [times[f"train@{m}-{s}"] for m in "ab" for s in (0, 1)]
    assert any(overlaps(x, y) for i, x in enumerate(trains) for y in trains[i + 1:]), times  # concurrency happened
    for profile in ("profile@a", "profile@b"):  # a profile stage has its node to itself
        assert not any(overlaps(times[profile], span) for name, span in times.items() if name != profile), times


def test_a_killed_worker_reruns_its_stage(project, hand_cluster):
    (project / "kill-train@a-1").touch()
    done = cluster_repro(project, "--scheduler", hand_cluster.ready(), "train@a-1")  # its nanny restarts it
    assert done.returncode == 0, done.stderr + done.stdout
    assert (project / "times" / "train@a-1.tries").read_text() == "2"  # killed once, run again by a new worker
    import psutil  # the killed try ended with its worker, rather than run on beside the retry
    first = int((project / "times" / "train@a-1.orphan").read_text())
    assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE
    assert set(lock_entries(project)) == {"download", "train@a-1"}
    assert "up to date" in dvc(project, "status", "train@a-1")


def test_dry_runs_and_records_nothing(project):
    done = cluster_repro(project, "--dry")
    assert done.returncode == 0 and "train@a-0: would run" in done.stdout
    assert not (project / "dvc.lock").exists() and not (project / "times").exists()


@pytest.mark.parametrize("args, message", [
    (["--scheduler", "tcp://127.0.0.1:9", "--connect-timeout", "0.5"], "scheduler tcp://127.0.0.1:9: unreachable after 0.5 s"),
    (["trian@a-0"], "trian@a-0: not a stage of dvc.yaml (did you mean 'train@a-0'?)"),
])
def test_bad_input_is_one_line(project, args, message):
    done = cluster_repro(project, *args)
    assert done.returncode == 2 and done.stderr.strip() == f"segbench: error: {message}" or \
        done.stderr.strip().startswith(f"segbench: error: {message}"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (project / "dvc.lock").exists()


def test_a_second_coordinator_is_refused(project):
    lock = project / ".dvc" / "tmp" / "segbench-cluster.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(f"{os.getpid()} {os.uname().nodename}")  # a live holder on this machine
    done = cluster_repro(project, "--workers", "1")
    assert done.returncode == 2 and "another cluster-repro (pid" in done.stderr, done.stderr
    assert not (project / "dvc.lock").exists() and lock.exists()


def test_a_gpu_stage_without_a_gpu_worker_is_refused(project):
    params = dict(PARAMS, models={**PARAMS["models"], "b": {"arch": "unet", "train": {"device": "cuda"}}})
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    done = cluster_repro(project, "--workers", "2")
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert line == textwrap.dedent("""\
        segbench: error: train@b-0 asks for 1 GPU(s) but no worker has a GPU resource; start workers with \
`dask worker ... --resources "node=K,GPU=1"` or set its device to cpu"""), line
    assert not (project / "dvc.lock").exists()


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


def test_ctrl_c_cancels_running_stages_and_removes_their_partial_outputs(project, hand_cluster):
    (project / "sleep-train").write_text("60")
    coordinator = subprocess.Popen([sys.executable, "-m", "segbench", "cluster-repro", "--scheduler", hand_cluster.ready()],
                                   cwd=project, stdout=subprocess.PIPE, text=True)
    wait_for(lambda: len(list((project / "times").glob("train@*.tries"))) >= 2)
    coordinator.send_signal(signal.SIGINT)
    assert coordinator.wait(timeout=30) == 130
    assert "cancelled train@" in coordinator.stdout.read()
    assert set(lock_entries(project)) == {"download"}  # what finished is kept
    assert not list((project / "out").glob("train-*")), list((project / "out").iterdir())
    assert not (project / ".dvc" / "tmp" / "segbench-cluster.lock").exists()


def test_a_killed_coordinator_then_a_failing_stage_keep_what_finished_and_reruns_do_the_rest(project, hand_cluster):
    (project / "sleep-profile").write_text("60")
    coordinator = subprocess.Popen([sys.executable, "-m", "segbench", "cluster-repro", "--workers", "3"], cwd=project,
                                   stdout=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: (project / "times" / "profile@a.tries").exists() or (project / "times" / "profile@b.tries").exists())
    time.sleep(1.5)  # a profile stage has the node alone: whatever finished before it is recorded by now
    os.killpg(coordinator.pid, signal.SIGKILL)  # the coordinator with its local cluster, as a lost login node would
    coordinator.wait()
    finished = {p.stem for p in (project / "times").glob("*.json")}
    assert set(lock_entries(project)) == finished, finished
    assert {"download", "train@a-0"} <= finished or {"download", "train@b-0"} <= finished, finished
    assert (project / ".dvc" / "tmp" / "segbench-cluster.lock").exists()  # stale: taken over below

    (project / "sleep-profile").unlink()
    (project / "fail-profile@b").touch()
    done = cluster_repro(project, "--scheduler", hand_cluster.ready())
    assert done.returncode == 2
    assert "FAILED profile@b: exit 1" in done.stdout and "told to fail" in done.stdout  # its log's tail
    assert "1 failed (profile@b); 1 not run because a stage they need failed (plot)" in done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith("segbench: error: 1 stage(s) failed: profile@b")
    assert "profile@a" in lock_entries(project) and "profile@b" not in lock_entries(project)
    assert (project / "out" / "profile-b.txt").read_text() == "partial"  # left for a look, as dvc repro leaves it

    (project / "fail-profile@b").unlink()
    again = cluster_repro(project, "--scheduler", hand_cluster.ready())
    assert again.returncode == 0 and "2 ran; 6 unchanged" in again.stdout, again.stdout
    assert "up to date" in dvc(project, "status")


class HandCluster:
    """`dask scheduler` and `dask worker` processes started from the shell, as on a cluster: first one
    worker without `node` slots, then (ready()) two with slots, each in its own git clone of `upstream`
    (where the coordinator's commits are pushed), with a local-directory DVC remote."""

    def __init__(self, template: Path, base: Path) -> None:
        self.base, self.upstream = base, base / "upstream"
        shutil.copytree(template, self.upstream, symlinks=True)
        dvc(self.upstream, "remote", "add", "-d", "store", str(base / "dvc-remote"))
        git(self.upstream, *COMMIT, "a DVC remote", "--", ".dvc/config")
        self.clones = [base / "clone-0", base / "clone-1"]
        for clone in self.clones:
            git(base, "clone", "-q", str(self.upstream), str(clone))
        self.dask = [str(Path(sys.executable).parent / "dask")]
        address_file = base / "scheduler.json"
        self.processes = [self._start("scheduler", "--scheduler-file", str(address_file), "--port", "0",
                                      "--dashboard-address", ":0")]
        wait_for(address_file.exists)
        self.address = json.loads(address_file.read_text())["address"]
        self.processes.append(self._start("worker", self.address, "--nthreads", "1"))
        wait_for(lambda: len(workers_of(self.address)) == 1)
        self.bare = cluster_repro(self.upstream, "--scheduler", self.address, "download")  # no slots anywhere

    def _start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen([*self.dask, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})})

    def ready(self) -> str:
        """The address, once the two workers with slots have joined (again, after one was killed)."""
        if len(self.processes) == 2:
            for clone in self.clones:
                self.processes.append(self._start("worker", self.address, "--nthreads", "2", "--resources", "node=2",
                                                  env={"SEGBENCH_CLONE": str(clone), "STEP_SLEEP": "0"}))
        wait_for(lambda: len(workers_of(self.address)) == 3)
        return self.address

    def close(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            process.wait(timeout=30)


COMMIT = ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm"]


@pytest.fixture(scope="module")
def hand_cluster(template, tmp_path_factory):
    cluster = HandCluster(template, tmp_path_factory.mktemp("hand"))
    yield cluster
    cluster.close()


def one_line_error(done: subprocess.CompletedProcess, message: str) -> None:
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr + done.stdout
    assert message in done.stderr, done.stderr


def test_workers_started_by_hand_in_their_own_clones_without_a_shared_file_system(hand_cluster, sequential, tmp_path):
    """No shared file system: the outputs travel through the DVC remote; a worker without `node` slots,
    a dirty workspace and a commit the workers cannot fetch are each one line."""
    one_line_error(hand_cluster.bare, "no worker has a `node` resource")
    project, clones = tmp_path / "coordinator", hand_cluster.clones
    git(tmp_path, "clone", "-q", str(hand_cluster.upstream), str(project))
    (project / "step.py").write_text(STEP + "# edited\n")
    dirty = cluster_repro(project, "--no-shared-fs", "--scheduler", "tcp://127.0.0.1:9")
    one_line_error(dirty, "--no-shared-fs: uncommitted changes to step.py; workers check out commit")
    git(project, "checkout", "-q", "--", "step.py")

    for clone in clones:
        shutil.rmtree(clone / "times", ignore_errors=True)
    done = cluster_repro(project, "--scheduler", hand_cluster.ready(), "--no-shared-fs")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "8 ran; 0 unchanged" in done.stdout, done.stdout
    assert not (project / "times").exists()  # the commands ran in the clones, not in this workspace
    assert {p.stem for c in clones for p in (c / "times").glob("*.json")} == set(STAGES)
    assert_like_dvc_repro(project, sequential())  # with out/score.txt, carried back in the result
    assert (project / "out" / "score.txt").read_text() == (project / "out" / "plot.txt").read_text()

    git(project, *COMMIT, "not pushed", "--allow-empty")  # the workers cannot fetch this commit
    before = (project / "dvc.lock").read_text()
    moved = cluster_repro(project, "--scheduler", hand_cluster.address, "--no-shared-fs", "-f", "download")
    one_line_error(moved, "cannot reach the coordinator's commit")
    assert (project / "dvc.lock").read_text() == before and (project / "out" / "download.txt").exists()


def workers_of(address: str) -> dict:
    from distributed import Client

    with Client(address, timeout=10) as client:
        return client.scheduler_info(n_workers=-1)["workers"]


def test_no_library_module_or_stage_imports_the_executor():
    """The executor sits beside the commands: the library and the stages run the same without it."""
    repo = Path(__file__).resolve().parents[1]
    package = repo / "src" / "segbench"
    library = [p for p in package.rglob("*.py") if p.relative_to(package).parts[0] != "cluster"
               and p != package / "commands" / "cluster_repro.py"]
    users = [str(p.relative_to(repo)) for p in [*library, *(repo / "stages").glob("*.py")]
             if any(name in p.read_text() for name in ("segbench.cluster", "from .cluster", "from ..cluster"))]
    assert not users, users
