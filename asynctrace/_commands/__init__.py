"""Front doors on the command line: ``asynctrace run``, ``view`` and ``attach`` (its link to
the target, the target's side, the tasks that existed at attach).

Nothing is imported here: each module is imported where it is used.
"""
