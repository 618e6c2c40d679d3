"""The docs run: every code block of README.md and docs/*.md is executed or marked as not run.

Problem: examples in docs drift from the code (a module that exists nowhere, an output that
changed, a command that writes another file than the next one reads), and nobody notices
until a newcomer copies one.

Solution: each page's fenced blocks are run in order in one fresh directory (the repository's
``examples/`` copied in), as a newcomer would copy them.  What a block is, is said by an HTML
comment on the line before it, else inferred from its language:

- ``<!-- docs-test: pytest -->``: a test file, run by pytest (pytester) in a project with no
  configuration at all (pytest-asyncio, when installed, in its default strict mode): it MUST
  pass.  ``pytest fails``: it MUST fail.
- ``<!-- docs-test: run -->``, and an unmarked ``python`` block: a program, run with this
  Python; it MUST exit 0.
- ``<!-- docs-test: file NAME -->``: saved as ``NAME`` for the blocks after it.
- ``<!-- docs-test: output -->``: what the block before printed, compared loosely (below).
- ``<!-- docs-test: shell -->``, and an unmarked ``sh``/``console`` block whose commands are
  all ``asynctrace``: each command is run (``.venv/bin/`` is this interpreter's bin); a
  command followed by lines of output (``$ `` transcripts) is compared with them loosely,
  otherwise it MUST exit 0.
- ``<!-- docs-test: skip (why) -->``: not run; the reason is required.
- ``pycon`` blocks: the page runs as a doctest.

Any other block is a failure that names it: a new block MUST be run or say why it cannot be.

Loose comparison: every non-blank line shown must match a line of the real output, in order,
after white space is collapsed, runs of bar characters (``░█▓─┴``) become one, and ``…``, a
path under a temporary directory and a ``seq N`` number match anything.
"""

from __future__ import annotations

import doctest
import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
BIN = Path(sys.executable).parent

_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")
_MARK = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<mark>.*?)\s*-->\s*$")
_KINDS = ("pytest", "pytest fails", "run", "output", "shell")


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    mark: str | None  # the docs-test comment, if any

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a markdown page, with the marker on the line before each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        indent = len(fence["indent"])
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        body = "\n".join(line[indent:] for line in lines[i + 1 : j])
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        mark = _MARK.match(lines[k]) if k >= 0 else None
        found.append(Block(page, i + 1, fence["lang"], body + "\n", mark["mark"] if mark else None))
        i = j + 1
    return found


def kind_of(block: Block) -> str:
    """What to do with a block: one of _KINDS, ``file NAME``, ``skip``, ``doctest``; or raise."""
    mark = block.mark
    if mark is not None:
        if mark in _KINDS or re.fullmatch(r"file [\w./-]+", mark):
            return mark
        if re.fullmatch(r"skip \(.+\)", mark):
            return "skip"
        pytest.fail(
            f"{block.where}: unknown marker {mark!r}; use one of {_KINDS}, file NAME, skip (why)"
        )
    if block.lang == "pycon":
        return "doctest"
    if block.lang == "python":
        return "run"
    commands = _commands(block.text)
    if (
        block.lang in ("sh", "console", "shell", "bash", "")
        and commands
        and all(_is_ours(cmd) for cmd, _ in commands)
    ):
        return "shell"
    pytest.fail(
        f"{block.where}: a {block.lang or 'plain'} block that is neither run nor marked; put "
        "<!-- docs-test: skip (why) --> (or another docs-test marker) on the line before it"
    )


def _commands(text: str) -> list[tuple[str, list[str]]]:
    """The commands of a shell block and the output lines shown after each ($ transcripts)."""
    lines = text.splitlines()
    if any(line.startswith("$ ") for line in lines):
        found: list[tuple[str, list[str]]] = []
        for line in lines:
            if line.startswith("$ "):
                found.append((line[2:], []))
            elif found:
                found[-1][1].append(line)
        return found
    return [(line, []) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _is_ours(command: str) -> bool:
    words = shlex.split(command, comments=True)
    return bool(words) and (
        words[0].endswith("asynctrace") or words[:3] == ["python", "-m", "asynctrace"]
    )


def _loose(line: str) -> str:
    line = re.sub(r"[░█▓─┴┬│]+", "#", line)
    return " ".join(line.split())


def _pattern(line: str) -> str:
    pattern = _loose(line).replace("[", "[[]").replace("?", "[?]")
    pattern = re.sub(r"/tmp/\S*?(?=[\s)]|$)", "*", pattern)
    pattern = re.sub(r"seq \d+", "seq *", pattern)
    return pattern.replace("…", "*")


def unmatched(shown: str, actual: str) -> list[str]:
    """The lines of ``shown`` that do not match ``actual`` in order (loosely; see above)."""
    real = [_loose(line) for line in actual.splitlines()]
    at = 0
    missing: list[str] = []
    for line in shown.splitlines():
        if not line.strip():
            continue
        pattern = _pattern(line)
        for k in range(at, len(real)):
            if fnmatch.fnmatchcase(real[k], pattern):
                at = k + 1
                break
        else:
            missing.append(line)
    return missing


def _run_shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = command.replace(".venv/bin/", f"{BIN}/")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("COLUMNS", None)
    return subprocess.run(
        command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def run_page(page: Path, pytester: pytest.Pytester) -> list[str]:
    """Run every block of ``page`` in pytester's directory; the failures, one line each."""
    work = pytester.path
    shutil.copytree(ROOT / "examples", work / "examples", ignore=shutil.ignore_patterns("__*"))
    failures: list[str] = []
    output = ""
    for block in blocks(page):
        kind = kind_of(block)
        where = block.where
        if kind in ("skip", "doctest"):
            continue
        if kind.startswith("file "):
            (work / kind[5:]).write_text(block.text)
        elif kind == "output":
            missing = unmatched(block.text, output)
            if missing:
                failures.append(f"{where}: not in the output: {missing[0]!r}\n{output}")
        elif kind in ("pytest", "pytest fails"):
            (work / "test_doc_example.py").write_text(block.text)
            # a subprocess: a fresh interpreter, as in a new project (and in-process runs would
            # import a second copy of asynctrace's modules, see test_pytest_plugin.py)
            result = pytester.runpytest_subprocess("test_doc_example.py", "-p", "no:cacheprovider")
            output = result.stdout.str()
            outcome = result.parseoutcomes()
            failed = outcome.get("failed", 0) + outcome.get("errors", 0)
            if kind == "pytest" and (failed or not outcome.get("passed")):
                failures.append(f"{where}: the test did not pass\n{output}")
            if kind == "pytest fails" and not failed:
                failures.append(f"{where}: the test was meant to fail\n{output}")
            (work / "test_doc_example.py").unlink()
        elif kind == "run":
            (work / "doc_example.py").write_text(block.text)
            done = subprocess.run(
                [sys.executable, "doc_example.py"],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=120,
            )
            output = done.stdout + done.stderr
            if done.returncode != 0:
                failures.append(f"{where}: exit status {done.returncode}\n{output}")
        elif kind == "shell":
            output = ""
            for command, shown in _commands(block.text):
                done = _run_shell(command, work)
                output += done.stdout + done.stderr
                if shown:
                    missing = unmatched("\n".join(shown), done.stdout + done.stderr)
                    if missing:
                        failures.append(f"{where}: `{command}` did not print {missing[0]!r}")
                elif done.returncode != 0:
                    failures.append(
                        f"{where}: `{command}` exit status {done.returncode}\n{done.stderr}"
                    )
    return failures


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_block_of_the_page_runs_or_says_why_not(
    page: Path, pytester: pytest.Pytester
) -> None:
    failures = run_page(page, pytester)
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("page", [p for p in PAGES if ">>> " in p.read_text()], ids=str)
def test_pycon_examples_run_as_doctests(page: Path) -> None:
    result = doctest.testfile(str(page), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 1
    assert result.failed == 0


def test_docs_use_only_public_names() -> None:
    """Code in the docs imports and calls only what asynctrace exports (not ``asynctrace._x``)."""
    private = re.compile(r"\basynctrace\._[a-z]\w*(?!\.so)")
    found = [
        f"{block.where}: {match.group()}"
        for page in PAGES
        for block in blocks(page)
        if block.lang in ("python", "pycon", "sh", "console")
        for match in private.finditer(block.text)
    ]
    prose = [
        f"{page.relative_to(ROOT)}: {match.group()}"
        for page in PAGES
        for match in re.finditer(r"`[^`\n]*\basynctrace\._(?!speedups)\w+[^`\n]*`", _prose(page))
    ]
    assert not found + prose


def _prose(page: Path) -> str:
    """The page without its fenced blocks."""
    return re.sub(r"^ *```.*?^ *```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)


def test_the_loose_comparison_is_not_too_loose() -> None:
    actual = "task1 ends at 2.000 s (seq 12)\n  Task-1 main()   ░░░░   0.000\nJSON: /tmp/a/b.json\n"
    assert unmatched("task1 ends at 2.000 s (seq 11)\nTask-1 main() ░░░░░░░░ 0.000", actual) == []
    assert unmatched("JSON: /tmp/pytest-of-me/x.json", actual) == []
    assert unmatched("task1 ends at 3.000 s (seq 11)", actual) == ["task1 ends at 3.000 s (seq 11)"]
    # in order: a line shown before another must come before it
    assert unmatched("Task-1 main() ░ 0.000\ntask1 ends at 2.000 s", actual) == [
        "task1 ends at 2.000 s"
    ]


def test_an_unmarked_block_that_cannot_run_fails_naming_it(tmp_path: Path) -> None:
    page = tmp_path / "new.md"
    page.write_text("Text.\n\n```sh\ndocker run jaeger\n```\n")
    (block,) = blocks(page)
    block.page = ROOT / "docs" / "new.md"  # where() is relative to the repository
    with pytest.raises(pytest.fail.Exception, match=r"docs/new.md:3: a sh block that is neither"):
        kind_of(block)


def test_every_test_that_reliability_md_names_exists() -> None:
    """docs/reliability.md's promises cite tests: each cited test is defined where it says."""

    text = (DOCS / "reliability.md").read_text()
    cited: list[tuple[str, str]] = []
    for cell in re.findall(r"`(tests/test_\w+\.py)::(\w+)`((?:, `::\w+`)*)", text):
        path, first, more = cell
        cited.append((path, first))
        cited += [(path, name) for name in re.findall(r"`::(\w+)`", more)]
    assert len(cited) >= 40
    root = DOCS.parent
    missing = [
        f"{path}::{name}"
        for path, name in cited
        if not re.search(rf"^def {name}\(", (root / path).read_text(), re.MULTILINE)
    ]
    assert not missing
