"""The installed Qt binding keeps Python's reference counts: a void Qt method returns None
with a reference, or every call drops one and the process aborts once None's count hits zero
("Fatal Python error: none_dealloc"; PySide6 6.12.0 on Python 3.11, see pyproject.toml)."""

from __future__ import annotations

import sys

import pytest

pytestmark = pytest.mark.gui


def test_void_qt_calls_keep_none_alive(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QLabel

    label = QLabel()
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for _ in range(1000):
        label.update()  # a void method, as the viewer calls thousands of them per stroke
        QCoreApplication.processEvents()
    assert sys.getrefcount(None) >= before - 50
