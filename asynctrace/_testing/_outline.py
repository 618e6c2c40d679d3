"""Matching an indented outline of span names against a trace's tree (``assert_tree``).

Problem: "does the tree contain this outline" needs the best alignment of listed children with
the span's children, and a failure must read like a diff of the outline.

Solution: :class:`TreeMatcher` aligns the children of each outline line with the children of
a candidate span by dynamic programming (pair, skip a span, miss a line), memoised per (line,
span), and returns the rows of a diff: `` `` matched, ``-`` listed but missing, ``+`` present
but not listed (``exact=True``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .._model._spans import Span, Trace


@dataclass
class Node:
    """One outline line: a name or glob, its indentation and the lines indented under it."""

    pattern: str
    indent: int
    children: list[Node] = field(default_factory=list)


@dataclass
class Row:
    """One line of the tree diff: ' ' matched, '-' listed but missing, '+' present, unlisted."""

    mark: str
    depth: int
    text: str
    note: str = ""
    span: Span | None = None


def parse_outline(outline: str) -> list[Node]:
    roots: list[Node] = []
    stack: list[Node] = []
    for lineno, raw in enumerate(outline.splitlines(), 1):
        line = raw.expandtabs(4).rstrip()
        if not line:
            continue
        indent = len(line) - len(line.lstrip(" "))
        node = Node(line.strip(), indent)
        while stack and stack[-1].indent >= indent:
            stack.pop()
        siblings = stack[-1].children if stack else roots
        if siblings and siblings[0].indent != indent:
            msg = (
                f"outline line {lineno} ({node.pattern!r}) is indented by {indent} spaces but its"
                f" siblings by {siblings[0].indent}; indent each child deeper than its parent"
                " and siblings equally"
            )
            raise ValueError(msg)
        siblings.append(node)
        stack.append(node)
    if not roots:
        msg = "outline is empty; pass one span name or glob per line, children indented"
        raise ValueError(msg)
    return roots


def outline_size(node: Node) -> int:
    """How many outline lines ``node`` and its descendants are."""
    return 1 + sum(outline_size(c) for c in node.children)


_Score = tuple[int, int]  # (outline lines matched, minus the unlisted children under exact=True)


class TreeMatcher:
    """Aligns outline children with span children like a diff, keeping the best-scoring match."""

    def __init__(
        self,
        trace: Trace,
        exact: bool,
        matches: Callable[[str, str], bool],
        name_list: Callable[[Sequence[Span], int], str],
    ) -> None:
        self.trace, self.exact, self.matches, self.name_list = trace, exact, matches, name_list
        self.memo: dict[tuple[int, int], tuple[_Score, list[Row]]] = {}

    def match(self, node: Node, span: Span, depth: int) -> tuple[_Score, list[Row]]:
        key = (id(node), id(span))
        if key not in self.memo:
            self.memo[key] = self._match(node, span, depth)
        return self.memo[key]

    def _match(self, node: Node, span: Span, depth: int) -> tuple[_Score, list[Row]]:
        outs, kids = node.children, span.children
        k, m = len(outs), len(kids)
        penalty = 1 if self.exact else 0
        # best[i][j]: best score aligning outs[i:] with kids[j:]; step[i][j]: the move taken.
        best = [[(0, 0)] * (m + 1) for _ in range(k + 1)]
        step = [[""] * (m + 1) for _ in range(k + 1)]
        for i in range(k, -1, -1):
            for j in range(m, -1, -1):
                options: list[tuple[_Score, str]] = []
                if i < k and j < m and self.matches(kids[j].name, outs[i].pattern):
                    sub = self.match(outs[i], kids[j], depth + 1)[0]
                    nxt = best[i + 1][j + 1]
                    options.append(((nxt[0] + sub[0], nxt[1] + sub[1]), "pair"))
                if j < m:
                    options.append(((best[i][j + 1][0], best[i][j + 1][1] - penalty), "extra"))
                if i < k:
                    options.append((best[i + 1][j], "missing"))
                if options:
                    # max() keeps the first of equal scores: pairing the earliest child wins.
                    best[i][j], step[i][j] = max(options, key=lambda o: o[0])
        label = node.pattern if node.pattern == span.name else f"{node.pattern}  ({span.name})"
        rows = [Row(" ", depth, label, span=span)]
        i = j = 0
        while i < k or j < m:
            move = step[i][j]
            if move == "pair":
                rows += self.match(outs[i], kids[j], depth + 1)[1]
                i, j = i + 1, j + 1
            elif move == "extra":
                if self.exact:
                    rows.append(Row("+", depth + 1, kids[j].name, "not in the outline", kids[j]))
                j += 1
            else:
                rows += self.missing(outs[i], span, depth + 1)
                i += 1
        return (best[0][0][0] + 1, best[0][0][1]), rows

    def missing(self, node: Node, parent: Span | None, depth: int) -> list[Row]:
        elsewhere = [s for s in self.trace.spans if self.matches(s.name, node.pattern)]
        if parent is None:
            parts = ["no span matches"]
        elif parent.children:
            parts = [
                f"not among the children of {parent.name}: {self.name_list(parent.children, 8)}"
            ]
        else:
            parts = [f"{parent.name} has no children"]
        if elsewhere and parent is not None:
            where = [f"a child of {s.parent.name}" if s.parent else "a root" for s in elsewhere]
            parts.append(f"{elsewhere[0].name} is {', '.join(dict.fromkeys(where))}")
        elif not elsewhere:
            if parent is not None:
                parts.append("no span in the trace matches it")
            close = difflib.get_close_matches(node.pattern, sorted({s.name for s in self.trace}))
            if close:
                parts.append(f"did you mean {close[0]!r}?")
        note = "; ".join(parts)
        rows = [Row("-", depth, node.pattern, note, parent)]

        def walk(n: Node, d: int) -> None:
            for c in n.children:
                rows.append(Row("-", d, c.pattern))
                walk(c, d + 1)

        walk(node, depth + 1)
        return rows
