"""NEXOR_DATABASE_URL parsing: the two kinds, what each backend gets, and a password that never
shows, in `display`, `repr`, `str` or any error, valid URL or not."""

from __future__ import annotations

import os

import pytest

from nexor_mcp.store import DatabaseUrl, parse_database_url
from nexor_mcp.store.urls import SQLITE_EXAMPLE, mask_url

PASSWORD = "s3cret"


def test_an_absolute_sqlite_path() -> None:
    url = parse_database_url("sqlite:////var/lib/nexor/state.db")
    assert (url.kind, url.path, url.display, url.conninfo) == (
        "sqlite", "/var/lib/nexor/state.db", "sqlite:////var/lib/nexor/state.db", None)
    assert str(url) == "sqlite:////var/lib/nexor/state.db"
    assert repr(url) == "DatabaseUrl('sqlite:////var/lib/nexor/state.db')"


def test_a_sqlite_path_in_the_home_directory_is_expanded() -> None:
    url = parse_database_url("sqlite:///~/nexor/state.db")
    assert url.path == os.path.expanduser("~/nexor/state.db")
    assert url.path is not None and os.path.isabs(url.path)


@pytest.mark.parametrize(("given", "why"), [
    ("sqlite:///state.db", "has a relative path"),
    ("sqlite:///var/lib/nexor/state.db", "four slashes"),
    ("sqlite:///:memory:", "names an in-memory database"),
    ("sqlite:///", "names no file"),
    ("sqlite://", "names a host"),
    ("sqlite://host/state.db", "names a host"),
    ("sqlite:////tmp/state.db?mode=ro", "has a query or fragment"),
    ("sqlite:///file:/tmp/state.db", "names an in-memory database"),
])
def test_a_sqlite_url_without_an_absolute_file_is_refused_saying_what_is_expected(given: str, why: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_database_url(given)
    message = str(raised.value)
    assert why in message
    assert f"e.g. {SQLITE_EXAMPLE}" in message
    assert "\n" not in message


def test_a_postgresql_url_keeps_its_conninfo_and_masks_its_password() -> None:
    url = parse_database_url(f"postgresql://nexor:{PASSWORD}@db.internal:5432/nexor?sslmode=require")
    assert url.kind == "postgresql"
    assert url.conninfo == f"postgresql://nexor:{PASSWORD}@db.internal:5432/nexor?sslmode=require"
    assert url.display == "postgresql://nexor:***@db.internal:5432/nexor?sslmode=require"
    assert url.params == frozenset({"sslmode"})
    assert url.path is None
    for shown in (str(url), repr(url), url.display, repr([url]), f"{url}"):
        assert PASSWORD not in shown


def test_postgres_is_the_same_as_postgresql() -> None:
    url = parse_database_url(f"postgres://nexor:{PASSWORD}@127.0.0.1/nexor")
    assert url.kind == "postgresql"
    assert url.conninfo == f"postgresql://nexor:{PASSWORD}@127.0.0.1/nexor"
    assert url.display == "postgresql://nexor:***@127.0.0.1/nexor"


@pytest.mark.parametrize(("given", "shown"), [
    ("postgresql://db.internal/nexor", "postgresql://db.internal/nexor"),
    ("postgresql://nexor@db.internal/nexor", "postgresql://nexor@db.internal/nexor"),
    ("postgresql:///nexor?host=/var/run/postgresql", "postgresql:///nexor?host=/var/run/postgresql"),
    ("postgresql://h1:5432,h2:5433/nexor", "postgresql://h1:5432,h2:5433/nexor"),
    ("postgresql://u:s3cret@[::1]:5432/nexor", "postgresql://u:***@[::1]:5432/nexor"),
    ("postgresql://db/nexor?password=s3cret&sslmode=require", "postgresql://db/nexor?password=***&sslmode=require"),
])
def test_other_postgresql_forms_are_accepted(given: str, shown: str) -> None:
    url = parse_database_url(given)
    assert url.display == shown
    assert url.conninfo == given


def test_the_password_is_redacted_from_any_text_as_written_and_decoded() -> None:
    url = parse_database_url("postgresql://u:s3%40cret@db/nexor?password=an%20other")
    assert set(url.secrets) == {"s3%40cret", "s3@cret", "an%20other", "an other"}
    assert url.redact("FATAL: password s3@cret or s3%40cret or an other, an%20other") == (
        "FATAL: password *** or *** or ***, ***")
    assert "s3" not in url.display and "other" not in url.display


MALFORMED_WITH_A_PASSWORD = [
    "postgresql://u:s3cret@db:notaport/nexor",
    "postgresql://u:s3cret@db:99999/nexor",
    "postgresql://u:s3cret@[::1/nexor",
    "postgresql://u:s3/cret@db/nexor",
    "postgresql://u:s3#cret@db/nexor",
    "postgresql://u:s3?cret@db/nexor",
    "postgresql://u:s3@cret@db/nexor",
    "postgresql://u:s3cret@db/nexor?sslmode",
    "postgresql://u:s3cret@db/nexor?a=1&&b",
    "postgresql://u:s3cret@db/nexor#frag",
    "mysql://u:s3cret@db/nexor",
    "u:s3cret@db/nexor",
    "postgresql:u:s3cret@db",
    "//u:s3cret@db/nexor",
    "sqlite://u:s3cret@host/x.db",
    "sqlite:///u:s3cret@x.db",
    "db/nexor?password=s3cret",
]


@pytest.mark.parametrize("given", MALFORMED_WITH_A_PASSWORD)
def test_a_malformed_url_is_refused_without_showing_its_password(given: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_database_url(given)
    for text in (str(raised.value), repr(raised.value)):
        for fragment in ("s3cret", "cret"):
            assert fragment not in text, text
    assert "\n" not in str(raised.value)
    assert raised.value.__cause__ is None


def test_an_unknown_scheme_says_what_is_expected() -> None:
    with pytest.raises(ValueError) as raised:
        parse_database_url("mysql://u:s3cret@db/nexor")
    assert str(raised.value) == (
        "the database URL 'mysql://u:***@db/nexor' is not one this server can use: expected "
        "sqlite:////var/lib/nexor/state.db or postgresql://user:password@host:5432/dbname")


def test_a_bare_path_is_told_how_to_write_it() -> None:
    with pytest.raises(ValueError) as raised:
        parse_database_url("/var/lib/nexor/state.db")
    assert "sqlite:////var/lib/nexor/state.db" in str(raised.value)


def test_an_ambiguous_password_is_told_to_be_percent_encoded() -> None:
    with pytest.raises(ValueError) as raised:
        parse_database_url("postgresql://u:pa/ss@db/nexor")
    assert "percent-encode" in str(raised.value)
    assert "postgresql://u:***@db/nexor" in str(raised.value)


@pytest.mark.parametrize(("given", "masked"), [
    ("postgresql://u:pw@h/d", "postgresql://u:***@h/d"),
    ("postgresql://u@h/d", "postgresql://u@h/d"),
    ("u:pw@h", "u:***@h"),
    ("postgresql://h/d?x=1&PassWord=pw", "postgresql://h/d?x=1&PassWord=***"),
    ("postgresql://u:p@w@h/d", "postgresql://u:***@h/d"),
])
def test_mask_url_masks_whatever_could_be_a_password(given: str, masked: str) -> None:
    assert mask_url(given) == masked


def test_urls_compare_by_what_they_name() -> None:
    assert parse_database_url("postgres://u:a@h/d") == parse_database_url("postgresql://u:a@h/d")
    assert parse_database_url("postgres://u:a@h/d") != parse_database_url("postgresql://u:b@h/d")
    assert isinstance(parse_database_url("sqlite:////x.db"), DatabaseUrl)
