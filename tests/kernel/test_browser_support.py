"""The browser tests' run/skip/fail decision: skipped only off CI, never hidden on CI."""

from __future__ import annotations

import pytest

from tests.support.browser import (
    DEBIAN_CHROMIUM,
    ENABLE_COMMAND,
    BrowserPlan,
    find_chromium,
    plan_browser,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("env", [{}, {"CI": "true"}, {"CI": "1"}, {"CI": "false"}])
def test_a_found_chromium_always_runs(env: dict[str, str]) -> None:
    assert plan_browser(env, "/opt/chromium") == BrowserPlan("run", executable="/opt/chromium")


@pytest.mark.parametrize("env", [{}, {"CI": ""}, {"CI": "false"}, {"CI": "0"}])
def test_missing_chromium_off_ci_skips_naming_the_command(env: dict[str, str]) -> None:
    plan = plan_browser(env, None)
    assert plan.action == "skip"
    assert ENABLE_COMMAND in plan.reason


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", " true "])
def test_missing_chromium_on_ci_fails(value: str) -> None:
    plan = plan_browser({"CI": value}, None)
    assert plan.action == "fail"
    assert "CI=true" in plan.reason and ENABLE_COMMAND in plan.reason


def test_chromium_on_the_path_comes_first() -> None:
    found = find_chromium(which=lambda name: f"/somewhere/bin/{name}", is_executable=lambda _: True)
    assert found == "/somewhere/bin/chromium"


def test_debian_chromium_is_found_off_the_path() -> None:
    assert find_chromium(which=lambda _: None, is_executable=lambda p: p == DEBIAN_CHROMIUM) == (
        DEBIAN_CHROMIUM
    )


def test_no_chromium_anywhere() -> None:
    assert find_chromium(which=lambda _: None, is_executable=lambda _: False) is None
