"""Model tokens: minted once at creation, only their SHA-256 stored; the instructor's token opens every model."""
from __future__ import annotations

import hashlib
import hmac
import secrets

from app.config import Settings

from .errors import Forbidden, Unauthorized
from .status import ModelStatus

NO_TOKEN = "this call changes the model: send its token as 'Authorization: Bearer <token>'"


def token_hash(token: str) -> str:
    """Only a token's SHA-256 is stored, so a leaked database holds no usable tokens."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """256 random bits as hex."""
    return secrets.token_hex(32)


class Auth:
    def __init__(self, settings: Settings):
        self.settings = settings

    def is_admin(self, token: str | None) -> bool:
        admin = self.settings.admin_token
        return bool(admin and token and hmac.compare_digest(token.encode(), admin.encode()))

    def authorize(self, status: ModelStatus, token: str | None) -> None:
        """The model's own token, or the instructor's, may change it: Unauthorized / Forbidden otherwise."""
        if not token:
            raise Unauthorized(NO_TOKEN)
        if not (hmac.compare_digest(token_hash(token), status.token_hash) or self.is_admin(token)):
            raise Forbidden("the token does not match this model")
