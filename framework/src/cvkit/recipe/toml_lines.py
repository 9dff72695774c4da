"""Line numbers of the keys in a TOML document, for error messages (tomllib gives none).

Covers what recipes use: ``[table]`` and ``[[array.of.tables]]`` headers and ``key = value``
lines, dotted and quoted keys included. Keys inside inline tables and multi-line arrays are
not found; callers fall back to the enclosing key's line.
"""

from __future__ import annotations

import re

_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*([^\]]+?)\s*\]\]")
_TABLE_HEADER = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]")
_ASSIGNMENT = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")


def _parts(dotted: str) -> list[str]:
    return [part.strip("\"'") for part in _PART.findall(dotted)]


def key_lines(text: str) -> dict[str, int]:
    """Map each dotted key (``a.b``, ``arr[1].c``) of ``text`` to its 1-based line."""
    lines: dict[str, int] = {}
    counts: dict[str, int] = {}  # array-of-tables path -> last index
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if match := _ARRAY_HEADER.match(line):
            *parents, last = _parts(match[1])
            prefix = _resolve(parents, counts)
            path = f"{prefix}.{last}" if prefix else last
            counts[path] = counts.get(path, -1) + 1
            table = f"{path}[{counts[path]}]"
            lines.setdefault(table, number)
        elif match := _TABLE_HEADER.match(line):
            table = _resolve(_parts(match[1]), counts)
            lines.setdefault(table, number)
        elif match := _ASSIGNMENT.match(line):
            key = table
            for part in _parts(match[1]):
                key = f"{key}.{part}" if key else part
                lines.setdefault(key, number)
    return lines


def _resolve(parts: list[str], counts: dict[str, int]) -> str:
    """Dotted path of a header, with the current index of any array of tables it passes."""
    path = ""
    for part in parts:
        path = f"{path}.{part}" if path else part
        if path in counts:
            path = f"{path}[{counts[path]}]"
    return path
