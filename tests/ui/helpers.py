"""Helpers the page tests share: open the app on a page (``streamlit.testing.v1.AppTest``) and read what
it shows."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py"))
TIMEOUT = 120


def open_app(page: str | None = None):
    """Run ``app.py`` (the frame and its sidebar) and switch to ``page``, as a user would."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    return at


def errors(at) -> list[str]:
    return [e.value for e in at.exception] + [e.value for e in at.error]


def button(at, label: str):
    hits = [b for b in at.button if b.label == label]
    assert hits, f"no button {label!r}; buttons: {[b.label for b in at.button]}"
    return hits[0]


def captions(at) -> list[str]:
    """Every image caption, in order."""
    return [c for im in at.image for c in im.captions]


def texts(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.success]
    parts += [e.value for e in at.error] + [i.value for i in at.info] + [w.value for w in at.warning]
    parts += captions(at)
    return "\n".join(str(p) for p in parts)
