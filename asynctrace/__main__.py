"""``python -m asynctrace``: the same as the ``asynctrace`` command."""

from ._cli import main

main()
