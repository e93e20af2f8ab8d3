"""Pictures of the stimulus library loaded for composing: sprites, backgrounds and rendered words.

Sprites are loaded lazily, cropped to their opaque box, reduced once to at most ``max_side`` pixels
and kept premultiplied (PIL's ``RGBa``) in a small least-recently-used cache, so that resizing them
for a scene gives no colour fringes. Backgrounds are kept reduced to a given shorter side. Words
are drawn with the library's font (DejaVu Sans Bold), plain or on a sign plate.
"""
from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache

import numpy as np

from brainit_core.errors import DataFormatError

WORDS = ("STOP", "EXIT", "OPEN", "CLOSED", "CAFE", "HOTEL", "BUS", "TAXI", "PARK", "SALE", "BAKERY", "BANK",
         "POLICE", "SCHOOL", "MARKET", "PIZZA", "BOOKS", "MUSEUM", "STATION", "PHARMACY", "TICKETS", "GARAGE",
         "THEATRE", "library", "welcome", "garden", "coffee", "music", "river", "summer", "travel", "kitchen",
         "morning", "hello", "friends", "water", "bread", "north", "south", "street", "house", "light")
"""Words drawn as word/sign objects (upper case on signs and shop fronts, lower case as plain text)."""


@lru_cache(maxsize=64)
def _font(path: str | None, size: int):
    from PIL import ImageFont

    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size)


def render_word(text: str, height: int, colour, plate=None, font_path=None) -> np.ndarray:
    """A word as a premultiplied RGBa sprite.

    Parameters
    ----------
    text : str
    height : int
        Letter height in pixels (the font size).
    colour : tuple of 3 int
        The letters' colour.
    plate : tuple of 3 int, optional
        A sign plate's colour behind the letters (the plate is part of the object); none: letters only.
    font_path : str or Path, optional
        A TrueType font; default: Pillow's built-in font.

    Returns
    -------
    numpy.ndarray
        uint8 (h, w, 4), premultiplied by alpha.
    """
    from PIL import Image, ImageDraw

    font = _font(str(font_path) if font_path else None, max(6, int(height)))
    x0, y0, x1, y1 = font.getbbox(text)
    pad = max(2, int(height * 0.3)) if plate is not None else 1
    w, h = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(im)
    if plate is not None:
        draw.rounded_rectangle([0, 0, w - 1, h - 1], radius=max(1, h // 6), fill=tuple(plate) + (255,))
    draw.text((pad - x0, pad - y0), text, font=font, fill=tuple(colour) + (255,))
    return np.asarray(im.convert("RGBa"))


class SpriteCache:
    """Sprites and backgrounds of a :class:`~brainit_core.data.twin.library.LibraryIndex`, loaded lazily.

    Parameters
    ----------
    library : LibraryIndex
    max_items : int
        Sprites kept (least recently used ones are dropped).
    max_side : int
        Longest side a sprite is reduced to when loaded (pixels).
    """

    def __init__(self, library, max_items: int = 384, max_side: int = 256):
        self.library, self.max_items, self.max_side = library, int(max_items), int(max_side)
        self._sprites: OrderedDict = OrderedDict()
        self._backgrounds: dict = {}
        self.loads = 0

    def sprite(self, item_id: int) -> np.ndarray:
        """Item ``item_id`` cropped to its opaque box: uint8 (h, w, 4) premultiplied RGBa, longest side <= ``max_side``."""
        if item_id in self._sprites:
            self._sprites.move_to_end(item_id)
            return self._sprites[item_id]
        from PIL import Image

        item = self.library.items[item_id]
        path = self.library.path(item)
        try:
            with Image.open(path) as im:
                im = im.convert("RGBA").crop(tuple(item["box"]))
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataFormatError(f"{path}: cannot read this picture of the stimulus library ({exc}); it was "
                                  "readable when the library was indexed: reinstall its package") from exc
        scale = self.max_side / max(im.size)
        im = im.convert("RGBa")
        if scale < 1:
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BILINEAR)
        arr = np.asarray(im)
        self._sprites[item_id] = arr
        self.loads += 1
        if len(self._sprites) > self.max_items:
            self._sprites.popitem(last=False)
        return arr

    def background(self, bg_id: int, short_side: int) -> np.ndarray:
        """Background ``bg_id`` as uint8 (h, w, 3) with its shorter side reduced to ``short_side`` (kept once)."""
        key = (bg_id, int(short_side))
        if key not in self._backgrounds:
            from PIL import Image

            entry = self.library.backgrounds[bg_id]
            path = self.library.path(entry)
            try:
                with Image.open(path) as im:
                    if im.format == "JPEG":
                        im.draft("RGB", (short_side * im.width // min(im.size), short_side * im.height // min(im.size)))
                    im = im.convert("RGB")
            except (OSError, SyntaxError, ValueError) as exc:
                raise DataFormatError(f"{path}: cannot read this background of the stimulus library ({exc}); "
                                      "reinstall its package") from exc
            scale = short_side / min(im.size)
            im = im.resize((max(short_side, round(im.width * scale)), max(short_side, round(im.height * scale))),
                           Image.BILINEAR)
            self._backgrounds[key] = np.asarray(im)
        return self._backgrounds[key]
