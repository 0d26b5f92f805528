"""docs/PLUGIN_GUIDE.md cannot drift from the code: its blocks are run or checked here.

- ``python`` blocks run top to bottom in one namespace, in a fresh interpreter (they
  register plugins and set loggers), and a failure names the guide's line;
- every ``ksi-host ...`` command in ``sh`` blocks must parse against the real command line
  (run with ``--help`` appended, so unknown subcommands and options fail);
- ``toml`` blocks must parse.

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

import ksi_host
from ksi_host._cli import cli

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "PLUGIN_GUIDE.md"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_SHELL_END = frozenset({"&", "&&", "|", "||", ";"})


@dataclass(frozen=True)
class Block:
    """One fenced block of the guide."""

    language: str
    code: str
    line: int  # of the first line of code


def guide_blocks() -> list[Block]:
    text = GUIDE.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        blocks.append(
            Block(
                language=match.group(1),
                code=match.group(2),
                line=text.count("\n", 0, match.start(2)) + 1,
            )
        )
    return blocks


BLOCKS = guide_blocks()


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
# The guide's pytest tests, with the ksi_harness fixture pytest would pass them.
from ksi_host.testing import harness_factory
tests = [v for k, v in namespace.items() if k.startswith("test_") and callable(v)]
for test in tests:
    with harness_factory() as ksi_harness:
        test(ksi_harness)
print(json.dumps([test.__name__ for test in tests]))
"""


def test_python_blocks_run_in_order(tmp_path: Path) -> None:
    runnable = [
        {"line": block.line, "code": block.code} for block in BLOCKS if block.language == "python"
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
    assert json.loads(result.stdout.splitlines()[-1]) == [
        "test_checked_greeter_reads_its_section",
        "test_a_bad_section_fails_only_that_plugin",
    ]


README = GUIDE.parents[1] / "README.md"


def test_the_readmes_python_blocks_run(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    blocks = [
        {"line": text.count("\n", 0, match.start(2)) + 1, "code": match.group(2)}
        for match in _FENCE.finditer(text)
        if match.group(1) == "python"
    ]
    assert len(blocks) == 2
    result = subprocess.run(
        [sys.executable, "-c", RUNNER.replace("PLUGIN_GUIDE.md", "README.md")],
        input=json.dumps(blocks),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


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
    assert {"plugins", "events", "doctor", "run", "send"} <= shown


@pytest.mark.parametrize(("block", "args"), COMMANDS)
def test_ksi_host_commands_parse(block: Block, args: list[str]) -> None:
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, f"PLUGIN_GUIDE.md:{block.line}: ksi-host {args}\n{result.output}"


@pytest.mark.parametrize(
    "block",
    [b for b in BLOCKS if b.language == "toml"],
    ids=lambda b: f"line{b.line}",
)
def test_toml_blocks_parse(block: Block) -> None:
    tomllib.loads(block.code)


def test_the_guide_documents_every_public_name_of_ksi_host() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    missing = [
        name for name in ksi_host.__all__ if not re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text)
    ]
    assert missing == []
