"""The domain's secret key and what is derived from it: one-click unsubscribe tokens (HMAC-SHA256), the encryption
of webhook signing secrets (AES-256-GCM: a secret must be read back in clear to sign each delivery, so it cannot be
stored hashed as partner API keys are), and webhook signatures (Stripe's scheme).

The key is NOTIFICATIONS_SECRET_KEY (any string; set it in production). Unset, one is generated once and shared
through Redis (SET NX), like the flash-sale token secret: links and stored secrets then last as long as that Redis
key does."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.asyncio import Redis

from kernel.ids import as_id
from kernel.settings import Settings

_REDIS_KEY = "notifications:secret-key"


async def secret_key(redis: Redis, settings: Settings) -> bytes:
    if settings.notifications_secret_key:
        return settings.notifications_secret_key.encode()
    await redis.set(_REDIS_KEY, secrets.token_hex(32), nx=True)
    value = await redis.get(_REDIS_KEY)
    return value if isinstance(value, bytes) else str(value).encode()


def _derived(key: bytes, purpose: str) -> bytes:
    return hmac.new(key, purpose.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---- unsubscribe ----------------------------------------------------------------------------------------------

def unsubscribe_token(key: bytes, user_id: int, category: str) -> str:
    """`<user id>.<category>.<signature>`: opens that user's unsubscribe of that category, with no sign-in."""
    message = f"{user_id}.{category}"
    signature = hmac.new(_derived(key, "unsubscribe"), message.encode(), hashlib.sha256).digest()
    return f"{message}.{_b64(signature)}"


def verify_unsubscribe_token(key: bytes, token: str) -> tuple[int, str] | None:
    """(user id, category) of a token this key signed; None for anything else."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    user_id, category = as_id(parts[0]), parts[1]
    if user_id is None:
        return None
    try:
        expected = unsubscribe_token(key, user_id, category)
    except ValueError:
        return None
    return (user_id, category) if hmac.compare_digest(expected, token) else None


# ---- webhook secrets ------------------------------------------------------------------------------------------

def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


def encrypt_secret(key: bytes, secret: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_derived(key, "webhook-secrets")).encrypt(nonce, secret.encode(), b"webhook")


def decrypt_secret(key: bytes, stored: bytes) -> str:
    """Raises cryptography's InvalidTag when the key changed since the secret was stored."""
    return AESGCM(_derived(key, "webhook-secrets")).decrypt(stored[:12], stored[12:], b"webhook").decode()


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `NexusCart-Signature` header: `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (Stripe's scheme)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
