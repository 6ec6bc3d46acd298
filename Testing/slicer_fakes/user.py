"""Acting as the user on the fake panel: only what a user can do (the widget is shown and enabled; a
collapsed section is opened first, as a user would), with the signals Qt emits for that interaction."""

from __future__ import annotations

from .widgets import (
    QAbstractButton,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTableWidget,
    QWidget,
    UserCannotDoThat,
    ctkCollapsibleButton,
    ctkDirectoryButton,
    ctkPathLineEdit,
    ctkSliderWidget,
    qMRMLNodeComboBox,
)


class User:
    def __init__(self, session):
        self.session = session

    def _reach(self, widget: QWidget) -> None:
        ancestors = []
        parent = widget.parentWidget()
        while parent is not None:
            ancestors.append(parent)
            parent = parent.parentWidget()
        for ancestor in reversed(ancestors):
            if isinstance(ancestor, ctkCollapsibleButton) and ancestor.collapsed:
                self.click(ancestor)   # open the section
        if not widget.isVisible():
            raise UserCannotDoThat(f"{widget!r} is not visible: the user cannot reach it")
        if not widget.isEnabled():
            raise UserCannotDoThat(f"{widget!r} is disabled: the user cannot use it")

    def click(self, button: QWidget) -> None:
        self._reach(button)
        if isinstance(button, ctkDirectoryButton):
            button.browse()
        elif isinstance(button, QAbstractButton):
            button.click()
        else:
            raise UserCannotDoThat(f"{button!r} is not a button")

    def pick_folder(self, button: ctkDirectoryButton, folder) -> None:
        """Click the directory button and choose `folder` in its dialog ('' = Cancel)."""
        self.session.folder_answers.append(str(folder))
        self.click(button)

    def choose(self, combo: QWidget, item) -> None:
        """Pick an item from a combo box: by text or index (QComboBox) or by node (qMRMLNodeComboBox)."""
        self._reach(combo)
        if isinstance(combo, qMRMLNodeComboBox):
            if item is not None and item not in combo._nodes():
                raise UserCannotDoThat(f"{item.GetName() if item else item} is not in {combo!r}")
            if item is None and not combo.noneEnabled:
                raise UserCannotDoThat(f"{combo!r} offers no 'None' item")
            combo.setCurrentNode(item)
            combo._fake_emit("nodeActivated(vtkMRMLNode*)", item)
            return
        if not isinstance(combo, QComboBox):
            raise UserCannotDoThat(f"{combo!r} is not a combo box")
        index = item if isinstance(item, int) else combo.findText(item)
        if not 0 <= index < combo.count:
            raise UserCannotDoThat(f"{combo!r} has no item {item!r}")
        combo.setCurrentIndex(index)
        combo._fake_emit("activated(int)", index)
        combo._fake_emit("activated(QString)", combo.itemText(index))
        combo._fake_emit("textActivated(QString)", combo.itemText(index))

    def type_text(self, edit: QWidget, text: str) -> None:
        """Select all and type `text`: textChanged for the deletion and for every character (a QLineEdit also
        emits textEdited each time, then editingFinished when the user leaves the field)."""
        self._reach(edit)
        if isinstance(edit, ctkPathLineEdit):
            for value in ([""] if edit.currentPath else []) + [text[:n] for n in range(1, len(text) + 1)]:
                edit._fake_line_edit_set_text(value)
            return
        if isinstance(edit, QLineEdit):
            if edit.readOnly:
                raise UserCannotDoThat(f"{edit!r} is read-only")
            for value in ([""] if edit.text else []) + [text[:n] for n in range(1, len(text) + 1)]:
                edit._s.props["text"] = value
                edit._fake_emit("textEdited(QString)", value)
                edit._fake_emit("textChanged(QString)", value)
            edit._fake_emit("editingFinished()")
            return
        if edit.readOnly:
            raise UserCannotDoThat(f"{edit!r} is read-only")
        if edit.toPlainText():
            edit._s.text = ""
            edit._fake_emit("textChanged()")
        for character in text:
            edit._s.text += character
            edit._fake_emit("textChanged()")

    def move_slider(self, slider: ctkSliderWidget, value: float) -> None:
        self._reach(slider)
        slider.setValue(value)

    def double_click_cell(self, table: QTableWidget, row: int, column: int) -> None:
        """Press, release, double-click: what Qt 5.15 emits for a mouse double-click on a cell (checked against a
        real QTableWidget in test_fake_conformance.py)."""
        self._reach(table)
        if not (0 <= row < table.rowCount and 0 <= column < table.columnCount):
            raise UserCannotDoThat(f"{table!r} has no cell ({row}, {column})")
        item = table.item(row, column)
        table._fake_press_cell(row, column)
        for signal in ("Pressed", "Clicked", "DoubleClicked", "Activated"):
            if item is not None:
                table._fake_emit(f"item{signal}(QTableWidgetItem*)", item)
            table._fake_emit(f"cell{signal}(int,int)", row, column)

    def cancel(self, dialog) -> None:
        """Press Cancel in a progress dialog (it must be on screen)."""
        if not dialog.isVisible():
            raise UserCannotDoThat("the progress dialog is not shown: there is no Cancel button to press")
        dialog._fake_press_cancel_button()


def selected_rows(table: QTableWidget) -> set:
    """What the table shows as selected (test-side inspection)."""
    return table._fake_selected_rows()
