"""The slice views' editing tools without Qt: (view, axis, voxel index, buttons, modifiers) in.

ITK-SNAP's paint logic takes slice coordinates and knows nothing of its widgets; so does this.
A slice view turns a mouse event into a :class:`PointerEvent` (which view, the label-map axis
its slice is flat across, the continuous ``(i, j, k)`` under the pointer, the button and the
modifiers, and for tools that want them the LPS position and the pixel position) and hands it
to :class:`ToolBox`, which routes it to the active tool. A tool answers with a :class:`Reply`:
an edit it committed, a :class:`Change` for the host to commit as one undo step, or work for the
host to run off the GUI thread and then commit. The host (``ui/editing_tools.py``) only turns
Qt events into these values, redraws, and runs that work on a thread.

Tools are pluggable: whatever has the :class:`PointerTool` methods can be registered under a
name beside the built-in brush, eraser, fill and scissors (the AI prompt tool of
``ui/ai_tool.py`` is; a ruler can be). The toolbox holds what the built-in tools share: the
editor, the brush settings and the locked segments, which every tool's paint constraint
carries and which no tool may paint into.

Typical use::

    box = ToolBox()
    box.editor = SegmentEditor(seg, image)
    box.active = "paint"
    at = PointerEvent("axial", ViewAxis.AXIAL, (120.0, 88.5, 40.0), Button.LEFT)
    box.press(at); box.move(dataclasses.replace(at, ijk=(124.0, 90.0, 40.0)))
    reply = box.release(at)      # reply.edit: the stroke, one undo step
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import IntFlag, StrEnum
from typing import Protocol

from medseg_gui.core.progress import Progress
from medseg_gui.editing.base import Change, ViewAxis
from medseg_gui.editing.brush import BrushSettings, BrushShape
from medseg_gui.editing.constraints import PaintConstraint
from medseg_gui.editing.editor import SegmentEditor
from medseg_gui.editing.history import Edit
from medseg_gui.editing.regions import ScissorsOp, region_grow, scissors


class Tool(StrEnum):
    """The built-in tools' names (what a left click or drag does in a slice view)."""

    NAVIGATE = "navigate"  # move the crosshair: no tool takes the event
    PAINT = "paint"
    ERASE = "erase"
    FILL = "fill"  # region grow from the clicked voxel
    SCISSORS = "scissors"  # lasso through the slice (disc) or the volume (sphere)
    AI = "ai"  # prompts for the promptable model (registered by the GUI)
    RULER = "ruler"  # rulers and the RECIST axes' end points (registered by the GUI)


EDIT_TOOLS = (Tool.PAINT, Tool.ERASE, Tool.FILL, Tool.SCISSORS)


class Button(IntFlag):
    NONE = 0
    LEFT = 1
    RIGHT = 2
    MIDDLE = 4


class Modifier(IntFlag):
    NONE = 0
    SHIFT = 1
    CTRL = 2
    ALT = 4


@dataclass(frozen=True)
class PointerEvent:
    """A mouse press, move or release in a slice view, as plain values.

    Parameters
    ----------
    view
        Which view (opaque to the tools: a gesture stays in the view it began in).
    axis
        The label-map axis the view's slice is flat across (a disc brush lies in that plane).
    ijk
        The continuous label-map index under the pointer, ``None`` outside the image.
    button
        The button pressed or released; for a move, the buttons held.
    modifiers
        Keyboard modifiers held.
    world, screen
        The LPS position (mm) and the view's pixel position, for tools that need them.
    """

    view: Hashable
    axis: ViewAxis
    ijk: tuple[float, float, float] | None
    button: Button
    modifiers: Modifier = Modifier.NONE
    world: tuple[float, float, float] | None = None
    screen: tuple[float, float] = (0.0, 0.0)


Job = Callable[[Progress], Change]


@dataclass(frozen=True)
class Reply:
    """What a tool did with an event, for the host.

    Parameters
    ----------
    handled
        The tool took the event (the view must not also navigate with it).
    edit
        An undo step the tool committed (a brush stroke), to announce and redraw.
    change
        A change for the host to commit as one undo step.
    job
        Work that returns a change, for the host to run off the GUI thread and then commit.
    redraw
        The event's view changed under the pointer: draw it now.
    began
        A press started a gesture (a stroke, a lasso) that ends at the release in this view.
    message
        A line for the status bar (why the event was refused).
    """

    handled: bool = False
    edit: Edit | None = None
    change: Change | None = None
    job: Job | None = None
    redraw: bool = False
    began: bool = False
    message: str = ""


IGNORED = Reply()


class PointerTool(Protocol):
    """What the toolbox asks of a tool."""

    @property
    def busy(self) -> bool:
        """Work of this tool is running: edits wait for it."""
        ...

    def press(self, event: PointerEvent) -> Reply: ...

    def move(self, event: PointerEvent) -> Reply: ...

    def release(self, event: PointerEvent) -> Reply: ...

    def cancel(self) -> bool:
        """Escape: drop the gesture in progress; True if there was one."""
        ...


@dataclass
class ToolBox:
    """The active tool, the registered tools and what the built-in ones share.

    Attributes
    ----------
    editor
        The session's editor (``None``: nothing to edit).
    brush
        Size, shape and paint constraint (the disc's axis comes from each event).
    locked
        Segments no tool may change.
    active
        The name of the tool events go to (``"navigate"``: none).
    job_running
        Set by the host while a tool's job runs: edits wait for it.
    """

    editor: SegmentEditor | None = None
    brush: BrushSettings = field(default_factory=lambda: BrushSettings(10.0, BrushShape.DISC))
    locked: set[int] = field(default_factory=set)
    active: str = Tool.NAVIGATE.value
    job_running: bool = False
    tools: dict[str, PointerTool] = field(default_factory=dict)
    busy_sources: list[Callable[[], bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.register(Tool.PAINT, BrushTool(self, erase=False))
        self.register(Tool.ERASE, BrushTool(self, erase=True))
        self.register(Tool.FILL, FillTool(self))
        self.register(Tool.SCISSORS, ScissorsTool(self))

    def register(self, name: str, tool: PointerTool) -> None:
        """Make ``tool`` the one events go to while ``name`` is active."""
        self.tools[str(name)] = tool

    @property
    def tool(self) -> PointerTool | None:
        return self.tools.get(self.active)

    @property
    def busy(self) -> bool:
        """A job, a tool or another source (a Segment menu tool) is running."""
        return self.job_running or any(t.busy for t in self.tools.values()) or any(
            source() for source in self.busy_sources)

    def busy_besides(self, tool: PointerTool) -> bool:
        """Whether anything but ``tool`` is running (a tool queueing its own work asks)."""
        return self.job_running or any(t.busy for t in self.tools.values() if t is not tool) \
            or any(source() for source in self.busy_sources)

    def constraint(self) -> PaintConstraint:
        """The brush's paint constraint with the locked segments in it."""
        return dataclasses.replace(self.brush.constraint, locked=frozenset(self.locked))

    def refusal(self) -> str:
        """Why an edit tool may not paint now ('' when it may)."""
        editor = self.editor
        if editor is None or editor.active_label is None:
            return "Add a segment first"
        if editor.active_label in self.locked:
            name = editor.segmentation.segment(editor.active_label).name
            return f"Segment {name!r} is locked: unlock it in the Segments list to edit it"
        return ""

    def press(self, event: PointerEvent) -> Reply:
        tool = self.tool
        if tool is None:
            return IGNORED
        if self.active in EDIT_TOOLS and event.button is Button.LEFT and self.busy:
            return Reply(True, message="A tool is running: edits wait for it")
        return tool.press(event)

    def move(self, event: PointerEvent) -> Reply:
        tool = self.tool
        return IGNORED if tool is None else tool.move(event)

    def release(self, event: PointerEvent) -> Reply:
        tool = self.tool
        return IGNORED if tool is None else tool.release(event)

    def cancel(self) -> bool:
        """Escape: every tool drops its gesture; True if one had one."""
        return any([t.cancel() for t in self.tools.values()])


class _EditTool:
    """Shared parts of the built-in tools: a gesture in one view, refused when locked."""

    busy = False

    def __init__(self, box: ToolBox) -> None:
        self.box = box
        self.view: Hashable | None = None  # where the gesture in progress began

    def _refused(self, event: PointerEvent) -> Reply | None:
        """The reply to a press the tool must not act on: not the left button (ignored), a
        locked or missing segment (a message), or a point off the image (taken, no effect)."""
        if event.button is not Button.LEFT:
            return IGNORED
        refusal = self.box.refusal()
        if refusal:
            return Reply(True, message=refusal)
        return Reply(True) if event.ijk is None else None

    def _mine(self, event: PointerEvent) -> bool:
        return self.view is not None and event.view == self.view


class BrushTool(_EditTool):
    """Paint (or erase) a stroke: press starts it, moves stamp along, release commits it."""

    def __init__(self, box: ToolBox, *, erase: bool) -> None:
        super().__init__(box)
        self.erase = erase

    def press(self, event: PointerEvent) -> Reply:
        refused = self._refused(event)
        if refused is not None:
            return refused
        editor = self.box.editor
        assert editor is not None and event.ijk is not None
        settings = dataclasses.replace(self.box.brush, axis=event.axis,
                                       constraint=self.box.constraint())
        editor.begin_stroke(event.ijk, erase=self.erase, settings=settings)
        self.view = event.view
        return Reply(True, redraw=True, began=True)

    def move(self, event: PointerEvent) -> Reply:
        editor = self.box.editor
        if not self._mine(event) or editor is None or not editor.stroking:
            return IGNORED
        if event.ijk is not None:
            editor.continue_stroke(event.ijk)
        return Reply(True, redraw=True)

    def release(self, event: PointerEvent) -> Reply:
        if event.button is not Button.LEFT or not self._mine(event):
            return IGNORED
        self.view = None
        editor = self.box.editor
        if editor is None or not editor.stroking:
            return Reply(True)
        return Reply(True, edit=editor.end_stroke(), redraw=True)

    def cancel(self) -> bool:
        editor, self.view = self.box.editor, None
        if editor is not None and editor.stroking:
            editor.cancel_stroke()
            return True
        return False


class FillTool(_EditTool):
    """Region grow from the clicked voxel (in the view's slice with the disc), as a job."""

    def __init__(self, box: ToolBox) -> None:
        super().__init__(box)
        self.tolerance_hu = 60.0

    def press(self, event: PointerEvent) -> Reply:
        refused = self._refused(event)
        if refused is not None:
            return refused
        editor = self.box.editor
        assert editor is not None
        if editor.image is None or editor.active_label is None or event.ijk is None:
            return Reply(True, message="Fill needs the image on the label map's grid")
        seg, image, label, seed = (editor.segmentation, editor.image, editor.active_label,
                                   list(event.ijk))
        axis = event.axis if self.box.brush.shape is BrushShape.DISC else None
        tolerance, constraint = self.tolerance_hu, self.box.constraint()

        def job(progress: Progress) -> Change:
            return region_grow(seg, image, seed, label, tolerance_hu=tolerance, axis=axis,
                               constraint=constraint, hu_range=constraint.hu_range)

        return Reply(True, job=job)

    def move(self, event: PointerEvent) -> Reply:
        return IGNORED

    def release(self, event: PointerEvent) -> Reply:
        return IGNORED

    def cancel(self) -> bool:
        return False


class ScissorsTool(_EditTool):
    """A lasso: press starts it, moves extend it, release cuts through the slice (disc) or the
    whole volume (sphere)."""

    def __init__(self, box: ToolBox) -> None:
        super().__init__(box)
        self.op = ScissorsOp.ERASE_INSIDE
        self.lasso: list[tuple[float, float, float]] = []

    def press(self, event: PointerEvent) -> Reply:
        refused = self._refused(event)
        if refused is not None:
            return refused
        assert event.ijk is not None
        self.lasso, self.view = [event.ijk], event.view
        return Reply(True, began=True)

    def move(self, event: PointerEvent) -> Reply:
        if not self._mine(event):
            return IGNORED
        if event.ijk is not None:
            self.lasso.append(event.ijk)
        return Reply(True, redraw=True)

    def release(self, event: PointerEvent) -> Reply:
        if event.button is not Button.LEFT or not self._mine(event):
            return IGNORED
        points, self.lasso, self.view = self.lasso, [], None
        editor = self.box.editor
        if editor is None or editor.active_label is None or len(points) < 3:
            return Reply(True, redraw=True)
        drop = 2 - int(event.axis)  # the (i, j, k) component across the plane
        uv = [[p[n] for n in range(3) if n != drop] for p in points]
        depth = None
        if self.box.brush.shape is BrushShape.DISC:
            s = round(points[0][drop])
            depth = (s, s)
        change = scissors(editor.segmentation, uv, event.axis, editor.active_label, op=self.op,
                          depth=depth, image=editor.image, constraint=self.box.constraint())
        return Reply(True, change=change, redraw=True)

    def cancel(self) -> bool:
        had, self.lasso, self.view = bool(self.lasso), [], None
        return had
