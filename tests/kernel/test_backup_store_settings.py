"""Where backups live: LEADLINE_BACKUP_URL, with LEADLINE_BACKUP_DIR as its file:// shorthand."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from leadline.bootstrap import child_environment
from leadline.cli import describe
from leadline.settings import Settings

pytestmark = pytest.mark.unit


def settings_from(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in ("LEADLINE_BACKUP_DIR", "LEADLINE_BACKUP_URL", "LEADLINE_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_the_directory_is_the_default_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert settings_from(monkeypatch).backup_url == (tmp_path / ".leadline/backups").as_uri()
    given = settings_from(monkeypatch, LEADLINE_BACKUP_DIR=str(tmp_path / "b"))
    assert given.backup_url == (tmp_path / "b").as_uri()


def test_a_url_names_a_directory_or_a_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    url = settings_from(monkeypatch, LEADLINE_BACKUP_URL="s3://backups/leadline/")
    assert url.backup_url == "s3://backups/leadline"
    same = settings_from(
        monkeypatch, LEADLINE_BACKUP_URL="file:///srv/backups/", LEADLINE_BACKUP_DIR="/srv/backups"
    )
    assert same.backup_url == "file:///srv/backups"
    blank = settings_from(monkeypatch, LEADLINE_BACKUP_URL="", LEADLINE_S3_ENDPOINT_URL=" ")
    assert blank.leadline_backup_url is None and blank.leadline_s3_endpoint_url is None


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"LEADLINE_BACKUP_URL": "s3://bucket/x", "LEADLINE_BACKUP_DIR": "/srv/backups"},
            "LEADLINE_BACKUP_URL and LEADLINE_BACKUP_DIR name different places",
        ),
        ({"LEADLINE_BACKUP_URL": "ftp://host/x"}, "LEADLINE_BACKUP_URL: not a backup store"),
        (
            {"LEADLINE_BACKUP_URL": "s3://AKIAEXAMPLE:hunter2secret@bucket/x"},
            "LEADLINE_BACKUP_URL: a backup store URL must not hold credentials",
        ),
    ],
)
def test_a_wrong_store_is_one_line_naming_the_setting_never_its_value(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        settings_from(monkeypatch, **env)
    line = describe(refused.value)
    assert line.startswith(f"invalid settings: {problem}")
    assert line.endswith("(fix them in the environment)") and "\n" not in line
    assert "hunter2secret" not in line and "ftp://host" not in line


def test_processes_started_by_up_get_the_resolved_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = settings_from(monkeypatch, LEADLINE_BACKUP_DIR=str(tmp_path))
    env = child_environment(settings)
    assert env["LEADLINE_BACKUP_URL"] == tmp_path.as_uri()
    assert "LEADLINE_BACKUP_DIR" not in env  # a child never sees two that could disagree


def test_the_demo_keeps_its_backups_in_its_own_directory_even_when_the_stack_uses_a_bucket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from leadline.commands.demo import isolated_settings

    for name in ("LEADLINE_DATABASE_URL", "LEADLINE_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)  # no database or namespace of its own to make
    settings = settings_from(monkeypatch, LEADLINE_BACKUP_URL="s3://production-backups/leadline")
    with isolated_settings(settings) as demo:
        state_dir = Path(demo.leadline_state_dir)
        assert demo.backup_url == (state_dir / "backups").resolve().as_uri()
