"""Who may call what: the one table of the tenant API, route and least role.

Roles are ordered (models.orgs.ROLES): ingest < member < admin < owner, and a role may call
every route its own or a lesser role may. A route missing from this table is refused to
everyone (tests/api/test_role_matrix.py fails when a /v1 route is missing here, or a row names
a route the app does not have).

- ingest: only POST /v1/leads (and the status of what it posted), the key a public form carries;
- member: read leads, conversations, opt-outs and deliveries; change a lead; reply;
- admin: + webhook endpoints, alert recipients, templates, campaigns, recording opt-outs,
  social-channel connections (Instagram, Messenger, WhatsApp by OAuth),
  CSV imports (and their error CSVs, which hold the rejected rows);
- owner: + API keys, erasure, export, the audit log.
"""

from __future__ import annotations

from models.orgs import ROLES, Role

ROUTE_ROLES: dict[tuple[str, str], Role] = {
    ("POST", "/v1/leads"): "ingest",
    ("GET", "/v1/events/{event_id}"): "ingest",
    ("GET", "/v1/leads"): "member",
    ("GET", "/v1/leads/{lead_id}"): "member",
    ("PATCH", "/v1/leads/{lead_id}"): "member",
    ("GET", "/v1/leads/{lead_id}/messages"): "member",
    ("POST", "/v1/leads/{lead_id}/messages"): "member",
    ("GET", "/v1/suppressions"): "member",
    ("POST", "/v1/suppressions"): "admin",
    ("GET", "/v1/webhook-endpoints"): "admin",
    ("POST", "/v1/webhook-endpoints"): "admin",
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): "admin",
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): "admin",
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): "admin",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): "admin",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/recover"): "admin",
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): "member",
    ("GET", "/v1/webhook-deliveries/{delivery_id}/attempts"): "member",
    ("POST", "/v1/webhook-deliveries/{delivery_id}/resend"): "admin",
    ("GET", "/v1/alert-recipients"): "admin",
    ("POST", "/v1/alert-recipients"): "admin",
    ("DELETE", "/v1/alert-recipients"): "admin",
    ("GET", "/v1/message-templates/{kind}"): "admin",
    ("PUT", "/v1/message-templates/{kind}"): "admin",
    ("GET", "/v1/campaigns"): "admin",
    ("POST", "/v1/campaigns"): "admin",
    ("GET", "/v1/campaigns/{campaign_id}"): "admin",
    ("GET", "/v1/connections/meta/authorize"): "admin",
    ("GET", "/v1/connections"): "admin",
    ("DELETE", "/v1/connections/{connection_id}"): "admin",
    ("POST", "/v1/imports"): "admin",
    ("GET", "/v1/imports/{import_id}"): "admin",
    ("GET", "/v1/imports/{import_id}/errors"): "admin",
    ("GET", "/v1/api-keys"): "owner",
    ("POST", "/v1/api-keys"): "owner",
    ("DELETE", "/v1/api-keys/{prefix}"): "owner",
    ("DELETE", "/v1/leads/{lead_id}"): "owner",
    ("GET", "/v1/export"): "owner",
    ("GET", "/v1/audit"): "owner",
}
# Refused to everyone: a route somebody forgot to put in the table.
NOBODY = "nobody"
RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}


def required_role(method: str, path: str) -> str:
    """The least role that may call `method path` (the route's template), or NOBODY."""
    return ROUTE_ROLES.get((method.upper(), path), NOBODY)


def allows(role: str, required: str) -> bool:
    if required not in RANK or role not in RANK:
        return False
    return RANK[role] >= RANK[required]
