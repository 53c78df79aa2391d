"""Phy's cluster and similarity tables with the plugin's columns: patched in place after merges and splits, and
sized from their text, not by Qt measuring every cell (Phy's own refit takes seconds on thousands of clusters)."""

from __future__ import annotations

import logging

from qtpy.QtCore import QEvent, QObject
from qtpy.QtGui import QFontMetrics
from qtpy.QtWidgets import QHeaderView, QToolTip

from .guard import guarded

logger = logging.getLogger("phy")
REASON_CHARS = 70  # the reason column's width at most, in average characters; longer reasons are elided


def update_rows(table, rows: list[dict]) -> None:
    """Patch rows of a Phy table (cluster or similarity view) in place.

    Phy 2.1.0's public `Table.change()` refits the height of every row and the width of every column, seconds
    on thousands of clusters, for each call (Phy's master sorts the whole table again when it is sorted). Here the
    changed cells are patched; the plugin's columns are widened directly if a new value needs it (`TableSizing`:
    Qt never measures them cell by cell); Qt is told which cells changed only when that can move rows (the table
    is sorted or filtered by a changed column), so that its sort/filter proxy moves just those; otherwise the
    table is just repainted. Falls back to `change()` if Phy's table is built otherwise.
    """
    model = getattr(table, "_model", None)
    row_by_id = getattr(model, "row_by_id", None)  # Phy's table model, 2.1.0 and after
    if not rows or row_by_id is None or not hasattr(model, "dataChanged"):
        return table.change(rows)
    names = [name for name in rows[0] if name in table.columns and name != "id"]
    if not names:
        return
    patched = [(row, patch) for row, patch in ((row_by_id(patch["id"]), patch) for patch in rows) if row is not None]
    for row, patch in patched:
        row.update(patch)
    sizing = getattr(table, "_bcreason_sizing", None)
    if sizing is not None:
        sizing.grow([patch for _, patch in patched])
    if not _needs_layout(table, names, [patch for _, patch in patched], sizing is None):
        table.table_view.viewport().update()
        return
    index_by_id = getattr(model, "row_index_by_id", None)  # Phy after 2.1.0 keeps each row's index
    positions = None
    if index_by_id is None and len(patched) > 1:
        positions = {id(row): i for i, row in enumerate(model._rows)}
    columns = [table.columns.index(name) for name in names]
    for row, patch in patched:
        if index_by_id is not None:
            i = index_by_id(patch["id"])
        else:
            i = positions[id(row)] if positions is not None else model._rows.index(row)
        model.dataChanged.emit(model.index(i, min(columns)), model.index(i, max(columns)))


def _needs_layout(table, names: list[str], patches: list[dict], check_widths: bool = True) -> bool:
    """Whether changed values can move rows (sort, filter) or (tables Qt sizes) need a wider column."""
    sort = getattr(table, "_current_sort", None)
    if getattr(table, "_filter_is_active", True) or (sort and sort[0] in names):
        return True
    if not check_widths:
        return False
    view = table.table_view
    metrics = view.fontMetrics()
    for name in names:
        width = view.columnWidth(table.columns.index(name)) - 12  # the cell's padding
        if any(metrics.horizontalAdvance(_cell_text(patch[name])) > width for patch in patches):
            return True
    return False


def _cell_text(value) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)  # as Qt shows a double


class TableSizing(QObject):
    """Column widths and row heights of a Phy table that Qt does not measure cell by cell.

    Phy sets every column of its tables to fit its contents and, after every merge, split, sort or filter,
    asks Qt to refit every column and every row (`Table._fit_columns`): Qt then asks the model for the size
    of every cell, about 2 million Python calls at start-up on 600 clusters, and again on each change. Our
    columns (the five bc_ columns and Bombcell's metric columns) get widths computed here from their text,
    once per new row (the reason column at most ``capped`` characters wide, elided, its full text in a tooltip), and
    the user may drag them wider. A column the layout sized (`hold`: the first look, a saved layout) or the user
    dragged is left at its width (``held``). Rows get one fixed height, that of the first row as Qt measures it:
    Phy's rows are single lines, all of the same height. Phy's own columns are still fitted by Qt as before.
    """

    def __init__(self, table, ours, capped: dict[str, int]):
        super().__init__(table)
        self.table, self.ours, self.capped = table, set(ours), dict(capped)
        self.widths: dict[str, int] = {}
        self.held: set[str] = set()  # columns of ours sized by the layout or the user: never fitted to their text
        self._setting = False        # our own setColumnWidth calls, not the user dragging a column
        self.measured: set = set()  # row ids whose text was measured
        self.padding: int | None = None
        self.row_height: int | None = None
        table._fit_columns = self.fit
        table._bcreason_sizing = self
        header = table.table_view.horizontalHeader()
        # before Phy fills the table: a model reset with sections resizing to their contents measures every cell
        header.setSectionResizeMode(QHeaderView.Interactive)
        # and each time it is filled again: Phy after 2.1.0 sets them back to resizing to their contents whenever
        # it builds the table (Table._init_table), just before filling it
        table.table_view.model().modelAboutToBeReset.connect(guarded(self._interactive, what="the column sizing"))
        header.sectionResized.connect(guarded(self._resized, what="a column's width"))
        table.table_view.viewport().installEventFilter(self)

    def _interactive(self) -> None:
        self.table.table_view.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)

    def _resized(self, index: int, old: int, new: int) -> None:
        """The user dragged a column of ours: its width is theirs (kept, saved in Phy's GUI state)."""
        columns = self.table.columns
        if not self._setting and 0 <= index < len(columns) and columns[index] in self.ours:
            self.held.add(columns[index])

    def _set_width(self, index: int, width: int) -> None:
        self._setting = True
        try:
            self.table.table_view.setColumnWidth(index, width)
        finally:
            self._setting = False

    def hold(self, widths: dict[str, int]) -> None:
        """Set these columns of ours to these widths and keep them there (a saved layout, or the first look)."""
        columns = self.table.columns
        for name, width in widths.items():
            if name in self.ours and name in columns and int(width) > 0:
                self.held.add(name)
                self._set_width(columns.index(name), int(width))

    def held_widths(self) -> dict[str, int]:
        """The widths of the columns held (the layout's and the user's), by name."""
        view, columns = self.table.table_view, self.table.columns
        return {name: view.columnWidth(columns.index(name)) for name in sorted(self.held) if name in columns}

    def _metrics(self):
        return self.table.table_view.fontMetrics()

    def _advance(self, text: str) -> int:
        return self._metrics().horizontalAdvance(text)

    def _calibrate(self, rows) -> None:
        """The cell padding Qt adds to the text width (Phy's style sheet), from one short column of ours."""
        view, columns = self.table.table_view, self.table.columns
        name = next((n for n in ("bc_nFailed", "bc_label", "bc_source") if n in columns), None)
        if name is None or not rows:
            return
        index = columns.index(name)
        widest = max(self._advance(_cell_text(row.get(name))) for row in rows)
        self.padding = max(0, view.sizeHintForColumn(index) - widest)

    def fit(self) -> None:
        table, view = self.table, self.table.table_view
        header = view.horizontalHeader()
        rows = table._model._rows
        if self.padding is None:
            self._calibrate(rows)
        self.grow([row for row in rows if row.get("id") not in self.measured], apply=False)
        self.measured.update(row.get("id") for row in rows)
        # Sections that resize to their contents make Qt measure every row of every such column whenever any
        # section or the layout changes: sizes are set here instead, at the moments Phy refits its tables.
        if header.sectionResizeMode(0) != QHeaderView.Interactive:
            header.setSectionResizeMode(QHeaderView.Interactive)
        # What Phy's refit does for its own columns: Phy 2.1.0 fits them at every refit, Phy after it only in the
        # first one with rows after it built the table (Table._column_widths_fitted), then keeps their widths.
        keeps_widths = hasattr(table, "_column_widths_fitted")
        fit_phy_columns = not (keeps_widths and table._column_widths_fitted)
        self._setting = True
        try:
            for index, name in enumerate(table.columns):
                if name in self.held:
                    continue
                if name in self.ours:
                    width = max(self.widths.get(name, 0), header.sectionSizeHint(index))
                    if view.columnWidth(index) < width:
                        view.setColumnWidth(index, width)
                elif fit_phy_columns:
                    view.resizeColumnToContents(index)
        finally:
            self._setting = False
        if keeps_widths and rows:
            table._column_widths_fitted = True
        if rows and self.row_height is None:
            vertical = view.verticalHeader()
            self.row_height = max(view.sizeHintForRow(0), 1)
            vertical.setMinimumSectionSize(1)
            vertical.setDefaultSectionSize(self.row_height)
            vertical.setSectionResizeMode(QHeaderView.Fixed)

    def grow(self, rows, apply: bool = True) -> None:
        """Widen our columns for the text of these rows (or row patches)."""
        padding = self.padding if self.padding is not None else 12
        changed = set()
        for name in self.ours:
            texts = {_cell_text(row[name]) for row in rows if name in row}
            if not texts:
                continue
            width = max(self._advance(text) for text in texts) + padding
            if name in self.capped:  # in average characters of the table's font, as styled by Phy
                width = min(width, self.capped[name] * self._metrics().averageCharWidth() + padding)
            if width > self.widths.get(name, 0):
                self.widths[name] = width
                changed.add(name)
        if apply and changed:
            view = self.table.table_view
            for name in (changed & set(self.table.columns)) - self.held:
                index = self.table.columns.index(name)
                if view.columnWidth(index) < self.widths[name]:
                    self._set_width(index, self.widths[name])

    @guarded(default=False)
    def eventFilter(self, obj, event):
        """Tooltip: the full text of one of our cells that does not fit its column."""
        if event.type() != QEvent.ToolTip:
            return False
        view = self.table.table_view
        index = view.indexAt(event.pos())
        if not index.isValid() or self.table.columns[index.column()] not in self.ours:
            return False
        text = _cell_text(index.data())
        if text and self._advance(text) + (self.padding or 12) > view.columnWidth(index.column()):
            QToolTip.showText(event.globalPos(), text, view)
        else:
            QToolTip.hideText()
        return True


def rule_column_widths(content: list[int], available: int, floors: dict[int, int], shrinkable: tuple[int, ...],
                       held: dict[int, int] | None = None) -> list[int]:
    """Widths of the rule table's columns for ``available`` pixels: every column its ``content`` width if all but
    the last (parameter, left to scroll) fit; otherwise the ``shrinkable`` columns (metric, status) give up what
    is missing, each in proportion to what it has above its floor, never below ``floors``. ``held``: columns the
    user sized, kept as they are."""
    held = held or {}
    widths = [held.get(i, width) for i, width in enumerate(content)]
    excess = sum(widths[:-1]) - available
    spare = {i: max(0, widths[i] - floors.get(i, 0)) for i in shrinkable if i not in held}
    total = sum(spare.values())
    if excess > 0 and total > 0:
        for i, room in spare.items():
            widths[i] -= round(room * min(1.0, excess / total))
    return widths


class RuleColumns(QObject):
    """The why? dock's rule table: each column as wide as its text if all but the last fit the table; otherwise
    the metric and status columns share the difference, elided (their full text is in the tooltip), the metric
    down to about ``metric_chars`` characters, the status down to ``status_floor``'s width (bold, as decisive
    rows are); the last column (parameter) scrolls. Fitted again when the table is filled or
    resized; a column the user drags keeps its width (``held``, saved in Phy's GUI state by the layout)."""

    def __init__(self, tree, metric: int, status: int, status_floor: str, metric_chars: int = 12,
                 indentation: int = 14):
        super().__init__(tree)
        tree.setIndentation(indentation)  # Qt's 20 px per level: three levels took 60 px of the metric column
        self.tree, self.shrinkable = tree, (metric, status)
        self.metric_chars, self.status_floor = metric_chars, status_floor
        self.held: dict[int, int] = {}
        self._setting = False
        self._width = 0
        tree.header().sectionResized.connect(guarded(self._resized, what="a rule column's width"))
        tree.viewport().installEventFilter(self)

    def floors(self) -> dict[int, int]:
        metric, status = self.shrinkable
        bold = self.tree.font()
        bold.setBold(True)
        padding = 8  # Qt's item margins, as sizeHintForColumn counts them
        return {metric: 3 * self.tree.indentation() + self.metric_chars * self.tree.fontMetrics().averageCharWidth(),
                status: QFontMetrics(bold).horizontalAdvance(self.status_floor) + padding}

    def fit(self) -> None:
        tree, header = self.tree, self.tree.header()
        count = header.count()
        content = [max(tree.sizeHintForColumn(i), header.sectionSizeHint(i)) for i in range(count)]
        widths = rule_column_widths(content, tree.viewport().width(), self.floors(), self.shrinkable, self.held)
        self._width = tree.viewport().width()
        self._setting = True
        try:
            for index, width in enumerate(widths[:-1]):
                if tree.columnWidth(index) != width:
                    tree.setColumnWidth(index, width)
            if not header.stretchLastSection():
                tree.setColumnWidth(count - 1, widths[-1])
        finally:
            self._setting = False

    def _resized(self, index: int, old: int, new: int) -> None:
        if not self._setting and index < self.tree.header().count() - 1:
            self.held[index] = new

    def held_by_name(self) -> dict[str, int]:
        header = self.tree.headerItem()
        return {header.text(index): width for index, width in sorted(self.held.items())}

    def hold_by_name(self, widths: dict[str, int]) -> None:
        """Columns sized in an earlier session (by header text): kept at those widths."""
        header = self.tree.headerItem()
        names = {header.text(index): index for index in range(self.tree.columnCount() - 1)}
        self.held.update({names[name]: int(width) for name, width in widths.items() if name in names and width > 0})
        self.fit()

    @guarded(default=False)
    def eventFilter(self, obj, event):
        """The table wider or narrower (the dock resized): fitted again."""
        if event.type() == QEvent.Resize and self.tree.viewport().width() != self._width:
            self.fit()
        return False


def install_sizing(view, ours) -> None:
    if getattr(view, "_bcreason_sizing", None) is not None or not hasattr(view, "table_view"):
        return
    try:
        TableSizing(view, ours, {"bc_classificationReason": REASON_CHARS})
    except Exception as exc:  # Phy's table built otherwise: it sizes itself as before
        logger.warning("phy-bcreason: column sizing not installed: %s: %s", type(exc).__name__, exc)
