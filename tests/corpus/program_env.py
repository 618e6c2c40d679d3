"""sys.argv, __name__, __file__, stdin and a sibling module, as under plain python; and at exit
the interpreter as the program left it (the GIL's switch interval: asynctrace run changes it
while it writes its outputs)."""

import asyncio
import atexit
import os
import sys

import _helper


async def read_lines():
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, sys.stdin.read)


async def main():
    print("argv:", sys.argv)
    print("__name__:", __name__)
    print("__file__ basename:", os.path.basename(__file__), "absolute:", os.path.isabs(__file__))
    print(
        "sys.path[0] is the script's dir:",
        sys.path[0] == os.path.dirname(os.path.abspath(__file__)),
    )
    print("main module file:", os.path.basename(sys.modules["__main__"].__file__))
    print("__spec__:", __spec__)
    print(_helper.describe(), await _helper.double(21))
    text = await read_lines()
    print("stdin lines:", text.splitlines())
    print("input reversed:", text[::-1].strip())


if __name__ == "__main__":
    atexit.register(lambda: print("switch interval at exit:", sys.getswitchinterval()))
    asyncio.run(main())
