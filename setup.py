"""Only the optional C accelerator; all other metadata is in pyproject.toml."""

from setuptools import Extension, setup

# optional=True: without a compiler the build goes on and asynctrace runs in pure Python.
setup(
    ext_modules=[
        Extension("asynctrace._speedups", ["asynctrace/_speedups.c"], optional=True),
        Extension("asynctrace._cjson", ["asynctrace/_cjson.c"], optional=True),
    ]
)
