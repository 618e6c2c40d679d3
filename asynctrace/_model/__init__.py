"""Build: records turned into spans and a trace after the run (or batch by batch), and what
every view derives from them: names from source lines, the critical path, the waits, the
timeline's rows and labels.

Nothing is imported here: each module is imported where it is used.
"""
