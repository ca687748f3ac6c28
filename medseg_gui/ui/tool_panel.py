"""The editing tool panel (a dock) and the Edit / Tools menus with their shortcuts.

Widgets only gather settings and call the :class:`EditingController`; the controller's
signals keep them in step when a key or the mouse wheel changes the brush. The "AI prompts"
section (:class:`~medseg_gui.ui.ai_tool.AIPromptSection`) shows while the AI tool is active.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from medseg_gui.editing import HU_PRESETS, BrushShape, MaskMode, Overwrite, PaintConstraint
from medseg_gui.editing.regions import ScissorsOp
from medseg_gui.editing.tools import Tool
from medseg_gui.ui.ai_tool import AIPromptSection
from medseg_gui.ui.editing_tools import MAX_BRUSH_MM, MIN_BRUSH_MM, EditingController

if TYPE_CHECKING:
    from medseg_gui.ui.recovery import RecoveryManager
    from medseg_gui.ui.segment_panel import SegmentPanel
    from medseg_gui.ui.workstation import Workstation

TOOL_KEYS = {Tool.NAVIGATE: ("&Navigate", "N"), Tool.PAINT: ("&Paint", "B"),
             Tool.ERASE: ("&Erase", "E"), Tool.FILL: ("&Fill (region grow)", "F"),
             Tool.SCISSORS: ("&Scissors", "X"), Tool.AI: ("&AI prompt", "A"),
             Tool.RULER: ("&Ruler", "M")}
NO_LIMIT = "No intensity limit"
SCISSORS_OPS = {"Erase inside": ScissorsOp.ERASE_INSIDE, "Erase outside":
                ScissorsOp.ERASE_OUTSIDE, "Fill inside": ScissorsOp.FILL_INSIDE}


class EditActions:
    """Undo/redo (with the step's name) and the tool actions, in an Edit and a Tools menu."""

    def __init__(self, window: Workstation, controller: EditingController) -> None:
        self.controller = controller
        menu = window.menuBar().addMenu("&Edit")
        self.undo = QAction("&Undo", window)
        self.undo.setShortcut(QKeySequence("Ctrl+Z"))
        self.undo.triggered.connect(controller.undo)
        self.redo = QAction("&Redo", window)
        self.redo.setShortcuts([QKeySequence("Ctrl+Y"), QKeySequence("Ctrl+Shift+Z")])
        self.redo.triggered.connect(controller.redo)
        menu.addActions([self.undo, self.redo])
        tools = window.menuBar().addMenu("&Tools")
        group = QActionGroup(window)
        self.tools: dict[Tool, QAction] = {}
        for tool, (text, key) in TOOL_KEYS.items():
            action = QAction(text, window, checkable=True)
            action.setShortcut(QKeySequence(key))
            action.triggered.connect(lambda _=False, t=tool: controller.set_tool(t))
            group.addAction(action)
            tools.addAction(action)
            self.tools[tool] = action
        self.tools[Tool.NAVIGATE].setChecked(True)
        tools.addSeparator()
        for text, key, slot in (("&Larger brush", "]", lambda: controller.scale_brush(1)),
                                ("&Smaller brush", "[", lambda: controller.scale_brush(-1)),
                                ("2D disc / 3D &sphere", "D", controller.toggle_shape)):
            action = QAction(text, window)
            action.setShortcut(QKeySequence(key))
            action.triggered.connect(slot)
            tools.addAction(action)
        controller.toolChanged.connect(lambda t: self.tools[Tool(t)].setChecked(True))
        controller.tableChanged.connect(self.update_history)
        controller.sessionChanged.connect(self.update_history)
        self.update_history()

    def update_history(self) -> None:
        """Name the step Ctrl+Z / Ctrl+Y would undo or redo ("Undo Paint")."""
        editor = self.controller.editor
        undo = editor.history.undo_name() if editor is not None else None
        redo = editor.history.redo_name() if editor is not None else None
        self.undo.setText(f"&Undo {undo}" if undo else "&Undo")
        self.redo.setText(f"&Redo {redo}" if redo else "&Redo")
        self.undo.setEnabled(undo is not None)
        self.redo.setEnabled(redo is not None)


class ToolPanel(QDockWidget):
    """Tool buttons, brush size and shape, intensity and segment limits."""

    def __init__(self, window: Workstation, controller: EditingController,
                 actions: EditActions) -> None:
        super().__init__("Tools", window)
        self.setObjectName("ToolsDock")
        self.controller = controller
        body = QWidget()
        column = QVBoxLayout(body)
        buttons = QGridLayout()
        for n, action in enumerate(actions.tools.values()):
            b = QToolButton()
            b.setDefaultAction(action)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            b.setMinimumWidth(80)
            buttons.addWidget(b, n // 4, n % 4)
        column.addLayout(buttons)
        form = QFormLayout()
        self.diameter = QDoubleSpinBox(suffix=" mm", decimals=1, minimum=MIN_BRUSH_MM,
                                   maximum=MAX_BRUSH_MM, singleStep=1.0)
        self.diameter.setToolTip("Brush diameter ( [ and ], shift+wheel )")
        self.diameter.valueChanged.connect(lambda v: controller.set_brush(diameter_mm=v))
        form.addRow("Brush size", self.diameter)
        shape_row = QHBoxLayout()
        self.disc, self.sphere = QRadioButton("2D disc"), QRadioButton("3D sphere")
        group = QButtonGroup(self)
        for radio in (self.disc, self.sphere):
            group.addButton(radio)
            shape_row.addWidget(radio)
        self.sphere.toggled.connect(lambda on: controller.set_brush(
            shape=BrushShape.SPHERE if on else BrushShape.DISC))
        form.addRow("Shape (D)", shape_row)
        self._shape_row = shape_row
        self.hu = QComboBox()
        self.hu.addItem(NO_LIMIT)
        for name, (lo, hi) in HU_PRESETS.items():
            self.hu.addItem(f"{name}  ({lo:g} to {hi:g} HU)", name)
        form.addRow("Paint only", self.hu)
        self.mask_mode = QComboBox()
        for text, mode in (("everywhere", MaskMode.EVERYWHERE), ("inside", MaskMode.INSIDE),
                           ("outside", MaskMode.OUTSIDE)):
            self.mask_mode.addItem(text, mode)
        self.mask_label = QComboBox()
        mask_row = QHBoxLayout()
        mask_row.addWidget(self.mask_mode)
        mask_row.addWidget(self.mask_label, 1)
        form.addRow("Where", mask_row)
        self.overwrite = QCheckBox("Paint over other segments")
        self.overwrite.setChecked(True)
        form.addRow("", self.overwrite)
        self.tolerance = QDoubleSpinBox(suffix=" HU", decimals=0, minimum=1, maximum=2000,
                                        value=controller.regions.fill_tolerance_hu)
        self.tolerance.valueChanged.connect(
            lambda v: setattr(controller.regions, "fill_tolerance_hu", float(v)))
        form.addRow("Fill tolerance", self.tolerance)
        self.scissors = QComboBox()
        self.scissors.addItems(list(SCISSORS_OPS))
        self.scissors.currentTextChanged.connect(
            lambda t: setattr(controller.regions, "scissors_op", SCISSORS_OPS[t]))
        form.addRow("Scissors", self.scissors)
        column.addLayout(form)
        self.form = form
        self.ai = AIPromptSection(controller.ai)
        column.addWidget(self.ai)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #909090;")
        column.addWidget(self.hint)
        column.addStretch(1)
        self.setWidget(body)
        for combo in (self.hu, self.mask_mode, self.mask_label):
            combo.currentIndexChanged.connect(self._constraint_changed)
        self.overwrite.toggled.connect(self._constraint_changed)
        controller.brushChanged.connect(self.show_brush)
        controller.tableChanged.connect(self._fill_mask_labels)
        controller.toolChanged.connect(lambda _t: self._show_hint())
        controller.toolChanged.connect(self._show_tool_rows)
        self.show_brush()
        self._fill_mask_labels()
        self._show_hint()
        self._show_tool_rows(controller.tool.value)

    def show_brush(self) -> None:
        """Show the controller's brush (after keys or the wheel changed it)."""
        b = self.controller.brush
        widgets: list[QWidget] = [self.diameter, self.sphere, self.disc]
        for w in widgets:
            w.blockSignals(True)
        self.diameter.setValue(b.diameter_mm)
        self.sphere.setChecked(b.shape is BrushShape.SPHERE)
        self.disc.setChecked(b.shape is BrushShape.DISC)
        for w in widgets:
            w.blockSignals(False)
        self._show_hint()

    def _fill_mask_labels(self) -> None:
        seg = self.controller.segmentation
        current = self.mask_label.currentData()
        self.mask_label.blockSignals(True)
        self.mask_label.clear()
        self.mask_label.addItem("any segment", 0)
        for s in seg.segments if seg is not None else []:
            self.mask_label.addItem(s.name, s.label)
        index = self.mask_label.findData(current)
        self.mask_label.setCurrentIndex(max(index, 0))
        self.mask_label.blockSignals(False)

    def _constraint_changed(self) -> None:
        preset = self.hu.currentData()
        self.controller.set_brush(constraint=PaintConstraint(
            hu_range=HU_PRESETS[preset] if preset else None,
            mask_mode=self.mask_mode.currentData(), mask_label=int(self.mask_label.currentData()
                                                                   or 0),
            overwrite=Overwrite.ALL if self.overwrite.isChecked() else Overwrite.NONE,
            locked=frozenset(self.controller.locked)))

    def _show_tool_rows(self, tool: str) -> None:
        """With the AI tool, the AI section instead of the brush, fill and scissors rows (the
        paint rules stay: the AI's result obeys them too); with the ruler, none of them."""
        ai = tool == Tool.AI.value
        for row in (self.diameter, self._shape_row, self.tolerance, self.scissors):
            self.form.setRowVisible(row, not ai and tool != Tool.RULER.value)
        self.ai.setVisible(ai)
        self.hint.setVisible(not ai)

    def _show_hint(self) -> None:
        c = self.controller
        tips = {Tool.NAVIGATE: "Left click moves the crosshair.",
                Tool.PAINT: "Left drag paints the active segment.",
                Tool.ERASE: "Left drag erases the active segment.",
                Tool.FILL: "Click fills connected voxels within the tolerance "
                           "(in the slice with the disc, in 3D with the sphere).",
                Tool.SCISSORS: "Drag a lasso: cuts the current slice (disc) or through the "
                               "volume (sphere).",
                Tool.AI: "Prompts segment the object in the active segment, under the paint "
                         "rules above.",
                Tool.RULER: "Drag to measure; drag an end of a ruler or RECIST axis to move "
                            "it; click a line to select it, Delete removes a ruler or resets "
                            "an edited axis."}
        self.hint.setText(f"{tips[c.tool]} Right drag: window/level; wheel: slices; "
                          "Esc cancels; Ctrl+Z undoes.")



def install_editing(window: Workstation) -> tuple[EditingController, EditActions, ToolPanel,
                                                  SegmentPanel, RecoveryManager]:
    """The editing controller, tool and segment docks, Edit/Tools menus and crash recovery."""
    from medseg_gui.ui.recovery import RecoveryManager
    from medseg_gui.ui.segment_panel import SegmentPanel

    editing = EditingController(window)
    actions = EditActions(window, editing)
    tools = ToolPanel(window, editing, actions)
    segments = SegmentPanel(window, editing)
    for dock in (segments, tools):
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    recovery = RecoveryManager(window)
    if window.dialogs:
        QTimer.singleShot(0, recovery.offer)
    return editing, actions, tools, segments, recovery
