"""Server-side SVG charts (the operator console shows them; no chart script in the browser)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

SERIES = (
    ("signups", "#9db4d9", "sign-ups"),
    ("referred", "#2f6fd6", "referred"),
    ("qualified", "#1f9d55", "qualified"),
)


def daily_svg(days: Sequence[dict[str, object]], *, width: int = 720, height: int = 260) -> str:
    """Grouped bars per day (sign-ups, referred, qualified), oldest first; presentation
    attributes only, so the page's CSP (no inline style) holds."""
    left, right, top, bottom = 36, 12, 28, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([int(day[key]) for day in days for key, _, _ in SERIES] + [1])  # type: ignore[call-overload]
    slot = plot_w / max(len(days), 1)
    bar = slot / (len(SERIES) + 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="sign-ups per day" '
        'id="daily-chart">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
        'stroke="#b8c0cc"/>',
        f'<text x="4" y="{top + 4}" font-size="11" fill="#6b7686">{peak}</text>',
        f'<text x="4" y="{top + plot_h}" font-size="11" fill="#6b7686">0</text>',
    ]
    for n, day in enumerate(days):
        x0 = left + n * slot + bar / 2
        for k, (key, colour, label) in enumerate(SERIES):
            value = int(day[key])  # type: ignore[call-overload]
            h = plot_h * value / peak
            parts.append(
                f'<rect x="{x0 + k * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(str(day["date"]))}: '
                f"{value} {label}</title></rect>"
            )
        last = len(days) - 1
        if (n % 7 == 0 and last - n >= 3) or n == last:  # a label a week, and today's
            parts.append(
                f'<text x="{x0:.1f}" y="{height - 8}" font-size="10" fill="#6b7686">'
                f"{escape(str(day['date'])[5:])}</text>"
            )
    for k, (_, colour, label) in enumerate(SERIES):
        x = left + k * 110
        parts.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="15" font-size="11" fill="#1d2430">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


FUNNEL = (
    ("link_opens", "#9db4d9", "link opens"),
    ("signups", "#2f6fd6", "sign-ups"),
    ("qualified", "#1f9d55", "qualified"),
    ("rewarded", "#c27c0e", "rewarded"),
)


def funnel_svg(funnel: dict[str, object], *, width: int = 720, height: int = 200) -> str:
    """A campaign's funnel as horizontal bars, widest first (CSP-safe as `daily_svg`)."""
    left, right, top, row = 110, 60, 10, 44
    plot_w = width - left - right
    peak = max([int(funnel[key]) for key, _, _ in FUNNEL] + [1])  # type: ignore[call-overload]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="the campaign\'s funnel" '
        'id="funnel-chart">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for n, (key, colour, label) in enumerate(FUNNEL):
        value = int(funnel[key])  # type: ignore[call-overload]
        y = top + n * row
        w = plot_w * value / peak
        parts.append(f'<text x="4" y="{y + 22}" font-size="13" fill="#1d2430">{label}</text>')
        parts.append(
            f'<rect x="{left}" y="{y + 6}" width="{w:.1f}" height="26" fill="{colour}">'
            f"<title>{value} {label}</title></rect>"
        )
        parts.append(
            f'<text x="{left + w + 6:.1f}" y="{y + 24}" font-size="13" '
            f'fill="#1d2430">{value}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
