"""Jobs: one module per kind of run (election, batch, withdrawals, audit, rules audit, yearend, report).

A job takes validated parameters and returns one `JobResult` (result.py): its findings and other
events in order, its summary, what it covered, the exit status it implies and the outputs it wants
written. `runner.py` owns everything around it, for the CLI and the service alike: outputs (checked
before any work, one commit per run), the run history, event emission and the exit status.
"""
