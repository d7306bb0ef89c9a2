"""The /stats picture: sign-ups per day over the last 30 days, drawn with Pillow."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw

WIDTH, HEIGHT = 640, 240
MARGIN = 24
BAR = (56, 118, 217)
AXIS = (160, 160, 160)


def signups_png(counts: Sequence[int]) -> bytes:
    """A bar per day, the tallest reaching the top; today is the last bar."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    top, bottom = MARGIN, HEIGHT - MARGIN
    draw.line([(MARGIN, bottom), (WIDTH - MARGIN, bottom)], fill=AXIS, width=1)
    peak = max(counts, default=0)
    if counts:
        slot = (WIDTH - 2 * MARGIN) / len(counts)
        for n, count in enumerate(counts):
            if not count:
                continue
            height = (bottom - top) * count / peak
            left = MARGIN + n * slot + slot * 0.15
            draw.rectangle([(left, bottom - height), (left + slot * 0.7, bottom - 1)], fill=BAR)
    draw.text((MARGIN, 4), f"max {peak}", fill=AXIS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
