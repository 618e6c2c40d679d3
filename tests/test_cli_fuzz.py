"""The command line under random arguments (issue 7, point 5): never a traceback.

Every command line either works (exit status 0) or is one ``asynctrace: error:`` line on
stderr and exit status 2.  ``main`` runs in-process; programs it may run are a harmless script
in a scratch directory, and path values cannot leave that directory (no ``/``), because a
fuzzer running as root must not write around the filesystem.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asynctrace._commands._cli import _VALUE_OPTIONS, main
from asynctrace._commands._cli_args import UsageError, split_run_args
from asynctrace._export._chrome import write_chrome_json
from asynctrace._export._sanitize import shown
from asynctrace._model._spans import Span, Trace

ERROR_LINE = re.compile(r"^asynctrace: error: \S.*$")
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Strings that broke or nearly broke parsers somewhere: numbers out of range, NaN, NUL, escapes.
NASTY = [
    "",
    "0",
    "-1",
    "1e309",
    "nan",
    "inf",
    "-inf",
    "0x10",
    "1_000",
    " 7 ",
    "99999999999999999999999999",
    "9" * 5000,
    "\x00",
    "a\x00b",
    "\x1b[2J",
    "\udc80",
    "\u202e",
    "é",
    "-",
    "--",
    "-x",
    ".",
    "..",
    "nodir/x.json",
    "x" * 300,
    "=",
]
SAFE_NAME = st.text(
    alphabet=st.characters(blacklist_characters="/\\", blacklist_categories=["Cs"]), max_size=12
)
VALUE = st.one_of(st.sampled_from(NASTY), SAFE_NAME, st.integers().map(str), st.floats().map(str))

RUN_FLAGS = [
    "--no-json",
    "--virtual-time",
    "--no-timeline",
    "--record-args",
    "-h",
    "--help",
    "--bogus",
    "-q",
]
RUN_VALUED = [
    "--json",
    "--html",
    "--otlp-json",
    "--otlp-protocol",
    "--service-name",
    "--blocked-threshold",
    "--max-spans",
    "--flush-interval",
    "--width",
]
VIEW_FLAGS = ["-h", "--help", "--bogus", "-q", "--"]
VIEW_VALUED = ["-o", "--output", "--width", "--max-size"]


def _options(flags: list[str], valued: list[str]) -> st.SearchStrategy[list[str]]:
    """A random list of option words: flags, ``--opt value``, ``--opt=value``, stray values."""
    one = st.one_of(
        st.sampled_from(flags).map(lambda f: [f]),
        st.tuples(st.sampled_from(valued), VALUE).map(list),
        st.tuples(st.sampled_from(valued), VALUE).map(lambda t: [f"{t[0]}={t[1]}"]),
        st.sampled_from(valued).map(lambda f: [f]),  # a value option with no value
    )
    return st.lists(one, max_size=5).map(lambda words: [w for ws in words for w in ws])


SCRATCH: list[Path] = []


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a harmless program and a JSON timeline; ``main`` runs inside it."""
    root = tmp_path_factory.mktemp("fuzz")
    SCRATCH[:] = [root]
    (root / "prog.py").write_text("x = 1\n")
    trace = Trace(
        [
            Span(1, None, "run", "prog.py", 0.0, 1.0, 1, start_seq=0, end_seq=5),
            Span(2, 1, "task", "main", 0.0, 1.0, 2, start_seq=1, end_seq=4),
            Span(3, 2, "await", "asyncio.sleep(1)", 0.0, 1.0, 2, start_seq=2, end_seq=3),
        ]
    )
    write_chrome_json(trace, root / "t.json")
    data = (root / "t.json").read_bytes()
    (root / "cut.json").write_bytes(data[: len(data) * 2 // 3])
    (root / "dir.json").mkdir()
    return root


def _call(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in-process, in the scratch directory: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    # per call, not per module: under xdist other modules' tests run between these
    os.chdir(SCRATCH[0])
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(argv)
            except SystemExit as exc:
                code = exc.code
            else:  # pragma: no cover - main always exits
                code = "returned"
    finally:
        os.chdir(old)
    assert isinstance(code, int), (argv, code)
    return code, out.getvalue(), err.getvalue()


def _check(argv: list[str]) -> tuple[int, str]:
    code, out, err = _call(argv)
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1, (argv, err)
        assert ERROR_LINE.match(lines[0]), (argv, lines[0])
        assert re.search(r"; |\(see `asynctrace|e\.g\. ", lines[0]), ("no fix given", lines[0])
    else:
        assert "asynctrace: error" not in err, (argv, err)
    return code, err


PROGRAMS = st.sampled_from(
    [[], ["prog.py"], ["prog.py", "--json", "x"], ["missing.py"], ["-m"], ["-m", "no_such_mod_q"]]
)


@FUZZ
@given(options=_options(RUN_FLAGS, RUN_VALUED), program=PROGRAMS)
def test_run_arguments_never_give_a_traceback(
    scratch: Path, options: list[str], program: list[str]
) -> None:
    _check(["run", *options, *program])


@FUZZ
@given(
    options=_options(VIEW_FLAGS, VIEW_VALUED),
    trace=st.one_of(
        st.sampled_from(["t.json", "cut.json", "dir.json", "missing.json", "prog.py"]),
        SAFE_NAME,
        st.sampled_from(NASTY),
    ),
    before=st.booleans(),
)
def test_view_arguments_never_give_a_traceback(
    scratch: Path, options: list[str], trace: str, before: bool
) -> None:
    argv = ["view", trace, *options] if before else ["view", *options, trace]
    _check(argv)


@FUZZ
@given(
    words=st.lists(
        st.one_of(st.sampled_from(["run", "view", "--version", "-h", "--help", "-"]), VALUE),
        max_size=4,
    )
)
def test_top_level_arguments_never_give_a_traceback(scratch: Path, words: list[str]) -> None:
    if not words:  # bare `asynctrace` prints the usage summary (several lines), exit status 2
        code, _, err = _call(words)
        assert code == 2 and err.startswith("usage: asynctrace run") and "Traceback" not in err
        return
    if words[0] == "run":
        words = ["run"]  # no program, so nothing runs; the run fuzz test covers the options
    _check(words)


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["run", "--blocked-threshold", "nan", "prog.py"], "'nan' is not a positive number"),
        (["run", "--blocked-threshold", "inf", "prog.py"], "'inf' is not a positive number"),
        (["run", "--width", "99999999", "prog.py"], "from 24 to 10000"),
        (["view", "--width", "99999999999", "t.json"], "from 24 to 10000"),
        (["view", "--width", "0", "t.json"], "from 24 to 10000"),
        (["view", "--max-size", "0", "t.json"], "--max-size 1024"),
        (["view", "--max-size", "nan", "t.json"], "positive number of MiB"),
        (["view", "t.json", "-o", "a\x00b.html"], "a\\x00b.html"),
        (["run", "--json", "a\x00b.json", "prog.py"], "a\\x00b.json"),
    ],
)
def test_found_by_the_fuzzer(scratch: Path, argv: list[str], mentions: str) -> None:
    code, err = _check(argv)
    assert code == 2
    assert mentions in err, err


def test_a_fine_view_still_works(scratch: Path) -> None:
    code, out, err = _call(["view", "--width", "60", "--max-size", "1", "t.json"])
    assert code == 0, err
    assert "main()" in out
    assert all(ch in string.printable or ord(ch) > 127 for ch in out)


@FUZZ
@given(
    word=st.one_of(
        st.sampled_from(
            ["localhost:4317", "[::1]:4317", "http://h:1", "prog.py", "t.json", "-m", "--"]
        ),
        VALUE,
    ),
    rest=st.lists(VALUE, max_size=2),
)
def test_a_word_after_otlp_is_the_endpoint_the_program_or_a_hint(
    scratch: Path, word: str, rest: list[str]
) -> None:
    """Issue 15: ``--otlp WORD`` never guesses: endpoint, program, or one line naming both."""
    old = os.getcwd()
    os.chdir(SCRATCH[0])
    try:
        ours, script, module, _ = split_run_args(["--otlp", word, *rest], _VALUE_OPTIONS)
    except UsageError as exc:
        message = str(exc)
        assert "\n" not in message, message
        # the hint is about the word after an --otlp: this one, or one of a later --otlp
        hinted = any(f"--otlp={shown(w)}" in message for w in (word, *rest))
        assert hinted or message.startswith("-m needs"), message
        return
    finally:
        os.chdir(old)
    if ours[0] == "--otlp":  # the word is the program, or an option of ours
        assert word.startswith("-") or word in (script, module), (word, ours, script)
    else:
        assert ours[0] == f"--otlp={word}" and ":" in word
