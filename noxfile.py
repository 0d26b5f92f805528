"""Developer sessions: lint, typecheck, tests (forwards posargs), template, bench."""

from __future__ import annotations

import tempfile
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "venv"

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def template(session: nox.Session) -> None:
    """Bake the plugin template with its defaults and run the result's own checks."""
    session.install(".[test]")
    # Outside .nox: ruff skips files under a .nox folder.
    with tempfile.TemporaryDirectory(prefix="ksi-template-") as tmp:
        scratch = Path(tmp)
        config = scratch / "cookiecutterrc.yaml"
        config.write_text(f"replay_dir: {scratch / 'replay'}\ncookiecutters_dir: {scratch}\n")
        session.run(
            "cookiecutter",
            "--no-input",
            f"--config-file={config}",
            f"--output-dir={scratch}",
            "cookiecutter-ksi-plugin",
            env={"TMPDIR": str(scratch)},
        )
        project = scratch / "ksi-plugin-my-plugin"
        # ksi-host is already installed from this checkout, so pip does not look for it on PyPI.
        session.install("-e", f"{project}[test]")
        session.chdir(project)
        session.run("python", "-m", "pytest", *session.posargs)
        session.run("ruff", "check", ".")
        session.run("ruff", "format", "--check", ".")
        session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    session.install("-e", ".[dev]")  # dev has the benchmark's peers (stevedore)
    session.run("python", "tests/benchmarks/run.py", *session.posargs)
