"""The manager report as files: self-contained HTML (charts inline), XLSX (a sheet per section), CSV."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from kb.hours import CHINA
from reviews.charts import bar_chart, line_chart
from reviews.reports import Report

SENTIMENT_NAMES = {"positive": "正面", "neutral": "中性", "negative": "负面"}


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.1%}"


def sections(report: Report) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(title, header, rows) for every section, in the order the files show them."""
    s, c, v = report.summary, report.cases, report.service
    return [
        (
            "概览",
            ["指标", "数值"],
            [
                ["评价数", s["reviews"]],
                ["平均星级", s["average_rating"]],
                ["好评率（4-5星）", s["good_rate"]],
                ["正面评价占比", s["positive_rate"]],
                ["近7天好评率", s["good_rate_last_7_days"]],
                ["前7天好评率", s["good_rate_previous_7_days"]],
                ["好评率变化", s["good_rate_trend"]],
            ],
        ),
        (
            "每日好评率",
            ["日期", "评价数", "好评率", "正面占比", "负面占比"],
            [[d["date"], d["reviews"], d["good_rate"], d["positive_rate"], d["negative_rate"]] for d in report.daily],
        ),
        (
            "每周好评率",
            ["周（周一）", "评价数", "好评率", "正面占比"],
            [[w["week_of"], w["reviews"], w["good_rate"], w["positive_rate"]] for w in report.weekly],
        ),
        (
            "情感分布",
            ["情感", "评价数", "占比"],
            [[SENTIMENT_NAMES[x["sentiment"]], x["reviews"], x["share"]] for x in report.sentiment],
        ),
        (
            "关键词",
            ["关键词", "提及评价数", "占比", "示例评价"],
            [[k["keyword"], k["reviews"], k["share"], k["example"]] for k in report.keywords],
        ),
        (
            "方面",
            ["方面", "提及评价数", "占比", "好评", "差评"],
            [[a["aspect"], a["reviews"], a["share"], a["positive"], a["negative"]] for a in report.aspects],
        ),
        (
            "商品",
            ["SKU", "商品", "评价数", "平均星级", "负面占比", "主要问题"],
            [
                [p["sku"], p["name"], p["reviews"], p["average_rating"], p["negative_share"], p["top_complaints"]]
                for p in report.products
            ],
        ),
        (
            "差评处理",
            ["指标", "数值"],
            [
                ["差评工单", c["cases"]],
                ["30分钟内响应", c["responded_within_30_min"]],
                ["24小时内解决", c["resolved_within_24_h"]],
                ["未结束", c["open"]],
                ["已超时", c["overdue"]],
                ["响应时间中位数（分钟）", c["median_minutes_to_response"]],
                ["解决时间中位数（小时）", c["median_hours_to_resolution"]],
            ],
        ),
        (
            "客服",
            ["指标", "数值"],
            [
                ["消息数", v["messages"]],
                ["会话数", v["conversations"]],
                ["机器人独立解决率", v["bot_resolution_rate"]],
                ["转人工率", v["handoff_rate"]],
                ["回复延迟 p50（毫秒）", v["reply_latency_p50_ms"]],
                ["回复延迟 p95（毫秒）", v["reply_latency_p95_ms"]],
                ["售前咨询数", v["presale_questions"]],
                ["售前15秒内回复占比", v["presale_within_15_s"]],
            ],
        ),
    ]


def period(report: Report) -> str:
    """The report's date range in China time."""
    start = datetime.fromtimestamp(report.filter.since, CHINA).strftime("%Y-%m-%d")
    end = datetime.fromtimestamp(report.filter.until - 1, CHINA).strftime("%Y-%m-%d")
    return f"{start} 至 {end}"


def charts(report: Report) -> dict[str, str]:
    """The SVG charts shown on the dashboard and in the HTML file."""
    return {
        "good_rate": line_chart([(d["date"][5:], d["good_rate"]) for d in report.daily], title="每日好评率（4-5星）"),
        "sentiment": bar_chart([(SENTIMENT_NAMES[x["sentiment"]], x["share"] or 0) for x in report.sentiment], title="情感分布"),
        "keywords": bar_chart([(k["keyword"], k["share"] or 0) for k in report.keywords[:10]], title="关键词提及率"),
    }


_env = jinja2.Environment(loader=jinja2.PackageLoader("reviews", "templates"), autoescape=jinja2.select_autoescape(["html"]))
_env.filters["pct"] = _pct


def render_html(report: Report, *, standalone: bool = True) -> str:
    """The report page; standalone adds the document shell and CSS so it can be mailed as one file."""
    return _env.get_template("report.html").render(
        r=report, period=period(report), charts=charts(report), standalone=standalone, names=SENTIMENT_NAMES
    )


def write_csv(report: Report, path: Path) -> None:
    """All sections one after another, each under its title (UTF-8 with BOM so Excel reads Chinese)."""
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["kefu 报表", period(report)])
        for title, header, rows in sections(report):
            writer.writerow([])
            writer.writerow([title])
            writer.writerow(header)
            writer.writerows(rows)


def write_xlsx(report: Report, path: Path) -> None:
    """One sheet per section (opens in Excel and WPS)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    for title, header, rows in sections(report):
        sheet = book.create_sheet(title)
        sheet.append(header)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append(row)
        for column, name in zip(sheet.columns, header, strict=False):
            width = max([len(str(name)) * 2, *(min(60, len(str(c.value or ""))) for c in column)])
            sheet.column_dimensions[column[0].column_letter].width = max(10, width)
    book.save(path)


def write_report(report: Report, fmt: str, path: Path) -> None:
    """Write the report as html, xlsx or csv."""
    if fmt == "html":
        path.write_text(render_html(report), encoding="utf-8")
    elif fmt == "xlsx":
        write_xlsx(report, path)
    elif fmt == "csv":
        write_csv(report, path)
    else:
        raise ValueError(f"unknown report format {fmt}")
