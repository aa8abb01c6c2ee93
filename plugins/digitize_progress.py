"""Airflow plugin: the progress dashboard for Sở TT&TT, served by the Airflow API server itself.

Wiring only (the page and the files are :mod:`pipeline.reporting.dashboard` and
:mod:`pipeline.reporting.report`):

- a FastAPI app mounted at ``/digitize`` (``/digitize/`` the page, opening on the running
  quarter; ``/digitize/bao-cao.xlsx`` and ``.csv`` / ``.json`` / ``.html`` the downloads;
  ``/digitize/kiem-tra/<agency>/<batch_id>/`` the great-expectations Data Docs of a batch's
  manifest validation, which quarantine notes and task logs link to);
- a menu entry "Tiến độ" in the Airflow UI's left bar whose page shows the dashboard inside the
  UI (``/plugin/tien-do-so-hoa``). The bar is 56 px wide at 10 px type and cuts longer labels
  ("Tiến độ số hóa" showed as "Tiến độ s…"); the page keeps its full title.

Authentication: Airflow does not authenticate plugin apps (a mounted app inherits none of the
core API's dependencies), so this app depends on ``airflow.api_fastapi.core_api.security.get_user``
for every route, as the Airflow plugin documentation shows: the visitor must be logged in to
Airflow (the UI's ``_token`` cookie, or ``Authorization: Bearer`` for scripts). A browser without
a login is sent to Airflow's login page and back; other clients get 401. Any logged-in Airflow
user may see the figures (aggregates only, no personal data) and the Data Docs (manifest rules and
the rows that broke them; holder ids masked to their shape).

The warehouse is the DAGs' Airflow connection ``digitize_warehouse`` (looked up through the API
server's secrets backends: environment variables, then the metadata database), falling back to
``DIGITIZE_DB_URL``; the phase plan is ``DIGITIZE_PHASE_PLAN``. Both are read on every request.

Airflow imports this file in every component (scheduler, workers, DAG processor): nothing is
imported here beyond ``AirflowPlugin``. FastAPI and ``pipeline`` are imported only when the API
server asks for ``fastapi_apps``.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from airflow.plugins_manager import AirflowPlugin

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

    from pipeline.config import Settings

URL_PREFIX = "/digitize"
URL_ROUTE = "tien-do-so-hoa"  # the page inside the UI: /plugin/tien-do-so-hoa
# Short enough for the UI's left bar (measured in Chromium: "Tiến độ" takes 34 of its 56 px);
# the app keeps the full name where there is room (the plugins list, the page's title).
MENU_NAME = "Tiến độ"
APP_NAME = "Tiến độ số hóa"
WAREHOUSE_CONN_ID = "digitize_warehouse"  # as dags/digitize_common.py


def warehouse_settings() -> Settings:
    """The settings the DAGs' tasks get: the warehouse from the ``digitize_warehouse`` connection."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from pipeline.config import settings_for_connection

    try:
        conn = Connection.get(WAREHOUSE_CONN_ID)
    except AirflowNotFoundException:
        conn = None
    return settings_for_connection(conn)


def login_url(request: Request) -> str:
    """Airflow's login (whichever auth manager), coming back to the page asked for."""
    from urllib.parse import urlencode

    from airflow.api_fastapi.app import API_ROOT_PATH

    return f"{API_ROOT_PATH}api/v2/auth/login?{urlencode({'next': str(request.url)})}"


@cache
def dashboard_app() -> FastAPI:
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends

    from pipeline.reporting.dashboard import create_app

    return create_app(warehouse_settings, dependencies=[Depends(get_user)], login_url=login_url)


class DigitizeProgressPlugin(AirflowPlugin):
    name = "digitize_progress"
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
        return [{"app": dashboard_app(), "url_prefix": URL_PREFIX, "name": APP_NAME}]
