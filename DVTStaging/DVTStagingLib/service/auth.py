"""Who may talk to the server: the bind rule (loopback without a token, any other address only with one)
and the token itself, read from a file and compared in constant time."""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import socket
from pathlib import Path

from ..core.errors import UserError

MIN_TOKEN_LENGTH = 16


def read_token(path) -> str:
    """The token in `path` (its first line, stripped), with one-line errors for a missing, empty or short one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"token file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"token file {path} is not readable ({exc})") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not token:
        raise UserError(f"token file {path} is empty")
    if len(token) < MIN_TOKEN_LENGTH:
        raise UserError(f"the token in {path} is shorter than {MIN_TOKEN_LENGTH} characters")
    return token


def write_new_token(path) -> str:
    """A random token in a new file that only this user can read (mode 0600); returns the token."""
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def check_bind(host: str, token: str | None) -> None:
    """Listening beyond this machine needs a token (UserError otherwise)."""
    if token is None and not is_loopback(host):
        raise UserError(f"refusing to listen on {host} without a token: anyone who can reach it could use the "
                        "server; pass --token-file FILE (or listen on 127.0.0.1)")


def token_matches(expected: str | None, authorization: str | None) -> bool:
    """The `Authorization: Bearer <token>` header against the server's token, in constant time."""
    if expected is None:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    return hmac.compare_digest(given.strip().encode("utf-8"), expected.encode("utf-8"))
