"""`mind sweep`: a grid of ordinary runs (presets x datasets x methods x `--set` values x
seeds), run side by side as Ray tasks, resumable, summarised in SWEEP/summary.csv and
summary.md (docs/sweeps.md). Ray is the optional `sweep` extra; nothing here imports it until a
sweep runs.

- grid.py: the grid, its trials and their names, sweep.json
- trial.py: one trial as a Ray task runs it (runner.start_run / resume_run), and what a
  trial's directory says of it
- driver.py: Ray, scheduling, stopping, the summary
- summary.py, plots.py: summary.csv, summary.md, the TAg plots
- progress.py: the progress line and its ETA
- command.py: the command's flags
"""
