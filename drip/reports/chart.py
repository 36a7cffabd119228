"""A funnel as a server-rendered SVG bar chart: no JavaScript, readable in any browser."""

from __future__ import annotations

from html import escape

from drip.reports.funnel import StepFunnel

#: The bars drawn per step, with their colours (chosen to stay distinct for colour-blind readers).
SERIES = (
    ("sent", "#14213d"),
    ("delivered", "#3d6fb6"),
    ("opened", "#f4a259"),
    ("clicked", "#5b8e7d"),
    ("human_clicks", "#8e3b6f"),
)

BAR, GAP, LEFT, TOP, WIDTH = 9, 14, 230, 36, 520


def funnel_svg(steps: list[StepFunnel], *, title: str) -> str:
    """An SVG with one group of horizontal bars per step, scaled to the largest count."""
    peak = max([s.counts[name] for s in steps for name, _ in SERIES] + [1])
    group = BAR * len(SERIES) + GAP
    height = TOP + group * len(steps) + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{LEFT + WIDTH + 60}" '
        f'height="{height}" aria-label="{escape(title)}" '
        'font-family="Arial, sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (name, colour) in enumerate(SERIES):
        parts.append(
            f'<rect x="{LEFT + i * 110}" y="8" width="10" height="10" fill="{colour}"/>'
            f'<text x="{LEFT + i * 110 + 14}" y="17">{name}</text>'
        )
    for row, step in enumerate(steps):
        y = TOP + row * group
        parts.append(
            f'<text x="{LEFT - 8}" y="{y + group / 2}" text-anchor="end">{escape(step.step)}</text>'
        )
        for i, (name, colour) in enumerate(SERIES):
            value = step.counts[name]
            width = round(WIDTH * value / peak, 1)
            parts.append(
                f'<rect x="{LEFT}" y="{y + i * BAR}" width="{width}" height="{BAR - 1}" '
                f'fill="{colour}"><title>{escape(step.step)}: {value} {name}</title></rect>'
                f'<text x="{LEFT + width + 4}" y="{y + i * BAR + BAR - 1}" '
                f'font-size="9">{value}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
