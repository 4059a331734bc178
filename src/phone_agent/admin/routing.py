"""Routes of the admin's "Call routing" section: add, edit, move, switch on/off and delete rules.

Every route requires an admin session and its CSRF token (``require_admin``). A rule is checked by
``brain.routing.rules.check_rule`` before it is stored: a refused form comes back with the message
and what was entered (422); a stored change answers 303 back to the section. Calls that start after
a change use it (a running call keeps the rules it started with). ``/admin/api/routing/rules`` lists
the rules as JSON.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from phone_agent.admin import auth
from phone_agent.admin.auth import AdminDep
from phone_agent.admin.pages import admin_context
from phone_agent.admin.routing_view import rule_from_form
from phone_agent.admin.templating import render
from phone_agent.api.deps import RuntimeDep, ServicesDep
from phone_agent.brain.routing.rules import check_rule
from phone_agent.errors import ConfigError
from phone_agent.storage import routing as store

router = APIRouter(tags=["admin"], dependencies=[Depends(auth.require_admin)])
BACK = "/admin?saved=routing#routing"


async def _form(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str) and k != "csrf_token"}


async def _save(
    request: Request, runtime: RuntimeDep, services: ServicesDep, admin: AdminDep, rule_id: int | None
) -> Response:
    form = await _form(request)
    name, enabled, conditions, action = rule_from_form(form)
    try:
        checked, act = check_rule(services.settings, name=name, conditions=conditions, action=action)
    except ConfigError as exc:
        context = await admin_context(
            runtime, services, admin, request, routing_error=str(exc), routing_entered=form, editing=rule_id
        )
        return render(request, "admin.html", context, status_code=422)
    values: dict[str, Any] = {
        "name": name,
        "conditions": checked.model_dump(),
        "action": act.model_dump(),
        "enabled": enabled,
        "actor": admin.actor,
    }
    if rule_id is None:
        await store.add_rule(services.sessions, **values)
    else:
        await store.update_rule(services.sessions, rule_id, **values)
    return RedirectResponse(BACK, status_code=303)


@router.post("/admin/routing/rules")
async def add_rule(request: Request, runtime: RuntimeDep, services: ServicesDep, admin: AdminDep) -> Response:
    """Add a rule at the end of the list."""
    return await _save(request, runtime, services, admin, None)


@router.post("/admin/routing/rules/{rule_id}")
async def edit_rule(
    rule_id: int, request: Request, runtime: RuntimeDep, services: ServicesDep, admin: AdminDep
) -> Response:
    """Replace a rule (its place in the order stays)."""
    return await _save(request, runtime, services, admin, rule_id)


@router.post("/admin/routing/rules/{rule_id}/move")
async def move_rule(rule_id: int, request: Request, services: ServicesDep, admin: AdminDep) -> Response:
    """Move a rule one place up (``direction=up``) or down."""
    offset = -1 if (await _form(request)).get("direction") == "up" else 1
    await store.move_rule(services.sessions, rule_id, offset, actor=admin.actor)
    return RedirectResponse(BACK, status_code=303)


@router.post("/admin/routing/rules/{rule_id}/enable")
async def enable_rule(rule_id: int, request: Request, services: ServicesDep, admin: AdminDep) -> Response:
    """Switch a rule on (``enabled=on``) or off."""
    enabled = (await _form(request)).get("enabled") in ("on", "1", "true")
    await store.set_enabled(services.sessions, rule_id, enabled, actor=admin.actor)
    return RedirectResponse(BACK, status_code=303)


@router.post("/admin/routing/rules/{rule_id}/delete")
async def delete_rule(rule_id: int, services: ServicesDep, admin: AdminDep) -> Response:
    """Delete a rule."""
    await store.delete_rule(services.sessions, rule_id, actor=admin.actor)
    return RedirectResponse(BACK, status_code=303)


@router.get("/admin/api/routing/rules")
async def rules_json(services: ServicesDep) -> dict[str, Any]:
    """The rules in order, as stored."""
    rows = await store.list_rules(services.sessions)
    return {
        "rules": [
            {
                "id": r.id,
                "position": r.position,
                "name": r.name,
                "enabled": r.enabled,
                "conditions": r.conditions,
                "action": r.action,
            }
            for r in rows
        ]
    }
