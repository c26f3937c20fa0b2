"""Small inline SVG charts, so the dashboard and the mailed HTML report need no script or CDN."""

from __future__ import annotations

from html import escape


def line_chart(points: list[tuple[str, float | None]], *, title: str, width: int = 640, height: int = 220) -> str:
    """A line over labelled points with values from 0 to 1 (rates), drawn as percentages."""
    pad_l, pad_r, pad_t, pad_b = 44, 12, 28, 36
    inner_w, inner_h = width - pad_l - pad_r, height - pad_t - pad_b
    values = [(label, v) for label, v in points if v is not None]
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<text x="{pad_l}" y="18" font-size="14" font-weight="600">{escape(title)}</text>',
    ]
    for tick in (0.0, 0.5, 1.0):
        y = pad_t + inner_h * (1 - tick)
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7eb"/>')
        parts.append(f'<text x="{pad_l - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{tick:.0%}</text>')
    if values:
        step = inner_w / max(1, len(values) - 1)
        coords = [(pad_l + i * step, pad_t + inner_h * (1 - v)) for i, (_, v) in enumerate(values)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline fill="none" stroke="#07c160" stroke-width="2" points="{path}"/>')
        for (x, y), (label, v) in zip(coords, values, strict=True):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#07c160"><title>{escape(label)} {v:.1%}</title></circle>'
            )
        for i in sorted({0, len(values) // 2, len(values) - 1}):
            x = coords[i][0]
            parts.append(f'<text x="{x:.1f}" y="{height - 12}" font-size="11" text-anchor="middle">{escape(values[i][0])}</text>')
    else:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" font-size="13">暂无数据</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(bars: list[tuple[str, float]], *, title: str, width: int = 640, percent: bool = True) -> str:
    """Horizontal bars, one per label."""
    row_h, pad_l, pad_t = 24, 120, 28
    height = pad_t + row_h * max(1, len(bars)) + 10
    top = max((v for _, v in bars), default=0) or 1
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<text x="4" y="18" font-size="14" font-weight="600">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(bars):
        y = pad_t + i * row_h
        w = (width - pad_l - 70) * value / top
        text = f"{value:.0%}" if percent else f"{value:g}"
        parts.append(f'<text x="{pad_l - 6}" y="{y + 15}" font-size="12" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{pad_l}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="#07c160" rx="2"/>')
        parts.append(f'<text x="{pad_l + w + 6:.1f}" y="{y + 15}" font-size="12">{text}</text>')
    if not bars:
        parts.append(f'<text x="{width / 2}" y="{pad_t + 16}" text-anchor="middle" font-size="13">暂无数据</text>')
    parts.append("</svg>")
    return "".join(parts)
