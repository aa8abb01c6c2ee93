"""Tokens of the systems that call the read API (the one-stop system, a district's portal...).

A token is ``secrets.token_urlsafe(32)`` (256 random bits), shown once when it is created and
stored only as its SHA-256: a copy of the warehouse hands out no usable token. Each token has a
name (what the access log calls the caller), the agencies whose records it may read (or the whole
province) and whether it may see holder names and ids (Decree 13/2023: only a caller whose role
needs them). A revoked token stays in the table, so the access log's caller names keep meaning.

    create_token(url, name, agencies=None, personal_data=False) -> str   # the token, once
    revoke_token(url, name) -> None
    list_tokens(url) -> list[TokenInfo]
    caller_for(url or connection, presented_token) -> Caller | None       # None: refused
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import IntegrityError

from pipeline.errors import ConfigError
from pipeline.store import warehouse

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Caller:
    """Who is calling, as its token says."""

    name: str
    agencies: frozenset[str] | None  # None: every agency of the province
    personal_data: bool

    def may_read(self, agency_code: str) -> bool:
        return self.agencies is None or agency_code in self.agencies


@dataclass(frozen=True)
class TokenInfo:
    name: str
    agencies: frozenset[str] | None
    personal_data: bool
    created_at: dt.datetime
    revoked_at: dt.datetime | None


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _agencies(stored: str | None) -> frozenset[str] | None:
    return None if stored is None else frozenset(a for a in stored.split(",") if a)


def _checked_agencies(url: str, agencies: Sequence[str]) -> str:
    """The agency codes as stored (sorted, comma-separated), each one known to the warehouse."""
    codes = sorted({a.strip() for a in agencies if a.strip()})
    if not codes:
        raise ConfigError("Mã truy cập phải ghi ít nhất một mã cơ quan (--agency MÃ), hoặc bỏ hẳn "
                          "--agency để cho đọc toàn tỉnh.")
    with warehouse.engine_for(url).connect() as conn:
        known = set(conn.execute(select(warehouse.agencies.c.code)
                                 .where(warehouse.agencies.c.code.in_(codes))).scalars())
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise ConfigError(
            f"Không có cơ quan {', '.join(unknown)} trong kho dữ liệu. Kiểm tra mã định danh, hoặc "
            "nhập danh sách cơ quan trước (`digitize agencies import TỆP`).")
    return ",".join(codes)


def create_token(url: str, name: str, agencies: Sequence[str] | None = None,
                 personal_data: bool = False) -> str:
    """A new token for the calling system ``name``, limited to ``agencies`` (None: the whole
    province); returns the token itself, which nobody can read back later."""
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"Tên hệ thống {name!r} không dùng được: 1 đến 64 ký tự chữ Latinh không dấu, số, '.', '_' "
            "hoặc '-', bắt đầu bằng chữ hoặc số (ví dụ motcua-tinh).")
    scope = None if agencies is None else _checked_agencies(url, agencies)
    token = secrets.token_urlsafe(32)
    try:
        with warehouse.engine_for(url).begin() as conn:
            conn.execute(warehouse.api_tokens.insert().values(
                name=name, token_sha256=token_sha256(token), agencies=scope,
                personal_data=personal_data, created_at=warehouse.now(), revoked_at=None))
    except IntegrityError as exc:
        raise ConfigError(
            f"Đã có mã truy cập tên {name!r} (kể cả mã đã thu hồi: tên giữ lại cho nhật ký truy cập). "
            "Đặt tên khác, ví dụ thêm năm: motcua-tinh-2027.") from exc
    return token


def revoke_token(url: str, name: str) -> None:
    """From now on the token of ``name`` is refused (HTTP 401)."""
    t = warehouse.api_tokens
    with warehouse.engine_for(url).begin() as conn:
        done = conn.execute(t.update().where(t.c.name == name, t.c.revoked_at.is_(None))
                            .values(revoked_at=warehouse.now())).rowcount
        if not done:
            exists = conn.execute(select(t.c.id).where(t.c.name == name)).first()
            raise ConfigError(
                f"Mã truy cập {name!r} đã bị thu hồi từ trước." if exists else
                f"Không có mã truy cập tên {name!r}. Xem danh sách: `digitize tokens list`.")


def list_tokens(url: str) -> list[TokenInfo]:
    t = warehouse.api_tokens
    with warehouse.engine_for(url).connect() as conn:
        rows = conn.execute(select(t.c.name, t.c.agencies, t.c.personal_data, t.c.created_at,
                                   t.c.revoked_at).order_by(t.c.name)).all()
    return [TokenInfo(r.name, _agencies(r.agencies), bool(r.personal_data), r.created_at, r.revoked_at)
            for r in rows]


# built once: every API call runs it, and building it cost as much as running it
_LIVE_TOKEN = select(warehouse.api_tokens.c.name, warehouse.api_tokens.c.agencies,
                     warehouse.api_tokens.c.personal_data).where(
    warehouse.api_tokens.c.token_sha256 == bindparam("sha256"),
    warehouse.api_tokens.c.revoked_at.is_(None))


def caller_for(source: str | Connection, presented_token: str) -> Caller | None:
    """The caller whose live token this is, or None; ``source`` is the warehouse's URL or a
    connection to it. The token is found by its hash through the unique index, never compared
    character by character, so the time taken tells an attacker nothing about how close a guess
    was."""
    with warehouse.connection(source) as conn:
        row = conn.execute(_LIVE_TOKEN, {"sha256": token_sha256(presented_token)}).first()
    return None if row is None else Caller(row.name, _agencies(row.agencies), bool(row.personal_data))
