"""Sign in and sign out.

Sign-in checks the access key id and secret against the stored secret (constant-time) and creates a
server-side session that holds only the access key id. The form is protected against login CSRF by a
token in a short-lived cookie that must come back in the form. Each sign-in is recorded as AWS records
console sign-ins (``ConsoleLogin`` from ``signin.amazonaws.com``); the secret is never recorded, and
neither is an access key id that does not exist (it could be a mistyped secret).
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets

from starlette.responses import RedirectResponse, Response

from openkms.audit.events import ApiCall, fast_uuid
from openkms.audit.writer import RecordNotStored
from openkms.config import DEFAULT_REGION
from openkms.console.api import USER_AGENT
from openkms.console.http import PREFIX, ConsoleRequest, delete_cookie, set_cookie
from openkms.console.page import Page
from openkms.console.regions import located
from openkms.console.sessions import SESSION_COOKIE, SIGNIN_COOKIE, tokens_equal
from openkms.errors import InternalError

ACCESS_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")
REASONS = {
    "expired": "Your session has ended. Sign in again.",
    "signedout": "You have signed out.",
}
WRONG = "The access key ID or secret access key is not correct."
NOT_RECORDED = "The sign-in could not be recorded in the audit trail, so you are not signed in. Request id: "


def _form(
    page: Page,
    *,
    status: int = 200,
    access_key_id: str = "",
    region: str = "",
    errors: dict[str, str] | None = None,
) -> Response:
    token = secrets.token_urlsafe(24)
    settings = page.console.runtime.settings
    response = page.render(
        "signin.html",
        status=status,
        token=token,
        access_key_id=access_key_id,
        region_value=region or (settings.regions[0] if settings.regions else DEFAULT_REGION),
        notice=REASONS.get(page.request.arg("reason")),
        errors=errors or {},
    )
    set_cookie(response, SIGNIN_COOKIE, token, secure=page.request.secure, max_age=3600)
    return response


def _signin_token_ok(request: ConsoleRequest) -> bool:
    """The sign-in form's token matches the short-lived cookie set with the form (login CSRF)."""
    cookie = request.cookies.get(SIGNIN_COOKIE, "")
    return bool(cookie) and tokens_equal(request.field("csrf_token"), cookie)


async def signin_form(page: Page) -> Response:
    return _form(page)


async def signin(page: Page) -> Response:
    request = page.request
    console = page.console
    access_key_id = request.field("access_key_id").strip()
    secret = request.field("secret_access_key")
    region = request.field("region").strip() or DEFAULT_REGION
    if not _signin_token_ok(request):
        return _form(
            page,
            status=403,
            access_key_id=access_key_id,
            region=region,
            errors={"form": "The sign-in form had expired. Enter your credentials again."},
        )
    errors: dict[str, str] = {}
    if not access_key_id:
        errors["access_key_id"] = "Enter your access key ID."
    if not secret:
        errors["secret_access_key"] = "Enter your secret access key."  # noqa: S105 - a message
    if not console.runtime.settings.region_ok(region):
        errors["region"] = "Enter a Region this service answers for, such as us-east-1."
    if errors:
        return _form(page, status=400, access_key_id=access_key_id, region=region, errors=errors)
    creds = None
    if ACCESS_KEY_ID.match(access_key_id):
        creds = await console.in_thread(functools.partial(console.runtime.creds.load, access_key_id))
    started = console.runtime.clock.now()
    ok = creds is not None and hmac.compare_digest(creds.secret.reveal().encode(), secret.encode())
    if creds is not None and ok and creds.token_sha256 is not None:
        ok = False
        errors["form"] = "Temporary credentials cannot sign in to the console: use a long-term access key."
    if creds is not None:
        login = ApiCall(
            event_source="signin.amazonaws.com",
            event_name="ConsoleLogin",
            read_only=False,
            principal=creds.principal,
            access_key_id=access_key_id,
            region=region,
            source_ip=request.client_ip,
            user_agent=USER_AGENT,
            request_id=fast_uuid(),
            started=started,
            error_message=None if ok else "Failed authentication",
            response_elements={"ConsoleLogin": "Success" if ok else "Failure"},
            additional_event_data={
                "LoginTo": f"{request.origin}{PREFIX}/",
                "MobileVersion": "No",
                "MFAUsed": "No",
            },
        )
        try:
            await console.runtime.audit.submit_call(login)
        except RecordNotStored as exc:  # no sign-in without its record
            errors["form"] = NOT_RECORDED + exc.request_id
            return _form(page, status=500, access_key_id=access_key_id, region=region, errors=errors)
    if not ok or creds is None:
        errors.setdefault("form", WRONG)
        return _form(page, status=401, access_key_id=access_key_id, region=region, errors=errors)
    session = await console.in_thread(
        functools.partial(console.sessions.create, access_key_id, creds.principal.account_id, region)
    )
    response = RedirectResponse(located(f"{PREFIX}/keys", region), 303)
    set_cookie(response, SESSION_COOKIE, session.id.reveal(), secure=request.secure)
    delete_cookie(response, SIGNIN_COOKIE, secure=request.secure)
    return response


async def signout(page: Page) -> Response:
    if page.session is None:  # signing out is a signed-in view
        raise InternalError("sign-out without a session")
    await page.console.in_thread(functools.partial(page.console.sessions.delete, page.session.id.reveal()))
    response = RedirectResponse(f"{PREFIX}/signin?reason=signedout", 303)
    delete_cookie(response, SESSION_COOKIE, secure=page.request.secure)
    return response
