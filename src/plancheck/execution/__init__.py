"""Where a run's tasks run: this process, a local process pool, or a Dask cluster.

The machinery of a run and nothing of the law: executors (`executor.py`, `local.py`,
`cluster.py`), the run directory every worker sees (`rundir.py`), hash partitioning into
spill files (`partition.py`), the per-process state a worker builds once (`worker.py`), and
the process settings a worker needs (`process.py`: open-files limit, glibc's malloc).

Arrows point into this package, never out of it: checks/batch/ hands it a `WorkerSetup`
(what each worker builds once) and task functions, and gets back each task's result. Nothing
here imports checks/, facts/, rulebook/ or engine/; the one seam toward documents/ is
`cluster._sees`, which asks a feed `Source` whether a worker can read it.
"""
