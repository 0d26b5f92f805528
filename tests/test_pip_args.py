"""How ksi-host reads a pip command line and pip's dry-run report (``_manage/pip.py``)."""

from __future__ import annotations

import pytest

from ksi_host._manage.pip import _DownloadInfo, _without_placement, split_args


def test_split_keeps_each_option_with_its_value() -> None:
    args = ["-r", "req.txt", "foo>=1", "--no-index", "--find-links", "wheels", "--pre", "-e", "."]
    assert split_args(args) == (
        ["-r", "req.txt", "--no-index", "--find-links", "wheels", "--pre", "-e", "."],
        ["foo>=1"],
    )
    assert split_args(["--only-binary", ":all:", "--index-url=https://x", "bar"]) == (
        ["--only-binary", ":all:", "--index-url=https://x"],
        ["bar"],
    )


def test_staging_drops_what_says_where_or_what_to_install_and_keeps_the_rest() -> None:
    options = [
        *("--target", "/elsewhere", "--user", "-U", "--upgrade-strategy=eager"),
        *("--no-index", "--find-links", "wheels", "-r", "req.txt", "--pre", "--prefix=/p"),
        *("--index-url", "https://index", "--force-reinstall", "--no-build-isolation"),
        "--require-hashes",
    ]
    assert _without_placement(options) == [
        *("--no-index", "--find-links", "wheels", "--pre"),
        *("--index-url", "https://index", "--no-build-isolation"),
    ]


@pytest.mark.parametrize(
    ("info", "reference"),
    [
        (
            {
                "url": "file:///w/foo-1.0-py3-none-any.whl",
                "archive_info": {"hash": "sha256=ab12", "hashes": {"sha256": "ab12"}},
            },
            "foo @ file:///w/foo-1.0-py3-none-any.whl#sha256=ab12",
        ),
        (
            {"url": "https://x/foo-1.0.tar.gz", "archive_info": {}, "subdirectory": "sub"},
            "foo @ https://x/foo-1.0.tar.gz#subdirectory=sub",
        ),
        (
            {
                "url": "https://github.com/o/foo",
                "vcs_info": {"vcs": "git", "commit_id": "abc123", "requested_revision": "main"},
                "subdirectory": "plugin",
            },
            "foo @ git+https://github.com/o/foo@abc123#subdirectory=plugin",
        ),
        ({"url": "file:///src/foo", "dir_info": {"editable": True}}, "foo @ file:///src/foo"),
    ],
    ids=["archive-with-its-hash", "archive-without", "vcs-at-its-commit", "directory"],
)
def test_the_staged_reference_is_the_artifact_the_dry_run_chose(
    info: dict[str, object], reference: str
) -> None:
    assert _DownloadInfo.model_validate(info).reference("foo") == reference
