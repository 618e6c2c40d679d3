"""Schedule exploration: seeded perturbations of the loop's timers, runs per seed, shrinking,
and two runs' orders of events compared.

Nothing is imported here: each module is imported where it is used.
"""
