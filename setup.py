"""Only the optional C accelerator; all other metadata is in pyproject.toml."""

import sys

from setuptools import Extension, setup

# _cbars and _cflows MUST round as Python does: no fused multiply-add (gcc and clang; MSVC
# does not fuse).
SAME_ROUNDING = [] if sys.platform == "win32" else ["-ffp-contract=off"]

# optional=True: without a compiler the build goes on and asynctrace runs in pure Python.
setup(
    ext_modules=[
        Extension(
            "asynctrace._speedups",
            [
                "asynctrace/_speedups.c",
                "asynctrace/_records.c",
                "asynctrace/_cbuild.c",
                "asynctrace/_ccritical.c",
                "asynctrace/_tracedbody.c",
            ],
            depends=["asynctrace/_records.h", "asynctrace/_spanslots.h"],
            optional=True,
        ),
        Extension("asynctrace._cjson", ["asynctrace/_cjson.c"], optional=True),
        Extension(
            "asynctrace._cflows",
            ["asynctrace/_cflows.c"],
            depends=["asynctrace/_spanslots.h"],
            extra_compile_args=SAME_ROUNDING,
            optional=True,
        ),
        Extension(
            "asynctrace._ctimeline",
            ["asynctrace/_ctimeline.c"],
            depends=["asynctrace/_spanslots.h"],
            optional=True,
        ),
        Extension(
            "asynctrace._cbars",
            ["asynctrace/_cbars.c"],
            depends=["asynctrace/_spanslots.h"],
            extra_compile_args=SAME_ROUNDING,
            optional=True,
        ),
    ]
)
