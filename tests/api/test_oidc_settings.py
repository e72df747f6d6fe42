"""OIDC settings: production refuses a half configuration or an issuer without TLS."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit


def test_oidc_settings_in_production() -> None:
    from leadline.settings import Settings, oidc_problems

    assert oidc_problems(Settings()) == []
    half = Settings(leadline_oidc_issuer="https://issuer.example")
    assert oidc_problems(half) == [
        "LEADLINE_OIDC_ISSUER and LEADLINE_OIDC_AUDIENCE are set together"
    ]
    plain = Settings(leadline_oidc_issuer="http://issuer.example", leadline_oidc_audience="a")
    assert oidc_problems(plain) == ["LEADLINE_OIDC_ISSUER must be https"]
