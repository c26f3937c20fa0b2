"""The managers' dashboard and its downloads: the reports read on the runner's read pool, never the writer."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web

from bot import conversations as conv_store
from console.app import render, require_manager
from kb import store as kb_store
from kb.hours import CHINA, day_start
from reviews.exports import render_html, write_report
from reviews.reports import Report, ReportFilter, compute_report
from storage.db import DbRunner

CONTENT_TYPES = {
    "html": "text/html",
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass
class Dashboard:
    """What the report views need."""

    runner: DbRunner
    clock: Callable[[], float]
    response_sla: float
    resolution_sla: float


DASHBOARD = web.AppKey("dashboard", Dashboard)
EARLIEST = date(2000, 1, 1)
LATEST = date(2099, 12, 31)


def _filter(request: web.Request, now: float) -> tuple[ReportFilter, dict[str, str]]:
    today = datetime.fromtimestamp(now, CHINA).date()
    try:
        since = date.fromisoformat(request.query.get("since") or (today - timedelta(days=29)).isoformat())
        until = date.fromisoformat(request.query.get("until") or today.isoformat())
    except ValueError:
        raise web.HTTPBadRequest(text="日期格式应为 YYYY-MM-DD") from None
    if until < since:
        raise web.HTTPBadRequest(text="结束日期早于开始日期")
    # Unix seconds (and the charts' axis) cover these years; 0001-01-01 or 9999-12-31 is a typo.
    if since < EARLIEST or until > LATEST:
        raise web.HTTPBadRequest(text=f"日期应在 {EARLIEST.isoformat()} 与 {LATEST.isoformat()} 之间")
    sku = request.query.get("sku") or None
    category = request.query.get("category") or None
    params = {"since": since.isoformat(), "until": until.isoformat(), "sku": sku or "", "category": category or ""}
    return ReportFilter(day_start(since), day_start(until + timedelta(days=1)), sku, category), params


async def _report(dash: Dashboard, flt: ReportFilter, now: float) -> Report:
    """The report for the filter, on a read connection (a 1M-review report takes seconds)."""
    return await dash.runner.read(
        compute_report,
        flt,
        response_sla=dash.response_sla,
        resolution_sla=dash.resolution_sla,
        now=now,
        service=conv_store.service_figures,
    )


async def dashboard_view(request: web.Request) -> web.Response:
    """Charts and tables for the chosen range, product and category."""
    require_manager(request)
    dash = request.app[DASHBOARD]
    now = dash.clock()
    flt, params = _filter(request, now)
    report = await _report(dash, flt, now)
    products = await dash.runner.read(kb_store.all_products)
    return render(
        request,
        "dashboard.html",
        report_html=render_html(report, standalone=False),
        products=products,
        categories=sorted({p.category for p in products}),
        query=urlencode(params),
        since=params["since"],
        until=params["until"],
        sku=params["sku"],
        category=params["category"],
    )


async def export_view(request: web.Request) -> web.StreamResponse:
    """The same report as a file."""
    require_manager(request)
    dash = request.app[DASHBOARD]
    fmt = request.query.get("format", "html")
    if fmt not in CONTENT_TYPES:
        raise web.HTTPBadRequest(text="format 应为 html、xlsx 或 csv")
    now = dash.clock()
    flt, params = _filter(request, now)
    report = await _report(dash, flt, now)
    body = await asyncio.to_thread(_report_file, report, fmt)  # writing the file blocks: off the event loop
    filename = f"kefu-report-{params['since']}-{params['until']}.{fmt}"
    return web.Response(
        body=body,
        content_type=CONTENT_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _report_file(report: Report, fmt: str) -> bytes:
    """The report written as a file of ``fmt``, as bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"report.{fmt}"
        write_report(report, fmt, path)
        return path.read_bytes()


def add_report_routes(app: web.Application) -> None:
    """Register the dashboard."""
    app.router.add_get("/console/dashboard", dashboard_view)
    app.router.add_get("/console/dashboard/export", export_view)
