"""Airflow plugin: the archivists' search page, served by the Airflow API server itself.

Wiring only (the page is :mod:`pipeline.access.page`, the search :mod:`pipeline.access.search`):

- a FastAPI app mounted at ``/digitize-search`` (``/digitize-search/`` the page,
  ``/digitize-search/pdf/<agency>/<record_id>`` a record's PDF). Its own prefix, not
  ``/digitize/tra-cuu``: Airflow mounts each plugin app with a Starlette ``Mount``, and the first
  mount whose prefix matches a path takes it, so a path under ``/digitize/`` would reach the
  progress app (and its 404), never this one;
- a menu entry "Tra cứu" in the Airflow UI's left bar, beside "Tiến độ", whose page shows the
  search inside the UI (``/plugin/tra-cuu-ho-so``); short for the same reason as "Tiến độ" (the
  bar is 56 px wide); the page keeps its full title.

Authentication as the progress page (plugins/digitize_progress.py): every route depends on
``airflow.api_fastapi.core_api.security.get_user``; a browser without a login goes to Airflow's
login and back, other clients get 401. The warehouse is the ``digitize_warehouse`` connection,
read on every request, as the progress page reads it (its ``warehouse_settings`` and
``login_url`` are reused: Airflow puts the plugins folder on ``sys.path``).

Personal data (Decree 13/2023): the Airflow user's role decides whether the page shows holder
names and ids (:data:`PERSONAL_DATA_ROLES`); the access log names the reader ``airflow:<user>``.

Airflow imports this file in every component: nothing is imported here beyond ``AirflowPlugin``;
FastAPI and ``pipeline`` are imported only when the API server asks for ``fastapi_apps``.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from airflow.plugins_manager import AirflowPlugin

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
    from fastapi import FastAPI

URL_PREFIX = "/digitize-search"
URL_ROUTE = "tra-cuu-ho-so"  # the page inside the UI: /plugin/tra-cuu-ho-so
MENU_NAME = "Tra cứu"
APP_NAME = "Tra cứu hồ sơ số hóa"
# Airflow roles that may read holder names and ids, compared without case: the simple auth
# manager's ADMIN and OP, FAB's Admin and Op (operators of the archive). Viewer and User see
# masked results, as the reporting role does.
PERSONAL_DATA_ROLES = frozenset({"admin", "op"})


def role_names(user: BaseUser) -> set[str]:
    """The user's roles, lower case: ``role`` (simple auth manager) or ``roles`` (FAB)."""
    role = getattr(user, "role", None)
    names = [role] if role else [getattr(r, "name", r) for r in getattr(user, "roles", None) or ()]
    return {str(n).lower() for n in names}


def may_read_personal_data(user: BaseUser) -> bool:
    return bool(role_names(user) & PERSONAL_DATA_ROLES)


@cache
def search_app() -> FastAPI:
    from airflow.api_fastapi.core_api.security import get_user
    from digitize_progress import login_url, warehouse_settings  # the progress page's own
    from fastapi import Depends

    from pipeline.access.page import Reader, create_app

    # a default, not Annotated: annotations here are strings, resolved against the module's globals
    logged_in = Depends(get_user)

    def reader(user: Any = logged_in) -> Reader:
        return Reader(name=f"airflow:{user.get_name()}", personal_data=may_read_personal_data(user))

    return create_app(warehouse_settings, reader=reader, dependencies=[logged_in],
                      login_url=login_url)


class DigitizeSearchPlugin(AirflowPlugin):
    name = "digitize_search"
    # as the progress page's entry: each plugin file is loaded on its own, without the other
    external_views = [{
        "name": MENU_NAME,
        # relative: the UI resolves it against its own base URL (also behind a path prefix)
        "href": f"{URL_PREFIX.lstrip('/')}/",
        "destination": "nav",
        "url_route": URL_ROUTE,  # shown inside the UI (an iframe), not in a new tab
        "nav_top_level": True,
    }]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        # Built on first use: only the API server (and `airflow plugins`) ever asks.
        return [{"app": search_app(), "url_prefix": URL_PREFIX, "name": APP_NAME}]
