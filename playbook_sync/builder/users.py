"""Per-user API tokens: created once, shown once, stored as a SHA-256 hash.

A fast hash is enough here (no bcrypt): tokens are 256 random bits, not passwords, so there
is nothing to guess from a leaked hash, and a lookup by hash stays one indexed query.
The operator (the settings' token, or anyone on a token-less local server) acts as the
user named LOCAL_USER, created on first use without a token.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from playbook_sync.builder.tables import User
from playbook_sync.ingest import clean

LOCAL_USER = "operator"
TOKEN_PREFIX = "psu_"


class UserError(ValueError):
    """A user cannot be added (bad or taken name)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_user(session: Session, name: str) -> tuple[User, str]:
    """A new user and their token (returned once; only its hash is kept)."""
    # Names are shown as owners: "zoë" + a zero-width space, or "Bob" beside "bob" or "Operator",
    # would be a second user who looks like the first.
    name = " ".join(clean(name).split())
    if not name or len(name) > 100:
        raise UserError("a user name must have 1 to 100 characters")
    if name.casefold() == LOCAL_USER:
        raise UserError(f"{LOCAL_USER!r} is reserved for the operator's local user")
    if session.scalar(select(User.id).where(func.lower(User.name) == name.lower())) is not None:
        raise UserError(f"a user named {name!r} exists already")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user = User(name=name, token_hash=hash_token(token))
    session.add(user)
    session.flush()
    return user, token


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def user_for_token(session: Session, token: str) -> User | None:
    """The user whose token this is, or None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    return session.scalar(select(User).where(User.token_hash == hash_token(token)))


def local_user_id(session: Session) -> int:
    """The operator's user (created on first use; concurrent first uses agree on one row)."""
    # Looked up first: an INSERT .. ON CONFLICT on every request took a sequence value each time
    # (users 1, 2, 3, then 264) and wrote on every read.
    found = session.scalar(select(User.id).where(User.name == LOCAL_USER))
    if found is not None:
        return found
    session.execute(insert(User).values(name=LOCAL_USER).on_conflict_do_nothing(index_elements=["name"]))
    return session.scalar(select(User.id).where(User.name == LOCAL_USER))
