"""Map a key path in a TOML document to the line it was written on.

``tomllib`` gives values but no positions, and pydantic reports errors by
``loc`` (``('devices', 3, 'unit')``). Users need ``site.toml:41``. This module
scans the text once, tracking table headers (``[a.b]``), arrays of tables
(``[[devices]]``, counted per parent so ``devices[3]`` is the fourth header)
and ``key = value`` lines (dotted keys too), and records the line of every
concrete path. A path that was never written (a missing key) resolves to the
line of its nearest written ancestor, usually the table header, which is where
the user has to add it.

It is a locator, not a parser: the text has already been accepted by
``tomllib``, so it only needs to be right about structure, and it skips the
bodies of multi-line strings and arrays.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

PathPart = str | int
Path = tuple[PathPart, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _split_key(text: str) -> tuple[list[str], str]:
    """Split a (possibly dotted, possibly quoted) key at the start of ``text``.

    Returns the key parts and the rest of the text after the key.
    """
    parts: list[str] = []
    rest = text.lstrip()
    while rest:
        if rest[0] == '"':
            end = 1
            while end < len(rest) and rest[end] != '"':
                end += 2 if rest[end] == "\\" else 1
            parts.append(rest[1:end])
            rest = rest[end + 1 :]
        elif rest[0] == "'":
            end = rest.find("'", 1)
            end = len(rest) if end < 0 else end
            parts.append(rest[1:end])
            rest = rest[end + 1 :]
        else:
            m = _BARE_KEY.match(rest)
            if not m:
                break
            parts.append(m.group(0))
            rest = rest[m.end() :]
        rest = rest.lstrip()
        if rest.startswith("."):
            rest = rest[1:].lstrip()
            continue
        break
    return parts, rest


def _bracket_delta(value: str) -> tuple[int, str | None]:
    """Net ``[``/``{`` depth change of a value fragment, ignoring strings and
    comments; also returns an unterminated multi-line string delimiter."""
    depth = 0
    i = 0
    while i < len(value):
        c = value[i]
        if value.startswith('"""', i) or value.startswith("'''", i):
            delim = value[i : i + 3]
            end = value.find(delim, i + 3)
            if end < 0:
                return depth, delim
            i = end + 3
            continue
        if c == '"':
            i += 1
            while i < len(value) and value[i] != '"':
                i += 2 if value[i] == "\\" else 1
        elif c == "'":
            end = value.find("'", i + 1)
            i = len(value) if end < 0 else end
        elif c == "#":
            break
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        i += 1
    return depth, None


class TomlPositions:
    """Line numbers (1-based) of every table and key written in a TOML text."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path, int] = {}
        self._arrays: set[Path] = set()
        self._last_index: dict[Path, int] = {}
        self._scan(text)

    def _resolve(self, parts: Sequence[str]) -> Path:
        path: Path = ()
        for part in parts:
            path = (*path, part)
            if path in self._arrays:
                path = (*path, self._last_index[path])
        return path

    def _scan(self, text: str) -> None:
        current: Path = ()
        depth = 0
        open_string: str | None = None
        for lineno, raw in enumerate(text.splitlines(), start=1):
            if open_string is not None:
                # The rest of the closing line is ignored: a key never follows
                # a closing delimiter on the same line in real configs.
                if open_string in raw:
                    open_string = None
                continue
            if depth > 0:
                delta, open_string = _bracket_delta(raw)
                depth += delta
                continue
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[["):
                parts, _ = _split_key(line[2:])
                parent = self._resolve(parts[:-1])
                array = (*parent, parts[-1])
                self._arrays.add(array)
                self._last_index[array] = self._last_index.get(array, -1) + 1
                current = (*array, self._last_index[array])
                self.lines.setdefault(array, lineno)
                self.lines[current] = lineno
                continue
            if line.startswith("["):
                parts, _ = _split_key(line[1:])
                current = self._resolve(parts)
                self.lines[current] = lineno
                continue
            parts, rest = _split_key(line)
            if not parts or not rest.startswith("="):
                continue
            self.lines[(*current, *parts)] = lineno
            delta, open_string = _bracket_delta(rest[1:])
            depth = max(delta, 0)

    def line_of(self, loc: Sequence[PathPart]) -> int | None:
        """Line of ``loc`` or of its nearest written ancestor; None if even
        the top-level key was never written (a missing top-level table)."""
        path = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


def format_loc(loc: Sequence[PathPart]) -> str:
    """``('devices', 3, 'unit')`` -> ``devices[3].unit``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
