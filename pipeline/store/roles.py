"""PostgreSQL access roles of the warehouse: ``sql/roles.sql`` applied to a database.

The file is plain SQL for psql with the role names ``digitize_loader`` and
``digitize_reporting``; :func:`apply_roles` can give them other names (roles are cluster-wide,
so two warehouses on one server, or a test, need their own).
"""

from __future__ import annotations

import re

from pipeline.config import PROJECT_DIR
from pipeline.errors import ConfigError
from pipeline.store import warehouse

ROLES_SQL = PROJECT_DIR / "sql" / "roles.sql"
LOADER = "digitize_loader"
REPORTING = "digitize_reporting"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def roles_sql(loader: str = LOADER, reporting: str = REPORTING) -> str:
    """``sql/roles.sql`` with the two role names replaced."""
    for name in (loader, reporting):
        if not _IDENTIFIER.match(name):
            raise ConfigError(f"Role name {name!r}: use lower-case letters, digits and _ "
                              "(at most 63, not starting with a digit).")
    names = {LOADER: loader, REPORTING: reporting}
    text = ROLES_SQL.read_text(encoding="utf-8")
    return re.sub(rf"\b({LOADER}|{REPORTING})\b", lambda m: names[m.group(1)], text)


def apply_roles(url: str, loader: str = LOADER, reporting: str = REPORTING) -> None:
    """Create the roles if missing and (re)grant them on the warehouse at ``url``, migrated first
    (the grants name the views of migration 0005)."""
    engine = warehouse.engine_for(url)
    if engine.dialect.name != "postgresql":
        raise ConfigError(f"Access roles are PostgreSQL's; the warehouse {engine.url.render_as_string()} "
                          "is not. Set DIGITIZE_DB_URL to the PostgreSQL warehouse.")
    sql = roles_sql(loader, reporting)
    warehouse.migrate(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(sql)
