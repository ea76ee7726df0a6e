"""The one-click unsubscribe page, a plain HTTP route of this subgraph (no sign-in: the signed token is the key).

GET  /unsubscribe?token=...   a page with one button (GET changes nothing: mail scanners open links)
POST /unsubscribe?token=...   marketing email off for the token's user; RFC 8058 mail clients POST
                              `List-Unsubscribe=One-Click` here straight from the List-Unsubscribe header
A token that is not ours is answered 400, and nothing changes.
"""
from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from kernel.graphql import ServiceResources
from kernel.uow import unit_of_work
from subgraphs.notifications import keys, service

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>NexusCart emails</title></head>
<body style="font-family: sans-serif; max-width: 480px; margin: 3em auto">{}</body></html>"""
_BAD = "<p>This unsubscribe link is not valid. You can change your emails in your notification preferences.</p>"


def _page(content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(content), status_code=status, headers={"cache-control": "no-store"})


async def unsubscribe(request: Request) -> HTMLResponse:
    resources: ServiceResources = request.app.state.resources
    token = request.query_params.get("token", "")
    if request.method == "GET":
        found = keys.verify_unsubscribe_token(await keys.secret_key(resources.redis, resources.settings), token)
        if found is None:
            return _page(_BAD, 400)
        return _page(f"""<p>Stop receiving marketing emails (flash-sale reminders) from NexusCart? Emails about your
own orders and payments continue.</p><form method="post" action="/unsubscribe?token={html.escape(token)}">
<input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>""")
    async with unit_of_work(resources.session_factory) as session:
        done = await service.unsubscribe(session, resources.redis, resources.settings, token)
    if not done:
        return _page(_BAD, 400)
    return _page("<p>You are unsubscribed from NexusCart marketing emails.</p>")


ROUTES = [Route("/unsubscribe", unsubscribe, methods=["GET", "POST"])]
