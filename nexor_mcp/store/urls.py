"""NEXOR_DATABASE_URL, read once: which backend, what it needs, and a form safe to show.

Two kinds: `sqlite:////absolute/path.db` (four slashes: `sqlite:///` and then the absolute path)
and `postgresql://user:password@host:5432/dbname` (`postgres://` is the same). The password is
only ever in `conninfo` and `secrets`, which `repr` leaves out; `display` has it as `***`, and every
error message here is built from that masked form, never from the text given, so a typo in a URL
cannot put its password in a log line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

StoreKind = Literal["sqlite", "postgresql"]

SQLITE_EXAMPLE = "sqlite:////var/lib/nexor/state.db"
POSTGRES_EXAMPLE = "postgresql://user:password@host:5432/dbname"
MASK = "***"
_PASSWORD_PARAM = re.compile(r"(?i)(password=)[^&#]*")


@dataclass(frozen=True, repr=False)
class DatabaseUrl:
    """A parsed database URL. `str()` and `repr()` show `display`, never the password."""

    kind: StoreKind
    display: str
    """The URL with any password replaced by `***`: for logs, errors and `nexor-mcp check`."""
    path: str | None = None
    """SQLite: the database file, absolute."""
    conninfo: str | None = None
    """PostgreSQL: what libpq connects with (a `postgresql://` URL, password included)."""
    params: frozenset[str] = field(default=frozenset(), compare=False)
    """PostgreSQL: the connection parameters given in the query (`sslmode`, `connect_timeout`, ...)."""
    secrets: tuple[str, ...] = field(default=(), compare=False)
    """The password as written and decoded: masked out of any text about this database."""

    def __repr__(self) -> str:
        return f"DatabaseUrl({self.display!r})"

    def __str__(self) -> str:
        return self.display

    def redact(self, text: str) -> str:
        """`text` (a driver's error message, say) with the password masked wherever it appears."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text


def mask_url(text: str) -> str:
    """`text` with whatever could be a password masked, even when it is not a valid URL: all of the
    user information up to the last `@` after the user name, and any `password=` parameter."""
    scheme, separator, rest = text.partition("://")
    if not separator:
        scheme, rest = "", text
    at = rest.rfind("@")
    if at != -1 and ":" in rest[:at]:
        rest = f"{rest[:at].split(':', 1)[0]}:{MASK}@{rest[at + 1:]}"
    return _PASSWORD_PARAM.sub(rf"\g<1>{MASK}", f"{scheme}{separator}{rest}")


def parse_database_url(url: str) -> DatabaseUrl:
    """The `DatabaseUrl` of `url`; ValueError (one line, password masked) saying what is expected."""
    text = url.strip()
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme == "sqlite":
        return _sqlite(text)
    if scheme in ("postgresql", "postgres"):
        return _postgres(text)
    shown = mask_url(text)
    if not scheme and "@" not in text and text.startswith(("/", "~/")):
        raise ValueError(f"the database URL {shown!r} is a path, not a URL: for a SQLite file write "
                         f"sqlite:///{text} (e.g. {SQLITE_EXAMPLE})")
    raise ValueError(f"the database URL {shown!r} is not one this server can use: expected {SQLITE_EXAMPLE} "
                     f"or {POSTGRES_EXAMPLE}")


def _sqlite(text: str) -> DatabaseUrl:
    shown = mask_url(text)
    rest = text[len("sqlite://"):]
    if not rest.startswith("/"):
        raise ValueError(f"the SQLite URL {shown!r} names a host; expected sqlite:/// and an absolute path, "
                         f"e.g. {SQLITE_EXAMPLE}")
    path = rest[1:]
    if "?" in path or "#" in path:
        raise ValueError(f"the SQLite URL {shown!r} has a query or fragment, which is not supported; expected "
                         f"sqlite:/// and an absolute path, e.g. {SQLITE_EXAMPLE}")
    if path in ("", ":memory:") or path.startswith("file:"):
        what = "no file" if not path else "an in-memory database, which is lost on exit and not shared"
        raise ValueError(f"the SQLite URL {shown!r} names {what}; expected a file: sqlite:/// and an absolute "
                         f"path, e.g. {SQLITE_EXAMPLE}")
    if path.startswith("~"):
        path = os.path.expanduser(path)
    if not os.path.isabs(path):
        raise ValueError(f"the SQLite URL {shown!r} has a relative path, which would depend on where "
                         f"the server was started; expected an absolute one, e.g. {SQLITE_EXAMPLE} (four "
                         "slashes: sqlite:/// and then /var/...)")
    path = os.path.normpath(path)
    return DatabaseUrl(kind="sqlite", display=f"sqlite:///{path}", path=path)


def _postgres(text: str) -> DatabaseUrl:
    shown = mask_url(text)
    expected = f"expected {POSTGRES_EXAMPLE}"
    rest = text.split("://", 1)[1]
    conninfo = "postgresql://" + rest
    display = "postgresql://" + mask_url(rest)
    try:
        parts = urlsplit(conninfo)
    except ValueError:
        raise ValueError(f"the PostgreSQL URL {shown!r} is not a valid URL; {expected}") from None
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if "@" in userinfo or "@" in parts.path or "@" in parts.query or parts.fragment:
        raise ValueError(f"the PostgreSQL URL {shown!r} cannot be read unambiguously: percent-encode any '@', "
                         f"'/', '?', '#' or ':' in the user name or password (%40, %2F, %3F, %23, %3A); {expected}")
    for host in filter(None, hosts.split(",")):
        port = host.rpartition("]")[2].rpartition(":")[2] if host.startswith("[") else host.partition(":")[2]
        if host.startswith("[") and "]" not in host:
            raise ValueError(f"the PostgreSQL URL {shown!r} has an unclosed '[' in its host; {expected}")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"the PostgreSQL URL {shown!r} has a port that is not a number from 1 to 65535; "
                             f"{expected}")
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ValueError(f"the PostgreSQL URL {shown!r} has a query that cannot be read (name=value&...); "
                         f"{expected}") from None
    secrets = {value for name, value in query if name.lower() == "password"}
    for piece in parts.query.split("&"):  # the raw (still percent-encoded) form too
        name, _, value = piece.partition("=")
        if unquote(name).lower() == "password":
            secrets.add(value)
    if ":" in userinfo:
        password = userinfo.split(":", 1)[1]
        secrets |= {password, unquote(password)}
    secrets.discard("")
    return DatabaseUrl(
        kind="postgresql", display=display, conninfo=conninfo, params=frozenset(name for name, _ in query),
        secrets=tuple(sorted(secrets, key=len, reverse=True)),
    )
