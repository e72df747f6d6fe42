"""Only POST /v1/leads carries inbound events: the tenant API's other answers under
/v1/leads/... (a 404 lead, a 403 list) are not counted as rejected events."""

from __future__ import annotations

import pytest

from intake.rejections import source_for_path

pytestmark = pytest.mark.unit


def test_only_posted_leads_are_inbound_events() -> None:
    assert source_for_path("/v1/leads", "POST") == "api"
    assert source_for_path("/v1/leads", "GET") is None
    assert source_for_path("/v1/leads/7c9e6679-7425-40de-944b-e07cc1f877bf", "GET") is None
    assert (
        source_for_path("/v1/leads/7c9e6679-7425-40de-944b-e07cc1f877bf/messages", "POST") is None
    )
    assert source_for_path("/hooks/telegram/7c9e6679", "POST") == "telegram"
    assert source_for_path("/hooks/meta", "GET") == "meta"
