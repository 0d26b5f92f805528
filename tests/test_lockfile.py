"""The lock file: what lock writes, sync reads back exactly; a bad file says what and where."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given

from ksi_host._manage.environment import InstalledDist
from ksi_host._manage.lockfile import read_lock, render_lock
from ksi_host.errors import LockFileError
from tests.strategies import installed_dists


@given(dists=installed_dists())
def test_a_rendered_lock_reads_back_as_the_same_set(dists: list[InstalledDist]) -> None:
    text = render_lock(dists, "0.1.0")
    path = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path("/tmp")
    file = path / f"ksi-lock-test-{id(text)}.lock"
    file.write_text(text, encoding="utf-8")
    try:
        lock = read_lock(file)
    finally:
        file.unlink()
    assert lock.ksi_host == "0.1.0"
    assert sorted((p.distribution, p.version, p.plugins) for p in lock.plugin) == sorted(
        (d.name, d.version, d.plugins) for d in dists
    )
    assert render_lock(dists[::-1], "0.1.0") == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lock-version = = 1\n", "the lock file is not TOML"),
        ('lock-version = 2\nksi-host = "1"\n', "lock-version: Input should be 1"),
        ('lock-version = 1\n[[plugin]]\ndistribution = "a"\n', "ksi-host: Field required"),
        (
            'lock-version = 1\nksi-host = "1"\n[[plugin]]\ndistribution = "a"\n',
            "plugin.0.version: Field required",
        ),
        (
            'lock-version = 1\nksi-host = "1"\n'
            '[[plugin]]\ndistribution = "A_b"\nversion = "1"\n'
            '[[plugin]]\ndistribution = "a-B"\nversion = "2"\n',
            "names a-B twice",
        ),
    ],
)
def test_a_bad_lock_file_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "ksi-plugins.lock"
    file.write_text(text)
    with pytest.raises(LockFileError) as caught:
        read_lock(file)
    assert message in caught.value.what
    assert caught.value.where == str(file)


def test_a_missing_lock_file_says_how_to_write_one(tmp_path: Path) -> None:
    with pytest.raises(LockFileError) as caught:
        read_lock(tmp_path / "nope.lock")
    assert "ksi-host lock -o FILE" in (caught.value.hint or "")
