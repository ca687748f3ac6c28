"""The main window: four panels (axial, coronal, sagittal, 3D) with linked slice views.

The window owns the shared viewing state (the crosshair in LPS mm and the window/level) and
pushes it to every view; views only send requests (see :mod:`medseg_gui.ui.slice_widget`).
Loading runs on a thread pool through :class:`~medseg_gui.ui.workers.Task`.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QPoint, QThreadPool, Signal
from PySide6.QtGui import QAction, QCloseEvent, QImage, QKeySequence, QPainter, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMessageBox,
    QProgressBar,
    QToolButton,
)

from medseg_gui.core.progress import Progress, scaled
from medseg_gui.core.segmentation import Segmentation
from medseg_gui.core.volume import Volume
from medseg_gui.io.masks import MASK_READ_PATTERNS, load_mask
from medseg_gui.rendering.presets import WindowLevel, auto_window, load_presets
from medseg_gui.rendering.slice_view import volume_center
from medseg_gui.rendering.slicing import Orientation, probe
from medseg_gui.ui.confidence_panel import install_confidence
from medseg_gui.ui.frame_scheduler import FrameScheduler
from medseg_gui.ui.layouts import ViewLayout
from medseg_gui.ui.slice_widget import SliceViewWidget, release_vtk_windows
from medseg_gui.ui.study_browser import SeriesEntry, install_study_browser, series_work
from medseg_gui.ui.view3d import View3DPanel
from medseg_gui.ui.viewer_setup import install_viewer_options
from medseg_gui.ui.workers import Task
from medseg_gui.ui.workstation import Workstation

if TYPE_CHECKING:
    from medseg_gui.ui.segment_action import SegmentAction

log = logging.getLogger("medseg.gui")

Loader = Callable[..., Volume]
LABELS_FILTER = (f"Segmentations ({' '.join(MASK_READ_PATTERNS)});;"
                 "DICOM SEG or RTSTRUCT (*.dcm);;All files (*)")


def _default_loader(path: str | Path, progress: Progress) -> Volume:
    from medseg_gui.io.loader import load_volume

    return load_volume(path, progress=progress)


class MainWindow(Workstation):
    """Axial, coronal and sagittal views linked by one crosshair, and a 3D placeholder.

    Parameters
    ----------
    loader
        ``loader(path, progress) -> Volume``; the default is ``medseg_gui.io.loader``.
    dialogs
        Show load errors and questions in message boxes (False for headless runs: the status
        bar and :attr:`last_error` only); the features read it as :attr:`dialogs`.

    Signals
    -------
    studyLoaded(object)
        The :class:`Volume` now shown.
    loadFailed(str)
        A one-line error message.
    """

    studyLoaded = Signal(object)
    loadFailed = Signal(str)
    segment_action: SegmentAction  # the features see the narrower Workstation types

    def __init__(self, loader: Loader = _default_loader, dialogs: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("medseg-gui")
        self._loader = loader
        self.dialogs = dialogs
        self.volume: Volume | None = None
        self.segmentation: Segmentation | None = None
        self.crosshair = np.zeros(3)
        self.last_error = ""
        self._task: Task | None = None
        self.presets = self._read_presets()
        self.views = {o: SliceViewWidget(o) for o in Orientation}
        # Scrolling and window/level drags draw the latest state once per event-loop turn.
        self.frames = FrameScheduler(self)
        self._build_layout()
        self._build_status_bar()
        self._build_menus()
        self._build_editing()
        # The 3D view waits while the user paints, and rebuilds its surfaces once edits pause.
        self.editing.gestureChanged.connect(self.view3d.set_busy)
        self.editing.settled.connect(self.view3d.segmentation_changed)
        self._build_workflow()
        self.browser = install_study_browser(self, self.open_series, self.open_path,
                                             self.show_error)
        # The AI's probability overlay and unsure regions: a dock under the study browser.
        self.confidence = install_confidence(self)
        install_viewer_options(self)  # layouts, overlay style, auto window, saved geometry
        for widget in self.views.values():
            widget.crosshairRequested.connect(
                lambda world, source=widget: self.set_crosshair(world, source=source))
            widget.hovered.connect(self._show_readout)
            widget.windowLevelRequested.connect(self.set_window_level)

    # -- construction ----------------------------------------------------------------------
    def _read_presets(self) -> list[WindowLevel]:
        try:
            return load_presets()
        except (OSError, ValueError, KeyError) as exc:
            self.last_error = f"window/level presets not loaded: {exc}"
            return []

    def _build_layout(self) -> None:
        self.view3d = self.panel_3d = View3DPanel()
        self.view_layout = ViewLayout([self.views[Orientation.AXIAL],
                                       self.views[Orientation.CORONAL],
                                       self.views[Orientation.SAGITTAL], self.view3d])
        self.setCentralWidget(self.view_layout)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.readout = QLabel("")
        # A fixed size: a label whose size may change relays out the whole main window (and
        # animates its docks) whenever its text does, on every mouse move over a view (0.4 ms
        # per move, measured). _show_readout widens it when a text needs more.
        self.readout.setFixedSize(420, self.readout.sizeHint().height())
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setMaximumWidth(200)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.clicked.connect(self.cancel_loading)
        for w in (self.progress_bar, self.cancel_button):
            w.hide()
            bar.addPermanentWidget(w)
        bar.addPermanentWidget(self.readout)
        # A long message (a refusal with its reason) is clipped where the readout begins;
        # hovering the bar shows it whole.
        # (A Python callable: setToolTip is no Qt slot, and PySide warns on connecting it.)
        bar.messageChanged.connect(lambda text: bar.setToolTip(text))

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        keys = QKeySequence
        items: list[tuple[str, Callable[[], Any], QKeySequence]] = [
            ("&Open image file...", self._ask_open_file, keys(keys.StandardKey.Open)),
            ("Open &DICOM folder...", self._ask_open_folder, keys("Ctrl+D")),
            ("Open &labels...", self._ask_open_labels, keys("Ctrl+L")),
            ("Save &screenshot...", self._ask_screenshot, keys("Ctrl+Shift+S")),
            ("&Quit", self.close, keys(keys.StandardKey.Quit)),
        ]
        for text, slot, shortcut in items:
            action = QAction(text, self)
            action.setShortcut(shortcut)
            action.triggered.connect(slot)
            file_menu.addAction(action)
        view_menu = self.menuBar().addMenu("&View")
        for n, preset in enumerate(self.presets):
            action = QAction(f"{preset.name}  (W {preset.width:g} / L {preset.level:g})", self)
            action.setShortcut(QKeySequence(str(n + 1)))
            action.triggered.connect(lambda _=False, p=preset: self.apply_preset(p.name))
            view_menu.addAction(action)
        overlay = QAction("Show &labels", self, checkable=True, checked=True)
        overlay.setShortcut(QKeySequence("L"))
        overlay.toggled.connect(self.set_labels_visible)
        view_menu.addSeparator()
        view_menu.addAction(overlay)

    def _build_editing(self) -> None:
        """Editing tools, segment list, Edit/Tools menus, crash recovery (ui/tool_panel.py)."""
        from medseg_gui.ui.tool_panel import install_editing

        (self.editing, self.edit_actions, self.tool_panel, self.segment_panel,
         self.recovery) = install_editing(self)

    def _build_workflow(self) -> None:
        """Segment tumour, File > Export... / Send to training, and the training queue dock."""
        from medseg_gui.ui.export_dialog import install_export
        from medseg_gui.ui.queue_panel import install_queue_panel
        from medseg_gui.ui.segment_action import install_segment_action

        self.segment_action = install_segment_action(self)
        self.export_action = install_export(self)
        self.queue_panel = install_queue_panel(self)
        from medseg_gui.ui.pacs_browser import install_pacs_browser  # File > PACS...
        self.pacs = install_pacs_browser(self)
        from medseg_gui.ui.segment_tools_menu import install_segment_tools
        self.segment_tools = install_segment_tools(self)
        from medseg_gui.ui.segment_stats import install_segment_stats  # beside Segments
        self.segment_stats = install_segment_stats(self)

    def recover_session(self, folder: str | Path) -> bool:
        """Restore an unfinished editing session's label map onto the loaded study."""
        return self.recovery.recover_session(folder)

    def confirm_replace_edits(self, force: bool = False) -> bool:
        """Whether the edited segmentation may be replaced: asks (False headless unless
        ``force``), so that the AI or loading labels never silently replace corrections."""
        from medseg_gui.ui.recovery import confirm_replace

        return confirm_replace(self, force)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cancel_loading()
        self.segment_action.shutdown()
        self.view3d.cancel_build()
        release_vtk_windows(self)
        super().closeEvent(event)

    # -- loading ---------------------------------------------------------------------------
    def open_path(self, path: str | Path, labels: str | Path | None = None) -> None:
        """Load a study (and optionally a label image) in the background, then show it.

        A folder (with the default loader) is indexed by the study browser first, which then
        loads its largest image series.
        """
        if self._loader is _default_loader and Path(path).is_dir():
            self.browser.open_folder(path, auto_load=True, labels=labels)
            return
        loader = self._loader

        def work(progress: Progress) -> tuple[Volume, Segmentation | None]:
            volume = loader(path, scaled(progress, 0.0, 0.9 if labels else 1.0))
            return volume, load_mask(labels, volume, scaled(progress, 0.9, 1.0)) \
                if labels else None

        self._start_load(work, str(path), self._on_loaded)

    def open_series(self, entry: SeriesEntry, labels: str | Path | None = None) -> None:
        """Load one series of the study browser's index in the background."""
        root = self.browser.index.root if self.browser.index is not None else None
        self._start_load(series_work(entry, labels, source=root), entry.label, self._on_loaded)

    def _start_load(self, work: Callable[[Progress], Any], what: str,
                    finished: Callable[[Task, Any], None]) -> None:
        """Run ``work`` as the one loading task: a study or labels load still running is
        cancelled first, so two loaders never race to replace what is shown."""
        if self._task is not None:
            self._task.cancel()
        task = Task(work)
        task.signals.progress.connect(self._on_progress)
        task.signals.finished.connect(finished)
        task.signals.failed.connect(self._on_failed)
        task.signals.cancelled.connect(self._on_cancelled)
        self._task = task
        self.progress_bar.setValue(0)
        self.progress_bar.show()
        self.cancel_button.show()
        self.statusBar().showMessage(f"Loading {what} ...")
        QThreadPool.globalInstance().start(task)

    def open_labels(self, path: str | Path) -> None:
        """Load a segmentation file in the background and overlay it on the current study."""
        volume = self.volume
        if volume is None:
            self.show_error(f"{path}: open a study before its segmentation")
            return
        # A newer load cancels this one; load_mask stops at its next step (not at its end).
        self._start_load(lambda progress: load_mask(path, volume, progress), Path(path).name,
                         self._on_labels_loaded)

    def _on_labels_loaded(self, task: Task, seg: Segmentation) -> None:
        if self._finish_task(task):
            self.set_segmentation(seg)

    def cancel_loading(self) -> None:
        if self._task is not None:
            self._task.cancel()

    @property
    def loading(self) -> bool:
        return self._task is not None

    def _finish_task(self, task: Task) -> bool:
        """Whether ``task`` is still the current one (a superseded load is ignored)."""
        if task is not self._task:
            return False
        self._task = None
        self.progress_bar.hide()
        self.cancel_button.hide()
        return True

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress_bar.setValue(int(fraction * 1000))
        if message:
            self.statusBar().showMessage(message)

    def _on_loaded(self, task: Task, result: tuple[Volume, Segmentation | None]) -> None:
        if not self._finish_task(task):
            return
        volume, seg = result
        self.set_volume(volume)
        self.set_segmentation(seg)
        note = f" ({len(volume.warnings)} warning(s): {volume.warnings[0]})" if volume.warnings \
            else ""
        self.statusBar().showMessage(f"Loaded {volume.source or 'study'}{note}", 10000)
        self.studyLoaded.emit(volume)

    def _on_failed(self, task: Task, exc: BaseException) -> None:
        if not self._finish_task(task):
            return
        self.show_error(str(exc) or type(exc).__name__)

    def _on_cancelled(self, task: Task) -> None:
        if self._finish_task(task):
            self.statusBar().showMessage("Loading cancelled", 5000)

    def show_error(self, message: str) -> None:
        """Report a problem the user can fix: status bar, and a message box unless headless."""
        self.last_error = message
        log.warning("shown to the user: %s", message)
        self.statusBar().showMessage(message)
        self.loadFailed.emit(message)
        if self.dialogs:
            QMessageBox.warning(self, "Cannot open", message)

    # -- state -----------------------------------------------------------------------------
    def set_volume(self, volume: Volume) -> None:
        """Show ``volume`` in every view, centred, with a window suited to its modality."""
        self.volume = volume
        for widget in self.views.values():
            widget.view.set_volume(volume)
            widget.view.set_labels(None)
        self.segmentation = None
        self.editing.set_segmentation(None)
        self.view3d.set_volume(volume)
        info = volume.info
        title = " - ".join(x for x in (info.patient_name or info.patient_id,
                                       info.series_description) if x)
        self.setWindowTitle(f"medseg-gui - {title}" if title else "medseg-gui")
        wl = auto_window(volume.array, volume.modality)
        self.set_window_level(wl.width, wl.level)
        self.set_crosshair(volume_center(volume.geometry))
        # Showing a new study is a pause the user expects: collect the garbage now and move
        # every object that exists (modules, widgets, this study) out of the cycle collector's
        # way. Its full collections scanned ~160k objects in 64-78 ms, and one falling inside a
        # brush stroke was a 70-110 ms frame; now they scan only what was made since.
        gc.collect()
        gc.freeze()

    def set_segmentation(self, segmentation: Segmentation | None, force: bool = False) -> bool:
        """Overlay a label map (any grid: it is resliced on its own geometry) and edit it.

        Returns False (and keeps the current one) when it holds edits and
        :meth:`confirm_replace_edits` says no.
        """
        if segmentation is not self.segmentation and not self.confirm_replace_edits(force):
            self.statusBar().showMessage("Kept the edited segmentation", 10000)
            return False
        self.segmentation = segmentation
        self.editing.set_segmentation(segmentation)
        for widget in self.views.values():
            widget.view.set_labels(segmentation)
        self.view3d.set_segmentation(segmentation)
        self.render_all()
        return True

    def set_labels_visible(self, visible: bool) -> None:
        for widget in self.views.values():
            widget.view.set_labels(self.segmentation if visible else None)
        self.render_all()

    def set_crosshair(self, world: Any, source: SliceViewWidget | None = None) -> None:
        """Move the shared crosshair (LPS mm); every view follows it.

        With a ``source`` (the view the user scrolled or clicked in) the views draw on the next
        turn of the event loop (see :mod:`medseg_gui.ui.frame_scheduler`): ``source`` and every
        view whose plane moved, and where only the crosshair line moved, once the user pauses.
        Without one (the program moved it: a study loaded, a region chosen) every view draws
        before this returns.
        """
        self.crosshair = np.asarray(world, dtype=np.float64)
        for widget in self.views.values():
            before = widget.view.slice_index
            widget.view.set_crosshair(self.crosshair)
            moved = widget.view.slice_index != before
            self.frames.request(widget, changed=source is None or widget is source or moved)
        self.view3d.set_crosshair(self.crosshair)
        self._show_readout(self.crosshair)
        if source is None:
            self.frames.draw_changed()

    def set_window_level(self, width: float, level: float) -> None:
        for widget in self.views.values():
            widget.view.set_window_level(width, level)
            self.frames.request(widget)

    def apply_preset(self, name: str) -> None:
        """Apply the window/level preset called ``name`` (from the presets JSON)."""
        for preset in self.presets:
            if preset.name.lower() == name.lower():
                self.set_window_level(preset.width, preset.level)
                return
        raise KeyError(f"no window/level preset {name!r}")

    def render_all(self) -> None:
        """Draw every slice view now (and drop their pending requests)."""
        for widget in self.views.values():
            self.frames.cancel(widget)
            widget.render_view()

    def readout_text(self, world: Any) -> str:
        """``HU``/value, voxel index and LPS position of a point, as the status bar shows it."""
        if self.volume is None or world is None:
            return ""
        ijk, value = probe(self.volume.array, self.volume.geometry, world)
        x, y, z = (float(v) for v in world)
        pos = f"LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm"
        if ijk is None or value is None:
            return f"outside   {pos}"
        unit = "HU" if self.volume.modality.upper() == "CT" else "value"
        label = ""
        if self.segmentation is not None:
            lijk, lv = probe(self.segmentation.labelmap, self.segmentation.geometry, world)
            if lijk is not None and lv:
                names = {seg.label: seg.name for seg in self.segmentation.segments}
                label = f"   {names.get(int(lv), f'label {int(lv)}')}"
        return f"{unit} {value:g}   voxel (i {ijk[0]}, j {ijk[1]}, k {ijk[2]})   {pos}{label}"

    def _show_readout(self, world: Any) -> None:
        text = self.readout_text(world if world is not None else self.crosshair)
        needed = self.readout.fontMetrics().horizontalAdvance(text) + 8
        if needed > self.readout.width():
            self.readout.setFixedWidth(needed)
        self.readout.setText(text)

    # -- files and screenshots ----------------------------------------------------------------
    def _ask_open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open image", "", "Images (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd *.dcm);;"
            "All files (*)")
        if path:
            self.open_path(path)

    def _ask_open_folder(self) -> None:
        self.browser.ask_open_folder()

    def _ask_open_labels(self) -> None:
        if self.volume is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open labels", "", LABELS_FILTER)
        if path:
            self.open_labels(path)

    def _ask_screenshot(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", "screenshot.png",
                                              "PNG (*.png)")
        if path:
            self.save_screenshot(path)

    def grab_window(self) -> QPixmap:
        """The whole window as a pixmap, slice views included.

        ``QWidget.grab`` cannot read native OpenGL children, so each view's own frame buffer
        is painted over its place in the grab.
        """
        pixmap = self.grab()
        painter = QPainter(pixmap)
        ratio = pixmap.devicePixelRatio()
        for widget in [*self.views.values(), self.view3d.vtk]:
            if not widget.isVisible():
                continue
            rgb = widget.capture()
            h, w, _ = rgb.shape
            image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            image.setDevicePixelRatio(ratio)
            painter.drawImage(widget.mapTo(self, QPoint(0, 0)), image)
        painter.end()
        return pixmap

    def save_screenshot(self, path: str | Path) -> bool:
        """Save :meth:`grab_window` as PNG; False (and a status message) when it fails."""
        ok = self.grab_window().save(str(path), "PNG")
        if not ok:
            self.show_error(f"{path}: could not write the screenshot")
        return ok
