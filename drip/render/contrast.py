"""Contrast of an email's text against its background, as WCAG 2 measures it.

The email is read after CSS inlining, so every colour that applies sits in a `style`
attribute (or a `bgcolor`/`color` attribute of old-style markup). Each run of visible text
gets the colour of its nearest element that sets one and the background of its nearest
element that paints one, with alpha composited onto what lies below; the canvas and the
link colour are the browser's defaults for the mode. Text over a background image, or in
a colour this module cannot read, is left out rather than guessed.

WCAG 2.x: relative luminance L = 0.2126 R + 0.7152 G + 0.0722 B of the linearised sRGB
channels, contrast (L1 + 0.05) / (L2 + 0.05); level AA asks 4.5:1 for body text and 3:1
for large text (24 px, or 18.66 px bold).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

#: An RGBA colour, channels 0-255 and alpha 0-1.
Rgba = tuple[float, float, float, float]

#: WCAG AA minimum contrast for body text and for large text.
AA_BODY, AA_LARGE = 4.5, 3.0

#: Large text: 24 px, or 18.66 px (14 pt) when bold.
LARGE_PX, LARGE_BOLD_PX = 24.0, 18.66

#: What Chromium paints when a page sets nothing, per mode: canvas, text, link.
DEFAULTS: dict[str, tuple[Rgba, Rgba, Rgba]] = {
    "light": ((255, 255, 255, 1.0), (0, 0, 0, 1.0), (0, 0, 238, 1.0)),
    "dark": ((18, 18, 18, 1.0), (255, 255, 255, 1.0), (158, 158, 255, 1.0)),
}

#: CSS named colours that emails use; any other name is not read (and not guessed).
NAMED: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "silver": (192, 192, 192),
    "red": (255, 0, 0),
    "maroon": (128, 0, 0),
    "yellow": (255, 255, 0),
    "olive": (128, 128, 0),
    "lime": (0, 255, 0),
    "green": (0, 128, 0),
    "aqua": (0, 255, 255),
    "teal": (0, 128, 128),
    "blue": (0, 0, 255),
    "navy": (0, 0, 128),
    "fuchsia": (255, 0, 255),
    "purple": (128, 0, 128),
    "orange": (255, 165, 0),
    "lightgray": (211, 211, 211),
    "lightgrey": (211, 211, 211),
    "darkgray": (169, 169, 169),
    "darkgrey": (169, 169, 169),
    "whitesmoke": (245, 245, 245),
}

_HEX = re.compile(r"#([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})\b")
_RGB = re.compile(r"rgba?\(\s*([^)]*)\)")
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_HIDDEN_TAGS = frozenset({"head", "title", "style", "script", "template", "noscript"})
_BOLD_TAGS = frozenset({"b", "strong", "th", "h1", "h2", "h3", "h4", "h5", "h6"})
_HEADING_EM = {"h1": 2.0, "h2": 1.5, "h3": 1.17, "h4": 1.0, "h5": 0.83, "h6": 0.67}


def parse_color(value: str) -> Rgba | None:
    """The colour a CSS value names (hex, rgb(), rgba(), a common name, transparent), or None."""
    value = value.strip().lower()
    if value == "transparent":
        return (0, 0, 0, 0.0)
    if value in NAMED:
        return (*NAMED[value], 1.0)
    hexed = _HEX.fullmatch(value)
    if hexed:
        digits = hexed.group(1)
        if len(digits) in (3, 4):
            digits = "".join(c * 2 for c in digits)
        channels = [int(digits[i : i + 2], 16) for i in range(0, len(digits), 2)]
        alpha = channels[3] / 255 if len(channels) == 4 else 1.0
        return (channels[0], channels[1], channels[2], alpha)
    rgb = _RGB.fullmatch(value)
    if rgb:
        parts = [p for p in re.split(r"[\s,/]+", rgb.group(1)) if p]
        try:
            numbers = [
                float(p[:-1]) * (2.55 if i < 3 else 0.01) if p.endswith("%") else float(p)
                for i, p in enumerate(parts)
            ]
        except ValueError:
            return None
        if len(numbers) == 3:
            numbers.append(1.0)
        if len(numbers) == 4:
            r, g, b, a = numbers
            return (r, g, b, a)
    return None


def composite(top: Rgba, below: Rgba) -> Rgba:
    """`top` painted over the opaque colour `below`."""
    alpha = top[3]
    return (
        top[0] * alpha + below[0] * (1 - alpha),
        top[1] * alpha + below[1] * (1 - alpha),
        top[2] * alpha + below[2] * (1 - alpha),
        1.0,
    )


def relative_luminance(color: Rgba) -> float:
    """WCAG 2 relative luminance of an opaque sRGB colour."""

    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in color[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(first: Rgba, second: Rgba) -> float:
    """WCAG 2 contrast ratio of two opaque colours, from 1 to 21."""
    a, b = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def hex_of(color: Rgba) -> str:
    """`#rrggbb` of an opaque colour."""
    return "#" + "".join(f"{round(c):02x}" for c in color[:3])


@dataclass(frozen=True)
class TextRun:
    """Visible text with the colours it is painted in and whether it is large text."""

    text: str
    color: Rgba
    background: Rgba
    large: bool

    @property
    def ratio(self) -> float:
        """Its contrast against its background."""
        return contrast_ratio(self.color, self.background)

    @property
    def required(self) -> float:
        """The contrast WCAG AA asks of it."""
        return AA_LARGE if self.large else AA_BODY


def text_runs(html: str, *, mode: str = "light") -> list[TextRun]:
    """Every run of visible text in inlined `html` with its colours, as `mode` paints them;
    text over a background image or in an unreadable colour is left out."""
    canvas, text, link = DEFAULTS[mode]
    reader = _Reader(canvas=canvas, text=text, link=link)
    reader.feed(html)
    reader.close()
    return reader.runs


def low_contrast(html: str, *, mode: str = "light") -> list[TextRun]:
    """The runs of `text_runs` below WCAG AA, one per distinct colour pair and size."""
    seen: set[tuple[str, str, bool]] = set()
    found = []
    for run in text_runs(html, mode=mode):
        key = (hex_of(run.color), hex_of(run.background), run.large)
        if run.ratio + 1e-9 < run.required and key not in seen:
            seen.add(key)
            found.append(run)
    return found


@dataclass(frozen=True)
class _Box:
    tag: str
    color: Rgba | None  # None: not readable, its text is skipped
    background: Rgba | None  # None: an image or unreadable: text on it is skipped
    size: float
    bold: bool
    hidden: bool


def _declarations(style: str) -> dict[str, str]:
    found: dict[str, str] = {}
    important: set[str] = set()
    for part in style.split(";"):
        name, sep, value = part.partition(":")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip()
        is_important = value.lower().endswith("!important")
        value = re.sub(r"\s*!important$", "", value, flags=re.IGNORECASE)
        if name in important and not is_important:
            continue
        found[name] = value
        if is_important:
            important.add(name)
    return found


def _font_size(value: str, parent: float) -> float:
    match = re.fullmatch(r"([\d.]+)\s*(px|pt|em|rem|%)?", value.strip().lower())
    if not match:
        return parent
    number, unit = float(match.group(1)), match.group(2) or "px"
    return {"px": number, "pt": number * 4 / 3, "em": number * parent, "rem": number * 16}.get(
        unit, number * parent / 100
    )


class _Reader(HTMLParser):
    def __init__(self, *, canvas: Rgba, text: Rgba, link: Rgba) -> None:
        super().__init__(convert_charrefs=True)
        self.link = link
        self.stack = [_Box("#root", text, canvas, 16.0, False, False)]
        self.runs: list[TextRun] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        parent = self.stack[-1]
        attributes = {name: value or "" for name, value in attrs}
        style = _declarations(attributes.get("style", ""))
        color, background = parent.color, parent.background
        if tag == "a":
            color = self.link
        if "color" in attributes and tag == "font":
            color = parse_color(attributes["color"])
        if "bgcolor" in attributes:
            background = self._paint(parse_color(attributes["bgcolor"]), background)
        if "color" in style:
            color = parse_color(style["color"])
        if "background-image" in style and "url(" in style["background-image"]:
            background = None
        if "background" in style:
            background = (
                None
                if "url(" in style["background"]
                else self._paint(self._first_color(style["background"]), background)
            )
        if "background-color" in style:
            background = self._paint(parse_color(style["background-color"]), background)
        size = parent.size * _HEADING_EM.get(tag, 1.0)
        if "font-size" in style:
            size = _font_size(style["font-size"], parent.size)
        bold = parent.bold or tag in _BOLD_TAGS
        if "font-weight" in style:
            weight = style["font-weight"].lower()
            bold = weight in ("bold", "bolder") or (weight.isdigit() and int(weight) >= 700)
        hidden = (
            parent.hidden
            or tag in _HIDDEN_TAGS
            or "hidden" in attributes
            or style.get("display", "").lower() == "none"
            or style.get("visibility", "").lower() == "hidden"
            or style.get("opacity", "").strip() in ("0", "0.0")
            or re.fullmatch(r"0(px|pt|em|%)?", style.get("max-height", "x").strip()) is not None
            or size <= 1
        )
        self.stack.append(_Box(tag, color, background, size, bold, hidden))

    @staticmethod
    def _paint(color: Rgba | None, below: Rgba | None) -> Rgba | None:
        if color is None or below is None:
            return None
        return composite(color, below) if color[3] < 1 else color

    @staticmethod
    def _first_color(shorthand: str) -> Rgba | None:
        for token in re.findall(r"rgba?\([^)]*\)|#[0-9a-fA-F]+|[a-zA-Z]+", shorthand):
            color = parse_color(token)
            if color is not None:
                return color
        return None

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        box = self.stack[-1]
        words = " ".join(data.split())
        if not words or box.hidden or box.color is None or box.background is None:
            return
        large = box.size >= LARGE_PX or (box.bold and box.size >= LARGE_BOLD_PX)
        color = composite(box.color, box.background) if box.color[3] < 1 else box.color
        self.runs.append(TextRun(words, color, box.background, large))
