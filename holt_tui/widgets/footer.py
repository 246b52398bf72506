"""``KeyFooter``: Textual's ``Footer``, recomposed only when the keys it shows change.

The stock footer recomposes (unmounts and mounts every key: a layout pass, which repaints the whole screen)
whenever bindings may have changed, and the app refreshes bindings on every cursor move. With 1,000 events a
second arriving, that full repaint per key press was most of a key's latency (issue 14).
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer


class KeyFooter(Footer):
    _shown: tuple[Any, ...] | None = None

    def bindings_changed(self, screen: Screen[Any]) -> None:
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            shown = tuple((key, id(b.node), b.binding, b.enabled, b.tooltip)
                          for key, b in screen.active_bindings.items())
            if shown == self._shown:
                self._bindings_ready = True
                return
            self._shown = shown
        super().bindings_changed(screen)
