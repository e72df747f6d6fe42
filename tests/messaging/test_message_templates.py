"""Templates fill known placeholders only, and campaign texts always carry STOP wording."""

from __future__ import annotations

import pytest

from models.message_templates import (
    DEFAULT_TEMPLATES,
    TemplateError,
    render,
    validate_template,
    with_stop_footer,
)

pytestmark = pytest.mark.unit


def test_render_fills_known_placeholders_and_tidies_missing_ones() -> None:
    text = render("New lead: {name} {phone} {email}\n{message}", {"name": "Ada", "phone": None})
    assert text == "New lead: Ada"


def test_render_leaves_unknown_braces_alone() -> None:
    assert render("{name.__class__} {secret}", {"name": "Ada"}) == "{name.__class__} {secret}"


@pytest.mark.parametrize(
    "template", ["{name.__class__}", "{settings}", "{name!r}", "{0}", "{message:>10}"]
)
def test_validation_rejects_anything_but_plain_known_names(template: str) -> None:
    with pytest.raises(TemplateError):
        validate_template("owner_alert_sms", template)


def test_validation_rejects_unknown_template_names_and_oversized_text() -> None:
    with pytest.raises(TemplateError):
        validate_template("owner_fax", "{name}")
    with pytest.raises(TemplateError):
        validate_template("owner_alert_sms", "x" * 1601)


def test_defaults_are_valid_and_help_has_every_required_part() -> None:
    for name, template in DEFAULT_TEMPLATES.items():
        validate_template(name, template)
    help_text = DEFAULT_TEMPLATES["help_reply"]
    for part in ("{program}", "{contact}", "{frequency}", "Msg&data rates may apply", "STOP"):
        assert part in help_text


def test_render_caps_length() -> None:
    assert len(render("{message}", {"message": "x" * 5000})) == 1600


def test_stop_footer_is_added_once() -> None:
    assert with_stop_footer("Spring sale!") == "Spring sale! Reply STOP to opt out."
    assert with_stop_footer("Text STOP to quit") == "Text STOP to quit"
    assert len(with_stop_footer("x" * 1600)) == 1600
