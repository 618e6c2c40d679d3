"""``python -m asynctrace``: the same as the ``asynctrace`` command."""

from ._commands._cli import main

main()
