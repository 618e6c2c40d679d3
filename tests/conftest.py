"""What every test runs in: plain text from asynctrace and from pytest.

``NO_COLOR`` and ``FORCE_COLOR`` in the environment that runs the tests would colour (or not)
the terminal timeline that many tests read, in this process and in the programs they start;
the tests that check colour set them themselves.
"""

import os

for _name in ("NO_COLOR", "FORCE_COLOR"):
    os.environ.pop(_name, None)
