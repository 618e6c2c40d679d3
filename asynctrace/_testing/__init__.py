"""Front door in pytest: the ``atrace`` fixture, ``explore=N``, the loops it traces, its
report; the outline matcher behind ``asynctrace.testing.assert_tree``.

Nothing is imported here: each module is imported where it is used.
"""
