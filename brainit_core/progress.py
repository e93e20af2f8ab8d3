"""Progress reporting that works in the terminal (tqdm) and in the app (a callback).

Library code wraps long loops in :func:`track`; the CLI shows a tqdm bar, and the app installs a
handler with :func:`progress_handler` to drive ``st.progress`` without the core importing streamlit.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterable, Iterator, Optional, TypeVar

from brainit_core.distributed import is_main

T = TypeVar("T")

# handler(fraction in [0, 1], message)
Handler = Callable[[float, str], None]
_HANDLER: contextvars.ContextVar[Optional[Handler]] = contextvars.ContextVar("brainit_progress", default=None)


@contextlib.contextmanager
def progress_handler(handler: Handler):
    """Route every :func:`track` inside the block to ``handler(fraction, message)``."""
    token = _HANDLER.set(handler)
    try:
        yield
    finally:
        _HANDLER.reset(token)


def track(iterable: Iterable[T], desc: str = "", total: Optional[int] = None, disable: bool = False) -> Iterator[T]:
    """Iterate with progress: tqdm on a terminal, or the installed handler.

    Parameters
    ----------
    iterable : iterable
        What to iterate over.
    desc : str
        A short label (``"twin: sessions"``).
    total : int, optional
        Number of items when ``len(iterable)`` is not defined.
    disable : bool
        Silence the bar (the handler, if any, is still called).
    """
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    handler = _HANDLER.get()
    disable = disable or not is_main()  # one progress bar per job: rank 0's
    if handler is not None:
        n = 0
        for item in iterable:
            yield item
            n += 1
            handler(min(1.0, n / total) if total else 0.0, desc)
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=desc, total=total, disable=disable, dynamic_ncols=True)


def report(fraction: float, message: str = "") -> None:
    """Report progress of work that is not a simple loop (no-op without a handler)."""
    handler = _HANDLER.get()
    if handler is not None:
        handler(float(min(1.0, max(0.0, fraction))), message)
