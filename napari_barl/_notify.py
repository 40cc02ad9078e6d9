"""User-facing errors in the plugin: notifications and the one slot decorator.

Why one decorator: every slot (a click, a key) must turn a user's mistake
(:class:`~barl_core.errors.BarlError`) into a notification with its message, and a bug
into a logged traceback plus a short notification, so that no exception reaches Qt's
event loop. Two copies of that rule had drifted (one lost the ``MemoryError`` branch).
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable
from typing import Any

from barl_core.errors import BarlError

__all__ = ["notify", "guarded"]

log = logging.getLogger("napari_barl")


def notify(level: str, message: str) -> None:
    """Show ``message`` as a napari notification of ``level`` (info, warning, error)."""
    from napari.utils import notifications

    getattr(notifications, f"show_{level}")(message)


def guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a Qt slot (a method or a bound method) so that no exception escapes.

    A :class:`BarlError` is the user's to fix: its message is shown as is. Anything
    else is a bug: it is logged with its traceback and reported briefly. The slot then
    returns None.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except BarlError as exc:
            notify("error", str(exc))
        except MemoryError:
            notify("error", "out of memory: close other volumes or use a smaller patch size")
        except Exception as exc:  # noqa: BLE001 (the GUI must survive its own bugs)
            log.error("napari-barl: %s", traceback.format_exc())
            notify("error", f"napari-barl: unexpected {exc.__class__.__name__}: {exc}")
        return None

    return wrapper
