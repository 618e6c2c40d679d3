"""Run as ``-m corpus.relative_import``: a relative import of a sibling module."""

import asyncio
import sys

from . import _helper
from ._helper import double


async def main():
    print("argv:", sys.argv)
    print("__name__:", __name__, "__package__:", __package__)
    print("__spec__.name:", __spec__.name)
    print(_helper.describe())
    print(await double(5), await _helper.double(6))


if __name__ == "__main__":
    asyncio.run(main())
