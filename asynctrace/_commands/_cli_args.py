"""The words of asynctrace's command line: what ``run`` is given, and the output paths.

Problem: a newcomer's command line can mean something else than it says: ``run --html
scraper.py urls.txt`` makes ``scraper.py`` the page's path, ``run --otlp localhost:4317 app.py``
makes the endpoint the program, ``asynctrace prog.py`` forgets ``run``.

Solution: ``run``'s words are split here into ours and the program's, an output path is
checked before the program runs (it MUST NOT replace a file asynctrace did not write), and each
mistake is a :class:`UsageError`: one line naming the value and the fix, exit status 2.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Collection, Sequence

from .._export._files import written_by_us
from .._export._sanitize import shown, visible


class UsageError(Exception):
    """A mistake in asynctrace's own command line: reported in one line, exit status 2."""


def split_run_args(
    argv: Sequence[str], value_options: Collection[str]
) -> tuple[list[str], str | None, str | None, list[str]]:
    """(our options, script, module, program args): everything after the program is its own.

    ``--`` ends our options: the next word is the program (a script, or ``-m MODULE``).  A
    bare ``--otlp`` takes the next word as its endpoint when it is one (see :func:`_otlp_word`).
    """
    ours: list[str] = []
    i = 0
    options_ended = False
    while i < len(argv):
        arg = argv[i]
        if arg == "-m":
            if i + 1 >= len(argv):
                raise UsageError("-m needs a module name, e.g. `asynctrace run -m package.app`")
            return ours, None, argv[i + 1], list(argv[i + 2 :])
        if arg == "--" and not options_ended:
            options_ended = True
            i += 1
            continue
        if arg.startswith("-") and arg != "-" and not options_ended:
            ours.append(arg)
            if arg in value_options and i + 1 < len(argv):
                ours.append(argv[i + 1])
                i += 1
            elif arg == "--otlp" and i + 1 < len(argv) and _otlp_word(argv[i + 1]):
                ours[-1] = f"--otlp={argv[i + 1]}"
                i += 1
            i += 1
            continue
        return ours, arg, None, list(argv[i + 1 :])
    return ours, None, None, []


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):[0-9]{1,5}/?")


def _otlp_word(word: str) -> bool:
    """Whether the word after a bare ``--otlp`` is its endpoint (True) or the program (False).

    A URL (``http://...``, ``grpc://...``) or ``host:port`` (``localhost:4317``,
    ``[::1]:4317``) is the endpoint; an option, an existing file or a ``.py`` name is not.
    Anything else, or both at once, is a guess this MUST NOT make: a usage error.
    """
    if word.startswith("-"):
        return False
    endpoint = bool(_URL.match(word) or _HOST_PORT.fullmatch(word))
    is_file = os.path.isfile(word)
    if endpoint != (is_file or word.endswith(".py")):
        return endpoint
    what = "is both an endpoint and a file" if endpoint else "is neither an endpoint nor a program"
    raise UsageError(
        f"--otlp is followed by {word!r}, which {what}; write --otlp={shown(word)} for an"
        f" endpoint (a URL or host:port), or --otlp -- PROGRAM for the program"
    )


def check_writable(path: str, option: str, *, fix: str | None = None) -> None:
    """Fail before the program runs if ``path`` cannot be written (tried for real: root and
    special filesystems make permission bits meaningless), or if writing it would replace a
    file that asynctrace did not write: a ``.py`` name (existing or not: it is a program's
    name given where an output's was meant, as in ``--html scraper.py urls.txt``), or an
    existing regular file whose first bytes are not one of our outputs.  ``fix`` replaces the
    suggestion of another path (the default ``--json`` path: pass ``--json PATH``)."""
    if not path:
        raise UsageError(
            f"{option} is given an empty path (''); give a file path, e.g."
            f" {option} {output_name('trace', option)!r}"
        )
    if "\x00" in path:  # os functions raise ValueError on it, not OSError
        raise UsageError(f"{option} {path!r} contains a NUL character; choose another path")
    if os.path.isdir(path):
        raise UsageError(
            f"{option} {path!r} is a directory; give a file path such as "
            f"{os.path.join(path, 'trace.json')!r}"
        )
    other = fix or (
        f"give the output a path of its own, e.g. {option} {output_name(path, option)!r}"
    )
    if os.path.splitext(path)[1].lower() in (".py", ".pyw"):
        raise UsageError(
            f"{option} {path!r} names a Python file, which asynctrace never writes an output"
            f" to{_took_the_program(option)}; {other}"
        )
    if os.path.isfile(path):
        try:
            ours = written_by_us(path)
        except OSError as exc:
            raise UsageError(
                f"{option} {path!r} exists and cannot be read ({exc.strerror}) to check that"
                f" asynctrace wrote it; {other}"
            ) from None
        if not ours:
            raise UsageError(
                f"{option} {path!r} exists and is not a file asynctrace wrote, so it is left"
                f" alone; {other}, or delete that file first"
            )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(
            f"{option} {path!r}: directory {directory!r} does not exist; "
            "create it or choose another path"
        )
    existed = os.path.exists(path)
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise UsageError(
            f"{option} {path!r} is not writable ({exc.strerror}); choose a path you can write to"
        ) from None
    if not existed:
        os.remove(path)


def check_distinct(outputs: dict[str, str | None]) -> None:
    """Two outputs given one path would replace each other: refuse before the program runs."""
    seen: dict[str, str] = {}
    for option, path in outputs.items():
        if path is None or (os.path.exists(path) and not os.path.isfile(path)):
            continue  # /dev/stdout twice is fine: each output is written in place
        key = os.path.realpath(path)
        if key in seen:
            raise UsageError(
                f"{option} {path!r} is also the {seen[key]} path; give each output its own"
                f" path, e.g. {option} {output_name(path, option)!r}"
            )
        seen[key] = option


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # either missing, or a NUL in the name
        return False


def _took_the_program(option: str) -> str:
    """The likely mistake behind a ``.py`` output path of ``run``."""
    return "" if option == "-o" else f" (did {option} take the program as its value?)"


_OUTPUT_SUFFIXES = {"--json": ".trace.json", "--otlp-json": ".otlp.json"}


def output_name(path: str, option: str) -> str:
    """A file name for ``option``'s output next to the name given (``scraper.html``)."""
    stem = os.path.basename(path).split(".")[0] or "trace"
    return stem + _OUTPUT_SUFFIXES.get(option, ".html")


def looks_like_a_program(word: str) -> bool:
    """``asynctrace prog.py``: a script given where the command goes."""
    return word.lower().endswith((".py", ".pyw")) or os.path.isfile(word)


def shell_words(args: Sequence[str], limit: int = 200) -> str:
    """``args`` as one shell command line for a message; past ``limit`` characters, the first
    word (the script) and ``...``."""
    text = visible(shlex.join(args))
    return text if len(text) <= limit else visible(shlex.quote(args[0])) + " ..."


def _bytes(n: int) -> str:
    """A file size for a message: bytes, KiB or MiB, one decimal."""
    if n < 2**10:
        return "1 byte" if n == 1 else f"{n:,} bytes"
    if n < 2**20:
        return f"{n / 2**10:,.1f} KiB"
    return f"{n / 2**20:,.1f} MiB"


def too_large(size: int, limit: int, max_size: float) -> str:
    """``4.9 KiB, more than --max-size 0.001 MiB (1.0 KiB)``: true at the precision shown."""
    size_text, limit_text = _bytes(size), _bytes(limit)
    if size_text == limit_text:  # 1.0 MiB, more than 1.0 MiB: say it in bytes
        size_text, limit_text = f"{size:,} bytes", f"{limit:,} bytes"
    same = limit_text == f"{max_size:,.1f} MiB"
    return f"{size_text}, more than --max-size {max_size:g} MiB" + (
        "" if same else f" ({limit_text})"
    )
