"""REST routes for approvals and the Telegram webhook (mounted by the gateway app).

- ``GET  /api/v1/approvals?status=pending`` — the org's approvals (any key of the org), newest
  first; ``limit`` (1-500) and ``page_token`` (a previous ``next_page_token``) page through them.
- ``GET  /api/v1/approvals/{id}``           — one approval.
- ``POST /api/v1/approvals/{id}``           — ``{"decision": "approve"|"deny", "comment": ...}``;
  approver or admin keys only: an agent's key gets 403 with the reason.
- ``POST /telegram/webhook``                — button presses; the secret header is checked in
  constant time (401 and no change otherwise), the presser must be an approver of the
  approval's org (refused and audited otherwise), replays and double presses are harmless.

Only translation happens here; the workflow lives in ``flowlink.approvals.service``.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from flowlink import audit
from flowlink.approvals.runtime import approval_service_for
from flowlink.approvals.service import ApprovalService, approver_for_key
from flowlink.errors import InvalidInput
from flowlink.gateway.deps import AnyKey, get_runtime
from flowlink.telegram import TelegramError, audit_user_id, parse_button_press, secret_matches

logger = logging.getLogger(__name__)

router = APIRouter()

TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class DecisionBody(BaseModel):
    # Unknown fields are refused (400 naming them), as in every other body of the API.
    model_config = ConfigDict(extra="forbid")
    decision: str = Field(pattern="^(approve|deny)$", description="approve or deny")
    comment: str | None = Field(None, max_length=1000)


def approval_service(request: Request) -> ApprovalService:
    return approval_service_for(get_runtime(request))


@router.get("/api/v1/approvals")
async def list_approvals(
    request: Request, auth: AnyKey, status: str | None = None, limit: int = 50, page_token: str | None = None
) -> dict[str, Any]:
    service = approval_service(request)
    return await anyio.to_thread.run_sync(
        partial(service.page, auth.org_id, status=status, limit=limit, page_token=page_token)
    )


@router.get("/api/v1/approvals/{approval_id}")
async def get_approval(request: Request, approval_id: str, auth: AnyKey) -> dict[str, Any]:
    service = approval_service(request)
    item = await anyio.to_thread.run_sync(service.get, auth.org_id, approval_id)
    return service.public_view(item)


@router.post("/api/v1/approvals/{approval_id}")
async def decide_approval(
    request: Request, approval_id: str, body: DecisionBody, auth: AnyKey
) -> dict[str, Any]:
    approver = approver_for_key(auth, "rest")
    service = approval_service(request)
    result = await anyio.to_thread.run_sync(
        partial(service.decide, auth.org_id, approval_id, body.decision, approver, comment=body.comment)
    )
    return result.to_dict()


@router.post("/telegram/webhook")
async def telegram_webhook(request: Request) -> JSONResponse:
    service = approval_service(request)
    settings = service.settings
    if not secret_matches(request.headers.get(TELEGRAM_SECRET_HEADER), settings.telegram_webhook_secret):
        return JSONResponse(
            {"error": "unauthorized", "detail": "missing or wrong X-Telegram-Bot-Api-Secret-Token"}, status_code=401
        )
    try:
        update = await request.json()
    except ValueError:
        raise InvalidInput("webhook body is not JSON") from None
    try:
        press = parse_button_press(update)
    except ValueError as exc:
        # Telegram retries non-2xx answers: acknowledge what we do not handle.
        return JSONResponse({"ok": True, "ignored": str(exc)})
    outcome = await anyio.to_thread.run_sync(_handle_press, service, press)
    return JSONResponse({"ok": True, **outcome})


def _handle_press(service: ApprovalService, press: Any) -> dict[str, Any]:
    item = service.find(press.approval_id)
    if item is None:
        _answer(service, press.callback_query_id, "Unknown or expired approval.")
        return {"result": "not_found"}
    approver = service.authorize_telegram_user(item.org_id, press.telegram_user_id, press.username)
    if approver is None:
        presser = audit_user_id(press.telegram_user_id)
        audit.append_event(
            item.org_id,
            "approval.decision_refused",
            {"approval_id": item.approval_id, "channel": "telegram", "telegram_user_id": presser,
             "reason": "not an approver of this org"},
            actor={"telegram_user_id": presser, "username": press.username, "channel": "telegram"},
        )
        _answer(service, press.callback_query_id, "You are not an approver for this organisation. Nothing changed.")
        return {"result": "refused"}
    result = service.decide(item.org_id, item.approval_id, press.decision, approver, update_id=press.update_id)
    _answer(service, press.callback_query_id, result.message)
    if result.recorded and result.status == "pending" and press.chat_id is not None and press.message_id is not None:
        service.note_progress(item.approval_id, item.org_id)
    return {"result": result.status, "recorded": result.recorded}


def _answer(service: ApprovalService, callback_query_id: str, text: str) -> None:
    client = service.telegram
    if client is None:
        return
    try:
        client.answer_callback_query(callback_query_id, text)
    except TelegramError as exc:
        logger.warning("could not answer Telegram callback query: %s", exc)
