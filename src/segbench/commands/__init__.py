"""One module per `segbench` command (the pipeline stages and the tools).

Each module has HELP, add_arguments(parser) and run(args). A stage script (stages/<stage>.py)
runs its own command through `common.stage_main`, so a stage depends on its command's code and
nothing of the others'; `segbench.cli` only dispatches.
"""
