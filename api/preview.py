"""The link preview a messenger shows for `/r/{code}`: a PNG (messengers show no SVG previews)
with the referrer's name, the invitation and the code, in the visitor's language.

Drawn with Pillow in a worker thread (a few milliseconds of CPU off the event loop), in
Roboto, which a package ships with its Cyrillic, so it looks the same on any machine.
"""

from __future__ import annotations

import asyncio
import functools
import io

import font_roboto
from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1200, 630  # OpenGraph's recommended size
BACKGROUND = (243, 245, 249)
CARD = (255, 255, 255)
ACCENT = (47, 111, 214)
TEXT = (29, 36, 48)
MUTED = (74, 85, 102)


@functools.lru_cache(maxsize=8)
def _font(bold: bool, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_roboto.RobotoBold if bold else font_roboto.Roboto, size)


def _fit(draw: ImageDraw.ImageDraw, text: str, *, bold: bool, size: int, width: int) -> tuple:
    """The text at the largest size up to `size` that fits `width`, clipped when even the
    smallest does not."""
    while size > 28 and draw.textlength(text, font=_font(bold, size)) > width:
        size -= 4
    font = _font(bold, size)
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…"
    return text, font


def _draw(heading: str, name: str, invitation: str, code: str) -> bytes:
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle([(60, 60), (WIDTH - 60, HEIGHT - 60)], radius=32, fill=CARD)
    draw.rectangle([(60, 60), (84, HEIGHT - 60)], fill=ACCENT)
    inner = WIDTH - 260
    text, font = _fit(draw, heading, bold=False, size=44, width=inner)
    draw.text((130, 120), text, font=font, fill=MUTED)
    text, font = _fit(draw, name, bold=True, size=96, width=inner)
    draw.text((130, 190), text, font=font, fill=TEXT)
    text, font = _fit(draw, invitation, bold=False, size=44, width=inner)
    draw.text((130, 330), text, font=font, fill=MUTED)
    text, font = _fit(draw, code, bold=True, size=64, width=inner)
    draw.text((130, 420), text, font=font, fill=ACCENT)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


async def preview_png(*, heading: str, name: str, invitation: str, code: str) -> bytes:
    return await asyncio.to_thread(_draw, heading, name, invitation, code)
