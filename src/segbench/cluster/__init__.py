"""`segbench cluster-repro`: what `dvc repro` does, with the ready stages running concurrently on Dask.

plan         DVC's own graph and order (dvc.repo.reproduce.plan_repro), targets checked
resources    what a stage asks of a worker (GPUs, the whole node), read from params.yaml
record       the coordinator's DVC side: skip / run cache / remove outs before, `dvc commit -f` after
worker       the function a Dask worker runs: the stage's command, on its own GPUs and cores
group        the stage's process-group leader: the group ends when its worker dies
coordinator  submits ready stages, records each as it finishes, reports progress and faults
connect      a local cluster, or an existing scheduler with a stated timeout
repro        the command's body: plan, lock the workspace, connect, run, summarise

The coordinator is the only writer of dvc.lock and the DVC cache; workers only run commands.
No library module imports this package, and no stage does (dvc.yaml needs no change for it).
"""
