"""``kefu users add`` and ``kefu report``: the console's users, and the manager report as a file."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from contextlib import closing
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Protocol

from bot import conversations as conv_store
from console.auth import AuthError, add_user
from kb.hours import day_start
from reviews.exports import write_report
from reviews.reports import ReportFilter, compute_report
from storage.db import OpenDatabase


class ConsoleSettings(Protocol):
    """The settings the console commands read."""

    @property
    def db(self) -> str: ...
    @property
    def sla_response(self) -> float: ...
    @property
    def sla_resolution(self) -> float: ...


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser], open_database: OpenDatabase) -> None:
    """Add ``kefu report`` and ``kefu users add``."""
    report = commands.add_parser("report", help="write the manager report as html, xlsx or csv")
    report.add_argument("--since", required=True, help="first day, YYYY-MM-DD (China time)")
    report.add_argument("--until", required=True, help="last day, YYYY-MM-DD (included)")
    report.add_argument("--format", choices=["html", "xlsx", "csv"], default="html")
    report.add_argument("--out", type=Path, required=True)
    report.add_argument("--sku", help="only this product")
    report.add_argument("--category", help="only this category")
    report.set_defaults(func=partial(write_manager_report, open_database=open_database))
    users = commands.add_parser("users", help="console users").add_subparsers(dest="users_command", required=True)
    u_add = users.add_parser("add", help="create or update a console user (password: KEFU_NEW_PASSWORD or prompt)")
    u_add.add_argument("username")
    u_add.add_argument("--role", choices=["agent", "manager"], default="agent")
    u_add.set_defaults(func=partial(add_console_user, open_database=open_database))


def add_console_user(settings: ConsoleSettings, args: argparse.Namespace, *, open_database: OpenDatabase) -> int:
    """Create or update a console user; the password comes from KEFU_NEW_PASSWORD or a prompt."""
    password = os.environ.get("KEFU_NEW_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    with closing(open_database(settings.db)) as db:
        try:
            add_user(db, args.username, password, args.role, time.time())
        except AuthError as exc:
            print(f"kefu: {exc}", file=sys.stderr)
            return 2
    print(f"user {args.username} ({args.role}) saved")
    return 0


def write_manager_report(settings: ConsoleSettings, args: argparse.Namespace, *, open_database: OpenDatabase) -> int:
    """Write the report on the shop days --since to --until (China time) as html, xlsx or csv."""
    try:
        since = date.fromisoformat(args.since)
        until = date.fromisoformat(args.until)
    except ValueError:
        print("kefu: --since and --until take dates as YYYY-MM-DD", file=sys.stderr)
        return 2
    if until < since:
        print("kefu: --until is before --since", file=sys.stderr)
        return 2
    flt = ReportFilter(day_start(since), day_start(until + timedelta(days=1)), args.sku, args.category)
    with closing(open_database(settings.db)) as db:
        report = compute_report(
            db,
            flt,
            response_sla=settings.sla_response,
            resolution_sla=settings.sla_resolution,
            now=time.time(),
            service=conv_store.service_figures,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_report(report, args.format, args.out)
    print(
        f"wrote {args.out} ({args.format}, {report.summary['reviews']} reviews, {report.service['conversations']} conversations)"
    )
    return 0
