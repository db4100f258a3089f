"""``minegate completion bash``: the script completes subcommands, options
and choices in a real bash, and leaves values to bash's file names."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from gateway.cli import build_parser
from gateway.completion import bash_script

BASH = shutil.which("bash")


def _complete(script: str, *words: str) -> list[str]:
    """What bash offers for the last of ``words`` (the word being typed)."""
    line = " ".join(f"'{w}'" for w in words)
    probe = (
        f"{script}\nCOMP_WORDS=(minegate {line}); COMP_CWORD={len(words)}; "
        'COMPREPLY=(); _minegate; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    assert BASH is not None
    out = subprocess.run([BASH, "--norc", "-c", probe], capture_output=True, text=True, check=True)
    return [w for w in out.stdout.splitlines() if w]


@pytest.mark.skipif(BASH is None, reason="no bash on this machine")
def test_bash_completion_knows_commands_options_and_choices() -> None:
    script = bash_script(build_parser())
    assert "complete -o default -F _minegate minegate" in script
    assert _complete(script, "") == [
        "-h", "--help", "--version", "run", "check-config", "read", "status", "demo",
        "completion", "alarms", "sim", "survey", "platform",
    ]  # fmt: skip
    assert _complete(script, "che") == ["check-config"]
    assert _complete(script, "read", "--ki") == ["--kind"]
    assert _complete(script, "read", "--kind", "") == ["holding", "input", "coil", "discrete"]
    assert _complete(script, "read", "--tcp", "h:502", "--order", "C") == ["CDAB"]
    assert _complete(script, "survey", "") == [
        "-h", "--help", "check", "sample", "compare", "check-pit", "upload",
    ]  # fmt: skip
    assert "--open-pit" in _complete(script, "survey", "sample", "--")
    assert "--licence" in _complete(script, "survey", "check", "--")
    # A value or a file: nothing offered, bash falls back to file names.
    assert _complete(script, "run", "--config", "") == []
    assert _complete(script, "check-config", "si") == []
