"""``LineList``: a virtual, line-API list that renders only the rows on screen.

Rows are identified by a key; when the rows change, the cursor stays on the same key at the same place
on screen (a new row above it scrolls the view instead of moving the cursor). Every list filters with the
same syntax (``holt_tui.filtering``). Subclasses say how an item looks and what a filter sees of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from math import ceil
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.strip import Strip

from holt_tui.filtering import NO_FILTER, ListFilter, Subject
from holt_tui.messages import RowSelected

_PLAIN = Style()


def _styled(segments: Iterable[Segment]) -> list[Segment]:
    """Segments with a style each: rich leaves some unstyled (None), and Textual's NO_COLOR (monochrome) filter
    reads every segment's style."""
    return [seg if seg.style is not None else Segment(seg.text, _PLAIN, seg.control) for seg in segments]


def _thumb(size: int, virtual: float, window: float, position: float) -> tuple[int, int] | None:
    """Where Textual's scrollbar draws its thumb, in eighths of a cell (``ScrollBarRender.render_bar``'s
    arithmetic, for ``ScrollBar._render_bar``'s arguments): equal for two states, the bar looks the same."""
    virtual = ceil(virtual)
    window = ceil(window) if window < virtual else 0
    if not (window and size and virtual and size != virtual) or virtual == window:
        return None
    eighths = len(ScrollBarRender.VERTICAL_BARS)
    thumb = max(1, window / (virtual / size))
    start = int((size - thumb) * (position / (virtual - window)) * eighths)
    return start, start + ceil(thumb * eighths)


class LineList(ScrollView, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,j", "cursor_down", "Down", show=False, id="list.down"),
        Binding("up,k", "cursor_up", "Up", show=False, id="list.up"),
        Binding("home,g", "cursor_home", "Top", show=False, id="list.top"),
        Binding("end,G", "cursor_end", "Bottom", show=False, id="list.bottom"),
        Binding("pagedown,ctrl+f", "page_down", "Page down", show=False, id="list.page_down"),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False, id="list.page_up"),
    ]
    DEFAULT_CSS = """
    LineList { background: $surface; }
    LineList > .line-list--cursor { background: $accent 40%; }
    LineList:focus > .line-list--cursor { background: $accent; color: $text; text-style: bold; }
    LineList > .line-list--empty { color: $text-muted; text-style: italic; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"line-list--cursor", "line-list--empty"}

    has_cursor = True
    empty_text = "nothing to show"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.items: Sequence[Any] = []
        self.cursor = 0
        self.filter: ListFilter = NO_FILTER
        self._all: Sequence[Any] = []
        # Strips by (row key, selected, scroll x): a row keeps its strip when rows move around it.
        self._cache: dict[tuple[str, bool, int, int], Strip] = {}
        # What each line on screen was last drawn from (its strip's cache key; None = blank): a change of rows
        # repaints only the lines whose key differs, and a view that only shifted is not repainted at all.
        self._drawn: dict[int, tuple[str, bool, int, int] | None] = {}
        self._width = 0

    # ---- subclass API --------------------------------------------------------------------------------
    def item_key(self, item: Any) -> str:
        return str(item)

    def item_cache_key(self, item: Any) -> str:
        """Identity plus anything that changes how the row looks (drawn rows are cached under it)."""
        return self.item_key(item)

    def item_text(self, item: Any, selected: bool) -> Text:
        return Text(str(item))

    def item_subject(self, item: Any) -> Subject:
        return Subject(text=self.item_text(item, False).plain)

    def content_width(self) -> int:
        return self._width

    # ---- data ------------------------------------------------------------------------------------------
    @property
    def current_key(self) -> str | None:
        if 0 <= self.cursor < len(self.items):
            return self.item_key(self.items[self.cursor])
        return None

    @property
    def current_item(self) -> Any:
        return self.items[self.cursor] if 0 <= self.cursor < len(self.items) else None

    def set_items(self, items: Sequence[Any], *, filtered: bool = False, invalidate: bool = True) -> None:
        """Replace the rows; the cursor keeps its key and its place on screen.

        ``invalidate=False`` keeps the drawn rows of unchanged keys (the caller knows their content is the same).
        """
        self._all = items
        if invalidate:
            self._cache.clear()
        shown = items if filtered or not self.filter.is_active else [i for i in items if self.filter.matches(
            self.item_subject(i))]
        self._replace(shown, repaint_all=invalidate)

    def set_filter(self, f: ListFilter) -> None:
        self.filter = f
        self.set_items(self._all)

    def invalidate(self) -> None:
        self._cache.clear()
        self.refresh()

    def refresh_changed(self) -> None:
        """Repaint only the lines on screen whose cache key (``item_cache_key``) changed since they were drawn."""
        if self.items:
            self._refresh_changed()
        else:
            self.refresh()

    def _replace(self, shown: Sequence[Any], *, repaint_all: bool = True) -> None:
        """``repaint_all=False``: repaint only the lines on screen that now show another row (or the same row drawn
        differently); when rows land above the cursor, the view shifts with it without a repaint."""
        old_item = self.current_item
        old_key = self.current_key
        screen_row = self.cursor - int(self.scroll_y)
        self.items = shown
        new_index: int | None = None
        if old_item is not None and isinstance(shown, list):
            # The same row object (or an equal tuple) is found by list.index in C: fast even for 100k rows.
            if self.cursor < len(shown) and shown[self.cursor] == old_item:
                new_index = self.cursor
            else:
                try:
                    new_index = shown.index(old_item)
                except ValueError:
                    new_index = None
        if new_index is None and old_key is not None:
            new_index = self._index_of(old_key)
        if new_index is None:
            new_index = min(self.cursor, max(len(shown) - 1, 0))
        moved = new_index != self.cursor
        self.cursor = new_index
        self._width = max(self._width, self.size.width)
        self._set_virtual_size(Size(self.content_width(), len(shown)))
        if repaint_all or not shown:
            if moved and self.has_cursor:
                self.scroll_to(y=max(new_index - screen_row, 0), animate=False, immediate=True)
            self.refresh()
            return
        if moved and self.has_cursor:
            self._scroll_quietly(max(new_index - screen_row, 0))
        self._refresh_changed()

    def _scroll_quietly(self, y: int) -> None:
        """Scroll to row ``y`` without repainting the view (``_refresh_changed`` repaints what differs): Textual's
        scroll repaints every line, and at 1,000 events/s rows land above the cursor every drain."""
        y = max(0, min(y, int(self.max_scroll_y)))
        if y == int(self.scroll_y):
            return
        self.set_reactive(LineList.scroll_y, float(y))
        self.set_reactive(LineList.scroll_target_y, float(y))
        self._sync_scrollbar()

    def _sync_scrollbar(self) -> None:
        """Give the vertical scrollbar the list's length and position; repaint it only when its thumb moves on
        screen. A repaint of the scrollbar composites its whole column, and at 100k rows the rows a drain adds
        or the view's shift over them rarely move the thumb by a visible step."""
        if not (self.show_vertical_scrollbar and self.styles.scrollbar_size_vertical):
            return
        bar = self.vertical_scrollbar
        virtual = self.virtual_size.height
        window = self.container_size.height - self.scrollbar_size_horizontal
        position = self.scroll_y
        height = bar.size.height
        if _thumb(height, virtual, window, position) == _thumb(height, bar.window_virtual_size, bar.window_size,
                                                               bar.position):
            bar.set_reactive(ScrollBar.window_virtual_size, virtual)
            bar.set_reactive(ScrollBar.window_size, window)
            bar.set_reactive(ScrollBar.position, position)
        else:
            bar.window_virtual_size = virtual
            bar.window_size = window
            bar.position = position
            bar.refresh()

    def _line_key(self, index: int, scroll_x: int, width: int) -> tuple[str, bool, int, int] | None:
        if index >= len(self.items):
            return None
        return self.item_cache_key(self.items[index]), self.has_cursor and index == self.cursor, scroll_x, width

    def _refresh_changed(self) -> None:
        """Repaint the lines on screen whose row (or its look) differs from what they were drawn from."""
        if not self._drawn:
            self.refresh()
            return
        scroll_x, top = self.scroll_offset
        width = max(self.virtual_size.width, self.size.width)
        drawn = self._drawn
        content_width, height = self.scrollable_content_region.size
        start = -1  # the first line of a run of changed lines (one refresh region per run)
        for y in range(height + 1):
            changed = y < height and drawn.get(y, 0) != self._line_key(top + y, scroll_x, content_width)
            if changed and start < 0:
                start = y
            elif not changed and start >= 0:
                self.refresh(Region(0, start, width, y - start))
                start = -1

    def _set_virtual_size(self, new: Size) -> None:
        """A longer or shorter list whose scrollbars stay as they are needs no layout pass: ``virtual_size`` is a
        layout reactive, and a layout pass repaints the whole screen (at 1,000 events/s it did so every drain)."""
        old = self.virtual_size
        if new == old:
            return
        height = self.scrollable_content_region.height
        if old.height and new.width == old.width and height and (new.height > height) == (old.height > height) \
                and self.scroll_y <= max(new.height - height, 0):  # the scroll position stays valid
            self.set_reactive(LineList.virtual_size, new)
            self._sync_scrollbar()  # (what _scroll_update does here, without repainting an unmoved thumb)
        else:
            self.virtual_size = new

    def _index_of(self, key: str) -> int | None:
        items = self.items
        if 0 <= self.cursor < len(items) and self.item_key(items[self.cursor]) == key:
            return self.cursor
        for i, item in enumerate(items):
            if self.item_key(item) == key:
                return i
        return None

    # ---- cursor ---------------------------------------------------------------------------------------
    def move_cursor(self, index: int) -> None:
        if not self.items:
            return
        index = max(0, min(index, len(self.items) - 1))
        if index == self.cursor:
            return
        self.cursor = index
        top = int(self.scroll_y)
        self.scroll_to_region_row(index)
        if int(self.scroll_y) == top:
            self._refresh_changed()  # the two cursor lines (a scroll repaints the view itself)
        else:
            self.refresh()
        self.post_message(RowSelected(self.id or "", self.current_key))

    def select_key(self, key: str) -> bool:
        index = self._index_of(key)
        if index is None:
            return False
        self.move_cursor(index)
        return True

    def scroll_to_region_row(self, index: int) -> None:
        height = self.scrollable_content_region.height or 1
        top = int(self.scroll_y)
        if index < top:
            self.scroll_to(y=index, animate=False, immediate=True)
        elif index >= top + height:
            self.scroll_to(y=index - height + 1, animate=False, immediate=True)

    def action_cursor_down(self) -> None:
        if self.has_cursor:
            self.move_cursor(self.cursor + 1)
        else:
            self.scroll_down(animate=False)

    def action_cursor_up(self) -> None:
        if self.has_cursor:
            self.move_cursor(self.cursor - 1)
        else:
            self.scroll_up(animate=False)

    def action_cursor_home(self) -> None:
        if self.has_cursor:
            self.move_cursor(0)
        else:
            self.scroll_home(animate=False)

    def action_cursor_end(self) -> None:
        if self.has_cursor:
            self.move_cursor(len(self.items) - 1)
        else:
            self.scroll_end(animate=False)

    def action_page_down(self) -> None:
        step = max(self.scrollable_content_region.height - 1, 1)
        if self.has_cursor:
            self.move_cursor(self.cursor + step)
        else:
            self.scroll_to(y=self.scroll_y + step, animate=False)

    def action_page_up(self) -> None:
        step = max(self.scrollable_content_region.height - 1, 1)
        if self.has_cursor:
            self.move_cursor(self.cursor - step)
        else:
            self.scroll_to(y=self.scroll_y - step, animate=False)

    async def _on_click(self, event: events.Click) -> None:
        if self.has_cursor:
            self.move_cursor(int(self.scroll_y) + event.y)

    def on_focus(self, event: events.Focus) -> None:
        self._cache.clear()  # the cursor row's style follows focus (line-list--cursor under :focus)
        self.refresh()

    def on_blur(self, event: events.Blur) -> None:
        self._cache.clear()
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self._cache.clear()
        self._width = max(self._width, self.size.width)
        self.virtual_size = Size(self.content_width(), len(self.items))

    # ---- rendering -------------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if not self.items:
            self._drawn.clear()  # an empty list is always repainted in full
            if y == 0:
                style = self.get_component_rich_style("line-list--empty")
                text = Text(self.filtered_empty_text(), style=style)
                return Strip(_styled(text.render(self.app.console))).crop_extend(0, width, base)
            return Strip.blank(width, base)
        if index >= len(self.items):
            self._drawn[y] = None
            return Strip.blank(width, base)
        selected = self.has_cursor and index == self.cursor
        # The width is part of the key: the content region narrows when a scrollbar appears, without a resize,
        # and a line drawn at the old width must not count as drawn.
        cache_key = (self.item_cache_key(self.items[index]), selected, scroll_x, width)
        self._drawn[y] = cache_key
        strip = self._cache.get(cache_key)
        if strip is None:
            text = self.item_text(self.items[index], selected)
            text.no_wrap = True
            strip = Strip(_styled(text.render(self.app.console)))
            if selected:
                strip = strip.extend_cell_length(max(width + scroll_x, strip.cell_length))
                strip = strip.apply_style(self.get_component_rich_style("line-list--cursor"))
            strip = strip.crop_extend(scroll_x, scroll_x + width, base)
            strip = strip.apply_style(base) if base != Style() else strip
            if len(self._cache) > 512:
                self._cache.clear()
            self._cache[cache_key] = strip
        return strip

    def filtered_empty_text(self) -> str:
        if self.filter.is_active and self._all:
            return f"no rows match the filter: {self.filter.source}"
        return self.empty_text
