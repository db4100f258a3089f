"""The example output in docs/survey.md is the code's output (issue 10 item
14): the quick start's console, the findings.json example and the compare
fragment are generated here from a fresh ``minegate survey sample`` and
compared with the doc. When the code's output changes on purpose, rewrite
the doc's examples with::

    PYTHONPATH=. python tests/survey/test_doc_examples.py --write

Only what a run cannot reproduce is fixed here: the check id, the time,
the tool version and the timings (their keys are the real ones)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main as minegate

DOC = Path(__file__).resolve().parents[2] / "docs" / "survey.md"

SAMPLE_CMD = "minegate survey sample --out sample"
CHECK_CMD = (
    "minegate survey check --licence sample/licence.toml --scan sample/violation.las "
    "--out sample/out-violation"
)
COMPARE_CMD = (
    "minegate survey compare --licence sample/licence.toml --old sample/compliant.las "
    "--new sample/violation.las --out sample/out-compare"
)
# what a run cannot reproduce: illustrative values
FIXED = {
    "tool": {"name": "minegate", "version": "0.1.0"},
    "check_id": "C4507002026000000001-20261125T155334Z",
    "created_utc": "2026-11-25T15:53:35.302779+00:00",
}
TIMINGS = {
    "prepare": 0.319,
    "read": 0.051,
    "classify": 0.183,
    "group": 0.118,
    "volume": 0.511,
    "check": 1.183,
    "report": 0.905,
    "total": 3.513,
}


def _run(cmd: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = minegate([*cmd.split()[1:], *([] if " sample --out" in cmd else ["--quiet"])])
    return code, out.getvalue()


def compact_json(value: Any, indent: int = 0, width: int = 100) -> str:
    """JSON as people write it in docs: a list or object on one line when it
    fits in ``width``, else one item a line (the same data as ``json``)."""
    flat = json.dumps(value, ensure_ascii=False)
    if indent + len(flat) <= width or not isinstance(value, dict | list) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [
            f"{pad}{json.dumps(k)}: {compact_json(v, indent + 2, width).lstrip()}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + compact_json(v, indent + 2, width).lstrip() for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def _json_example(doc: dict[str, Any]) -> str:
    """findings.json as the doc shows it: two corners, one incident."""
    ex = {**doc, **FIXED}
    ex["timings_s"] = {k: TIMINGS.get(k, 0.0) for k in doc["timings_s"]}
    licence = dict(doc["licence"])
    licence["blocks"] = [
        {**b, "corners": [*b["corners"][:2], "..."]} for b in licence["blocks"][:1]
    ] + (["..."] if len(licence["blocks"]) > 1 else [])
    ex["licence"] = licence
    ex["incidents"] = [*doc["incidents"][:1], "..."] if len(doc["incidents"]) > 1 else []
    ex["within_uncertainty"] = doc["within_uncertainty"][:1]
    return compact_json(ex)


def _comparison_example(doc: dict[str, Any]) -> str:
    comp = dict(doc["comparison"])
    comp["areas"] = [*comp["areas"][:1], "..."] if len(comp["areas"]) > 1 else comp["areas"]
    return '"comparison": ' + compact_json(comp)


def generate() -> dict[str, str]:
    """Each example block of docs/survey.md (by its first line) as the code
    writes it today, from a sample in a fresh folder."""
    blocks: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        code, out = _run(SAMPLE_CMD)
        assert code == 0, out
        blocks[f"$ {SAMPLE_CMD}"] = f"$ {SAMPLE_CMD}\n{out}"
        code, out = _run(CHECK_CMD)
        blocks[f"$ {CHECK_CMD}"] = f"$ {CHECK_CMD}\n{out}$ echo $?\n{code}\n"
        doc = json.loads(Path("sample/out-violation/findings.json").read_text(encoding="utf-8"))
        blocks["{"] = _json_example(doc) + "\n"
        code, _ = _run(COMPARE_CMD)
        assert code in (0, 3)
        comp = json.loads(Path("sample/out-compare/findings.json").read_text(encoding="utf-8"))
        blocks['"comparison": {'] = _comparison_example(comp) + "\n"
    return blocks


def doc_blocks(text: str) -> Iterator[tuple[str, re.Match[str]]]:
    """(first line, match) of every fenced block in the doc."""
    for m in re.finditer(r"^```[a-z]*\n(.*?)^```$", text, flags=re.S | re.M):
        yield m.group(1).split("\n", 1)[0], m


def rewrite(text: str, blocks: dict[str, str]) -> str:
    out, last = [], 0
    for first, m in doc_blocks(text):
        if first in blocks:
            out += [text[last : m.start(1)], blocks[first]]
            last = m.end(1)
    return "".join([*out, text[last:]])


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return generate()


def test_every_example_is_in_the_doc(generated: dict[str, str]) -> None:
    firsts = {first for first, _ in doc_blocks(DOC.read_text(encoding="utf-8"))}
    assert set(generated) <= firsts


@pytest.mark.parametrize("which", [f"$ {SAMPLE_CMD}", f"$ {CHECK_CMD}", "{", '"comparison": {'])
def test_doc_example_is_the_code_output(generated: dict[str, str], which: str) -> None:
    shown = {first: m.group(1) for first, m in doc_blocks(DOC.read_text(encoding="utf-8"))}
    assert shown[which] == generated[which], (
        "docs/survey.md is out of date; run: PYTHONPATH=. python tests/survey/test_doc_examples.py "
        "--write"
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: {sys.argv[0]} --write  (rewrites the examples of {DOC})")
    DOC.write_text(rewrite(DOC.read_text(encoding="utf-8"), generate()), encoding="utf-8")
    print(f"rewrote the examples in {DOC}")
