"""How a message leaves: email over SMTP (aiosmtplib, to SMTP_URL), SMS and push through an HTTP provider each
(SMS_PROVIDER_URL, PUSH_PROVIDER_URL). A channel whose setting is empty is off: nothing is pretended to be sent
(the ledger says UNAVAILABLE).

Email is at-least-once at the transport: an SMTP server that accepted a message and whose answer was lost gets it
again on retry. Every message's Message-ID is derived from its ledger key (event, channel, recipient), so a
receiver can drop such a duplicate."""
from __future__ import annotations

import hashlib
import urllib.parse
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

import aiohttp
import aiosmtplib
import orjson

from kernel.settings import Settings
from subgraphs.notifications.models import Channel, DeliveryRecord


class SendFailed(Exception):
    """The provider refused or could not be reached: the ledger row is tried again later."""


def message_id(event_id: str, channel: str, recipient: int) -> str:
    digest = hashlib.sha256(f"{event_id}:{channel}:{recipient}".encode()).hexdigest()[:40]
    return f"<{digest}@notifications.nexuscart>"


def build_email(settings: Settings, delivery: DeliveryRecord, *, unsubscribe_url: str | None) -> EmailMessage:
    assert delivery.address is not None
    message = EmailMessage()
    message["From"] = settings.notifications_mail_from
    message["To"] = delivery.address
    message["Subject"] = delivery.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id(delivery.event_id, delivery.channel, delivery.recipient)
    message["Auto-Submitted"] = "auto-generated"
    if unsubscribe_url is not None:
        # RFC 8058 one-click: a POST of "List-Unsubscribe=One-Click" to that URL unsubscribes, no sign-in.
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(delivery.text_body)
    if delivery.html_body:
        message.add_alternative(delivery.html_body, subtype="html")
    return message


def smtp_available(settings: Settings) -> bool:
    return bool(settings.smtp_url)


class SmtpSession:
    """Several emails over one SMTP connection (a consumer batch's sends, a retry run's): opened with the first
    message. A message that fails drops the connection and the next one opens a new one, so a refused message or
    a connection the server closed costs that message alone (it is retried later), never the rest."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: aiosmtplib.SMTP | None = None

    async def __aenter__(self) -> SmtpSession:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _connection(self) -> aiosmtplib.SMTP:
        url = urllib.parse.urlsplit(self.settings.smtp_url)
        if url.scheme not in ("smtp", "smtps") or not url.hostname:
            raise SendFailed("SMTP_URL must be smtp://host:port or smtps://host:port")
        return aiosmtplib.SMTP(hostname=url.hostname, port=url.port or (465 if url.scheme == "smtps" else 25),
                               username=urllib.parse.unquote(url.username) if url.username else None,
                               password=urllib.parse.unquote(url.password) if url.password else None,
                               use_tls=url.scheme == "smtps", start_tls=None if url.scheme == "smtp" else False,
                               timeout=self.settings.smtp_timeout_seconds)

    async def send(self, message: EmailMessage) -> None:
        try:
            if self._client is None:
                client = self._connection()
                await client.connect()  # and EHLO, STARTTLS when offered, and login with the URL's credentials
                self._client = client
            await self._client.send_message(message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self.close()
            raise SendFailed(f"SMTP: {type(exc).__name__}") from exc

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None or not client.is_connected:
            return
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()  # the server is gone or rude: the socket is closed all the same


class MessageProvider(Protocol):
    """An SMS or push provider: delivers one short message to a user (the provider knows their phone numbers or
    device tokens; this platform does not store them)."""

    async def send(self, *, user_id: int, title: str, text: str, idempotency_key: str) -> None: ...


class HttpProvider:
    """POSTs `{"userId", "title", "text"}` as JSON with an `Idempotency-Key` header; any 2xx is accepted."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def send(self, *, user_id: int, title: str, text: str, idempotency_key: str) -> None:
        body = orjson.dumps({"userId": str(user_id), "title": title, "text": text})
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as http, http.post(
                    self.url, data=body, headers={"content-type": "application/json",
                                                  "idempotency-key": idempotency_key}) as response:
                if not 200 <= response.status < 300:
                    raise SendFailed(f"provider answered HTTP {response.status}")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise SendFailed(f"provider: {type(exc).__name__}") from exc


def provider_for(settings: Settings, channel: Channel) -> MessageProvider | None:
    """The configured provider of SMS or PUSH; None while its URL is unset (the channel is off)."""
    url = {Channel.SMS: settings.sms_provider_url, Channel.PUSH: settings.push_provider_url}.get(channel, "")
    return HttpProvider(url, settings.smtp_timeout_seconds) if url else None


def channel_available(settings: Settings, channel: Channel) -> bool:
    if channel is Channel.IN_APP:
        return True
    if channel is Channel.EMAIL:
        return smtp_available(settings)
    return provider_for(settings, channel) is not None
