"""The audit log of reaction policies on the dashboard (``/actions``): every action a policy
took, would have taken in a dry run, or waits to take until a person approves it, newest first,
filtered by model and status. Pending actions are approved or rejected from this page by anyone
holding a token of scope ``write``.

A decision is a POST from the page's own form. The token cookie is ``SameSite=Strict``, so a
form on another site cannot carry it; a request that names another origin (its ``Origin``
header, else its ``Referer``) is refused all the same. After a decision the browser goes back to
the list (303) with a note of what happened, kept for one page view in a short-lived cookie.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qs, quote, unquote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from mlwarden.exceptions import MlwardenError, NotFoundError
from mlwarden.react.audit import ActionRecord, count_actions, get_action, list_actions
from mlwarden.server.dashboard import (
    COOKIE,
    Viewer,
    _bearer,
    _problem,
    _render,
    _root,
    _safe_next,
    _store,
    _when,
)

if TYPE_CHECKING:
    from fastapi.responses import Response

    from mlwarden.store.metadata import Store, TokenRecord

__all__ = ["STATUSES", "audit_log", "noted", "router", "same_origin", "writer_form"]

STATUSES: Final = ("pending", "done", "failed", "dry_run", "rejected")
ACTIONS_PER_PAGE: Final = 200
FLASH: Final = "mlwarden_flash"
MAX_COMMENT: Final = 2_000
_MAX_FORM_BYTES: Final = 16_384
_FLASH_CHARS: Final = 1_000

router = APIRouter(include_in_schema=False)


def audit_log(
    store: Store,
    *,
    model: str | None = None,
    status: str | None = None,
    limit: int = ACTIONS_PER_PAGE,
) -> tuple[list[ActionRecord], dict[str, int]]:
    """The newest ``limit`` actions (of one model, of one status) and, of the same model, the
    number of actions per status.

    Example:
        >>> from mlwarden.store.metadata import Store
        >>> from mlwarden.store.schema import PolicyActionRow
        >>> store = Store("sqlite://")
        >>> store.migrate()
        >>> model = store.create_model("press-7")
        >>> with store.session() as s:
        ...     s.add_all([
        ...         PolicyActionRow(model_id=model.id, policy="p", action="notify", key="k1",
        ...                         status="done"),
        ...         PolicyActionRow(model_id=model.id, policy="p", action="rollback", key="k2",
        ...                         status="pending"),
        ...     ])
        >>> entries, counts = audit_log(store, model="press-7", status="pending")
        >>> [(e.action, e.status) for e in entries], counts
        ([('rollback', 'pending')], {'done': 1, 'pending': 1})
    """
    entries = list_actions(store, model, status=status, limit=limit)
    return entries, count_actions(store, model)


def _entry(store: Store, action_id: int) -> ActionRecord | None:
    try:
        return get_action(store, action_id)
    except NotFoundError:
        return None


# -- who may decide -------------------------------------------------------------------------------


def _token(request: Request) -> str | None:
    return _bearer(request.headers.get("authorization")) or request.cookies.get(COOKIE)


def _writer(request: Request) -> TokenRecord | None:
    """The request's token (bearer header or cookie) when it is valid for writes."""
    token = _token(request)
    return _store(request).verify_token(token, "write") if token else None


def same_origin(request: Request) -> bool:
    """Whether a form was sent from this server's own pages, as far as the browser tells:
    its ``Origin`` header, else its ``Referer``, names this host. A request with neither (a
    script with a bearer token) passes; the cookie never leaves this site (SameSite=Strict)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    return source is None or urlsplit(source).netloc == request.headers.get("host")


def _why_not(request: Request, viewer: TokenRecord | None) -> str:
    """Why the viewer cannot approve or reject, for the note beside the disabled buttons."""
    needs = "Approving or rejecting an action needs a token of scope write"
    if viewer is not None:
        return f"{needs}; you are signed in with the read token '{viewer.name}'."
    if request.app.state.settings.public_read:
        return f"{needs}, sent as a bearer token: this server shows its pages without one."
    return f"{needs}: sign in with one."


# -- the page -------------------------------------------------------------------------------------


def _flash(request: Request) -> tuple[str, str] | None:
    """The note left by the last decision: ``(kind, text)``, kind ``ok`` or ``error``."""
    value = request.cookies.get(FLASH)
    if not value or ":" not in value:
        return None
    kind, _, text = value.partition(":")
    return ("error" if kind == "error" else "ok"), unquote(text)


def _back(target: str | None) -> str:
    """Where to go after a decision: the audit log, with the filters it had."""
    target = _safe_next(target)
    return target if target == "/actions" or target.startswith("/actions?") else "/actions"


@router.get("/actions")
def actions_page(
    request: Request, viewer: Viewer, model: str | None = None, status: str | None = None
) -> Response:
    """The audit log of reaction policies, newest first."""
    model = model or None
    status = status or None
    if status is not None and status not in STATUSES:
        return _problem(
            request,
            422,
            "Bad request",
            f"'{status}' is not a status of an action. Statuses: {', '.join(STATUSES)}.",
        )
    store = _store(request)
    try:
        entries, counts = audit_log(store, model=model, status=status)
    except NotFoundError as exc:
        return _problem(request, 404, "Not found", str(exc))
    writer = _writer(request)
    total = sum(counts.values())
    here = "/actions" + (f"?{request.url.query}" if request.url.query else "")
    flash = _flash(request)
    response = _render(
        request,
        "actions.html.j2",
        title="Policy actions" + (f" of {model}" if model else ""),
        subtitle=f"{total:,} action{'s' if total != 1 else ''} in the audit log"
        + (f" · {counts.get('pending', 0):,} pending" if counts.get("pending") else ""),
        model=model,
        status=status,
        statuses=STATUSES,
        counts=counts,
        total=total,
        actions=entries,
        shown=counts.get(status, 0) if status else total,
        writer=writer,
        why_not=None if writer is not None else _why_not(request, viewer),
        back=here,
        flash=flash,
    )
    if flash is not None:
        response.delete_cookie(FLASH, path=f"{_root(request)}/", httponly=True, samesite="strict")
    return response


async def writer_form(
    request: Request, *, where: str, doing: str, form_name: str, limit: int = _MAX_FORM_BYTES
) -> tuple[TokenRecord, dict[str, list[str]]] | Response:
    """The fields of a form posted from this server's own pages by a holder of a write token,
    or the page that refuses it (403 from elsewhere or without the token, 413 when larger than
    ``limit`` bytes). ``where`` and ``doing`` word the refusals."""
    if not same_origin(request):
        return _problem(request, 403, "Forbidden", f"{where} from this server's own pages.")
    body = await request.body()
    if len(body) > limit:
        return _problem(
            request, 413, "Too large", f"The {form_name} form is limited to {limit // 1024} KB."
        )
    writer = await run_in_threadpool(_writer, request)
    if writer is None:
        return _problem(
            request,
            403,
            "Forbidden",
            f"{doing} needs a token of scope write, from the sign-in cookie or a bearer header. "
            "Create one with 'mlwarden token create NAME --scope write'.",
        )
    return writer, parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def noted(request: Request, target: str, kind: str, text: str) -> Response:
    """Back to ``target`` (a path on this server) with a note (``ok`` or ``error``) for its
    next view."""
    response = RedirectResponse(f"{_root(request)}{target}", 303)
    response.set_cookie(
        FLASH,
        f"{kind}:{quote(' '.join(text.split())[:_FLASH_CHARS], safe='')}",
        max_age=60,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=f"{_root(request)}/",
    )
    return response


@router.post("/actions/{action_id}/decide")
async def decide_action(request: Request, action_id: str) -> Response:
    """Approve or reject a pending action (form fields ``decision``, ``comment``, ``back``)."""
    posted = await writer_form(
        request,
        where="Decide on actions",
        doing="Approving or rejecting an action",
        form_name="decision",
    )
    if not isinstance(posted, tuple):
        return posted
    writer, form = posted
    store = _store(request)
    decision = (form.get("decision") or [""])[0]
    comment = (form.get("comment") or [""])[0].strip()
    back = _back((form.get("back") or [""])[0])
    if decision not in ("approve", "reject"):
        return _problem(
            request, 422, "Bad request", f"A decision is 'approve' or 'reject'; got {decision!r}."
        )
    if len(comment) > MAX_COMMENT:
        return _problem(
            request,
            422,
            "Bad request",
            f"A comment is at most {MAX_COMMENT:,} characters; got {len(comment):,}.",
        )
    entry = await run_in_threadpool(_entry, store, int(action_id)) if action_id.isdigit() else None
    if entry is None:
        return _problem(request, 404, "Not found", f"The audit log has no action '{action_id}'.")
    verb = "approved" if decision == "approve" else "rejected"
    if entry.status != "pending":
        decided = f", decided by {entry.decided_by}" if entry.decided_by else ""
        decided += f" at {_when(entry.decided_at)} UTC" if entry.decided_at else ""
        note = ("error", f"Action {entry.id} is no longer pending: it is {entry.status}{decided}.")
    else:
        from mlwarden.react.policies import decide

        settings = request.app.state.settings
        try:
            await run_in_threadpool(
                partial(
                    decide,
                    store,
                    request.app.state.rowlog,
                    entry.id,
                    approve=decision == "approve",
                    by=writer.name,
                    comment=comment,
                    data_dir=settings.data_dir,
                    notify=getattr(request.app.state, "dispatcher", None),
                )
            )
        except MlwardenError as exc:
            note = ("error", f"Action {entry.id} could not be {verb}: {exc}")
        else:
            after = await run_in_threadpool(_entry, store, entry.id)
            now = f": it is {after.status}" if after is not None else ""
            note = (
                "ok",
                f"Action {entry.id} ({entry.action} of policy '{entry.policy}' on "
                f"{entry.model}) {verb} by {writer.name}{now}.",
            )
    return noted(request, back, *note)
