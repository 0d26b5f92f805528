"""docs/PLUGIN_GUIDE.md cannot drift from the code: its blocks are run or checked here.

- ``python`` blocks run top to bottom in one namespace, in a fresh interpreter (they
  register plugins and set loggers), and a failure names the guide's line;
- every ``ksi-host ...`` command in ``sh`` blocks must parse against the real command line
  (run with ``--help`` appended, so unknown subcommands and options fail);
- ``toml`` blocks must parse.

A block preceded by ``<!-- needs: CAPABILITY -->`` uses a part of ksi-host that may not
exist yet on this branch; it is skipped, with the reason, only while that part is absent.
The ``sh`` quick start (cookiecutter, pip, pytest) is what tests/test_template.py runs.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from ksi_host._cli import cli

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "PLUGIN_GUIDE.md"

#: What each ``needs:`` marker requires: the ``ksi-host`` subcommands that provide it.
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "discovery": ("plugins",),
    "doctor": ("doctor",),
    "daemon": ("run", "send"),
}

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_NEEDS = re.compile(r"<!--\s*needs:\s*([\w\s,-]+?)\s*-->\s*\Z")
_SHELL_END = frozenset({"&", "&&", "|", "||", ";"})


@dataclass(frozen=True)
class Block:
    """One fenced block of the guide."""

    language: str
    code: str
    line: int  # of the first line of code
    needs: tuple[str, ...]


def guide_blocks() -> list[Block]:
    text = GUIDE.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip()
        needs = _NEEDS.search(before)
        blocks.append(
            Block(
                language=match.group(1),
                code=match.group(2),
                line=text.count("\n", 0, match.start(2)) + 1,
                needs=tuple(re.split(r"[\s,]+", needs.group(1))) if needs else (),
            )
        )
    return blocks


BLOCKS = guide_blocks()


def missing_capabilities(block: Block) -> list[str]:
    """The capabilities ``block`` needs that this ksi-host lacks; unknown names fail."""
    unknown = [need for need in block.needs if need not in CAPABILITIES]
    assert not unknown, f"PLUGIN_GUIDE.md:{block.line}: unknown needs {unknown}"
    return [
        need
        for need in block.needs
        if not all(command in cli.commands for command in CAPABILITIES[need])
    ]


def skip_unless_capable(block: Block) -> None:
    missing = missing_capabilities(block)
    if missing:
        pytest.skip(f"PLUGIN_GUIDE.md:{block.line} needs {', '.join(missing)}, not built yet")


def test_the_guide_has_runnable_blocks() -> None:
    languages = [block.language for block in BLOCKS]
    assert languages.count("python") >= 10
    assert all(block.language for block in BLOCKS if block.code.lstrip().startswith("from "))


RUNNER = """
import json, sys, traceback
namespace = {"__name__": "__guide__"}
for block in json.loads(sys.stdin.read()):
    code = compile("\\n" * (block["line"] - 1) + block["code"], "PLUGIN_GUIDE.md", "exec")
    try:
        exec(code, namespace)
    except BaseException:
        traceback.print_exc()
        sys.exit(f"the python block at PLUGIN_GUIDE.md:{block['line']} failed")
"""


def test_python_blocks_run_in_order(tmp_path: Path) -> None:
    runnable = [
        {"line": block.line, "code": block.code}
        for block in BLOCKS
        if block.language == "python" and not missing_capabilities(block)
    ]
    result = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(runnable),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    skipped = [b.line for b in BLOCKS if b.language == "python" and missing_capabilities(b)]
    if skipped:
        pytest.skip(f"python blocks at lines {skipped} need parts of ksi-host not built yet")


def _commands(block: Block) -> list[list[str]]:
    """The argument lists after each ``ksi-host`` in a shell block."""
    found = []
    for line in block.code.splitlines():
        words = shlex.split(line, comments=True)
        for start, word in enumerate(words):
            if word == "ksi-host" or word.endswith("bin/ksi-host"):
                rest = words[start + 1 :]
                end = next((i for i, w in enumerate(rest) if w in _SHELL_END), len(rest))
                found.append(rest[:end])
    return found


COMMANDS = [
    pytest.param(block, args, id=f"line{block.line}-{'-'.join(args[:1])}")
    for block in BLOCKS
    if block.language == "sh"
    for args in _commands(block)
]


def test_the_guide_shows_ksi_host_commands() -> None:
    shown = {args[0] for _, args in (param.values for param in COMMANDS)}
    assert {"plugins", "doctor", "run", "send"} <= shown


@pytest.mark.parametrize(("block", "args"), COMMANDS)
def test_ksi_host_commands_parse(block: Block, args: list[str]) -> None:
    skip_unless_capable(block)
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, f"PLUGIN_GUIDE.md:{block.line}: ksi-host {args}\n{result.output}"


@pytest.mark.parametrize(
    "block",
    [b for b in BLOCKS if b.language == "toml"],
    ids=lambda b: f"line{b.line}",
)
def test_toml_blocks_parse(block: Block) -> None:
    tomllib.loads(block.code)


def test_needs_markers_name_known_capabilities() -> None:
    for block in BLOCKS:
        missing_capabilities(block)
    assert any(block.needs for block in BLOCKS)
