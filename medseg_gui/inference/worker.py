"""Segmentation in a separate process, so a crash or a GPU fault cannot take the GUI with it.

:class:`InferenceWorker` starts one ``spawn`` process per job. The study's voxels go to it
through :mod:`multiprocessing.shared_memory` (no pickling of hundreds of MB), and the results
come back the same way: the parent allocates the probability (float16) and label-map blocks, the
child fills them. Progress, the final report and errors travel over a per-job queue. Cancel sets
an event the child's progress callback reads; a child that ignores it is terminated after a
grace period. A child that dies (killed, segfault, driver reset) is noticed by :meth:`poll`,
which marks the job ``ERROR`` with its exit code: nothing hangs. Submitting a new job for a
study cancels the older job for that study.

Before inference the child checks the study against the model card's intended use
(:mod:`~medseg_gui.inference.guard`): outside it, the job ends as ``OUTSIDE_USE`` with the
reasons in its report and the model is not run, unless the job was submitted with
``check_use=False``; after inference the result's reasons (a huge or air-bordered mask) go into
the report as ``outside_use``, for the GUI to ask before showing the draft.

The child also finds where the model is unsure
(:func:`~medseg_gui.inference.confidence.uncertain_regions`, 0.03 s for a sarcoma's rim on a
512x512x300 CT) and reports them as ``uncertain`` (``UncertainRegion.to_dict`` rows, largest
first) with the band as ``uncertain_band``, so the GUI thread never scans the probability map.

Qt-free on purpose: the GUI calls :meth:`InferenceWorker.poll` from a timer (or a thread) and
turns the returned :class:`JobEvent` s into signals.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import queue
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg_gui.core.geometry import Geometry
from medseg_gui.core.jobs import JobStatus
from medseg_gui.core.segmentation import Segment, Segmentation

CANCEL_GRACE_S = 5.0


@dataclass
class JobEvent:
    """Something that happened to a job (what :meth:`InferenceWorker.poll` returns)."""

    job_id: int
    status: JobStatus
    fraction: float = 0.0
    message: str = ""


@dataclass
class SegmentJob:
    """One request. ``probability``/``segmentation`` are set once ``status`` is ``DONE``."""

    job_id: int
    study_key: str
    status: JobStatus = JobStatus.SUBMITTED
    fraction: float = 0.0
    message: str = ""
    error: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    probability: npt.NDArray[np.float16] | None = None
    segmentation: Segmentation | None = None

    @property
    def finished(self) -> bool:
        return self.status.finished


def _child(spec: dict[str, Any], events: Any, cancel: Any) -> None:
    """The job, in the child process. Everything it reports goes through ``events``."""
    blocks: list[shared_memory.SharedMemory] = []
    try:
        from medseg_gui.core.progress import Cancelled
        from medseg_gui.core.volume import StudyInfo, Volume
        from medseg_gui.inference.backend import open_backends
        from medseg_gui.inference.confidence import HIGH, LOW, uncertain_regions
        from medseg_gui.inference.guard import (
            check_result,
            check_study,
            intended_use,
            warning_line,
        )
        from medseg_gui.inference.model_card import load_card
        from medseg_gui.inference.pipeline import segment

        def view(name: str, dtype: str) -> npt.NDArray[Any]:
            blocks.append(shared_memory.SharedMemory(name=name))
            return np.ndarray(spec["shape"], dtype=dtype, buffer=blocks[-1].buf)

        geometry = Geometry(**spec["geometry"])
        volume = Volume(view(spec["input"], spec["dtype"]).copy(), geometry,
                        StudyInfo(**spec["info"]))

        def progress(fraction: float, message: str) -> bool:
            events.put(("progress", fraction, message))
            return not cancel.is_set()

        card = load_card(spec["model_folder"])
        use = intended_use(card) if spec["check_use"] else None
        if use is not None:
            progress(0.0, f"checking the study against what {card.ref} was trained for")
            reasons = check_study(volume, use)
            if reasons:
                events.put(("outside", {"outside_use": reasons, "stage": "study",
                                        "model": card.ref,
                                        "summary": warning_line(card.ref, use, reasons)}))
                return
        backends = open_backends(card, spec["backend"], device=spec["device"])  # one per GPU
        try:
            result = segment(volume, card, backends, progress=progress)
        finally:
            for backend in backends:
                backend.close()
        view(spec["probability"], "float16")[...] = result.probability
        view(spec["labelmap"], spec["label_dtype"])[...] = result.segmentation.labelmap
        outside = check_result(volume, result.segmentation.labelmap, use) if use else []
        progress(1.0, "finding low-confidence regions")
        uncertain = uncertain_regions(result.probability, volume.geometry, LOW, HIGH)
        events.put(("done", {
            "segments": [s.to_dict() for s in result.segmentation.segments],
            "uncertain": [r.to_dict() for r in uncertain], "uncertain_band": [LOW, HIGH],
            "backend": result.backend, "precision": result.precision, "device": result.device,
            "summary": result.summary(), "messages": result.messages,
            **({"outside_use": outside, "stage": "result", "model": card.ref,
                "warning": warning_line(card.ref, use, outside)} if use and outside else {})}))
    except Cancelled:
        events.put(("cancelled",))
    except Exception as exc:
        events.put(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    finally:
        for block in blocks:
            block.close()


@dataclass
class _Running:
    job: SegmentJob
    process: Any
    events: Any
    cancel: Any
    blocks: dict[str, shared_memory.SharedMemory]
    shape: tuple[int, int, int]
    geometry: Geometry
    cancel_at: float | None = None


class InferenceWorker:
    """Runs segmentation jobs in child processes; see the module docstring.

    Typical GUI use::

        worker = InferenceWorker()
        job = worker.submit(volume, card.folder, study_key=study_uid)
        # every 100 ms: for event in worker.poll(): update the status bar / take job.segmentation
        worker.cancel(job.job_id)   # the Cancel button
        worker.shutdown()           # on exit
    """

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")
        self._ids = itertools.count(1)
        self._running: dict[int, _Running] = {}
        self.jobs: dict[int, SegmentJob] = {}
        # Children that reported their end but are still exiting (torch teardown takes up to a
        # second); reaped by poll() without waiting, so the GUI thread never blocks on a join.
        self._exiting: list[tuple[Any, float]] = []

    def submit(self, volume: Any, model_folder: str | Path, *, study_key: str = "",
               backend: str = "auto", device: str | None = None,
               check_use: bool = True) -> SegmentJob:
        """Start segmenting ``volume`` (a :class:`~medseg_gui.core.volume.Volume`).

        ``check_use=False`` skips the intended-use check of the study (the user confirmed).
        """
        key = study_key or volume.info.series_uid or volume.source
        for run in list(self._running.values()):
            if run.job.study_key == key:
                self.cancel(run.job.job_id)
        job = SegmentJob(next(self._ids), key)
        arr = np.ascontiguousarray(volume.array)
        label_dtype = "uint8"
        blocks = {
            "input": shared_memory.SharedMemory(create=True, size=max(arr.nbytes, 1)),
            "probability": shared_memory.SharedMemory(create=True, size=max(arr.size * 2, 1)),
            "labelmap": shared_memory.SharedMemory(create=True, size=max(arr.size, 1)),
        }
        np.ndarray(arr.shape, arr.dtype, buffer=blocks["input"].buf)[...] = arr
        g = volume.geometry
        spec = {"shape": arr.shape, "dtype": arr.dtype.str, "label_dtype": label_dtype,
                "geometry": {"shape": g.shape, "spacing": g.spacing, "origin": g.origin,
                             "direction": g.direction},
                "info": {"modality": volume.info.modality, "body_part": volume.info.body_part},
                "model_folder": str(model_folder), "backend": backend, "device": device,
                "check_use": check_use,
                **{name: block.name for name, block in blocks.items()}}
        events, cancel = self._ctx.Queue(), self._ctx.Event()
        process = self._ctx.Process(target=_child, args=(spec, events, cancel), daemon=True,
                                    name=f"medseg-inference-{job.job_id}")
        process.start()
        job.status = JobStatus.RUNNING
        self.jobs[job.job_id] = job
        self._running[job.job_id] = _Running(job, process, events, cancel, blocks,
                                             tuple(arr.shape), g)
        return job

    def cancel(self, job_id: int) -> None:
        """Ask a job to stop; it is terminated if it has not stopped after a grace period."""
        run = self._running.get(job_id)
        if run is not None and run.cancel_at is None:
            run.cancel.set()
            run.cancel_at = time.monotonic()

    def poll(self) -> list[JobEvent]:
        """Drain every job's messages, notice dead processes, finish jobs. Never blocks."""
        out: list[JobEvent] = []
        self._reap()
        for job_id, run in list(self._running.items()):
            out += self._drain(run)
            if run.job.finished:
                self._finish(job_id)
                continue
            if not run.process.is_alive():
                out += self._drain(run)  # a last message may have arrived as it exited
                if not run.job.finished:
                    code = run.process.exitcode
                    self._set(run, JobStatus.ERROR, f"the inference process died (exit code "
                              f"{code}) before finishing; the study and edits are unaffected")
                    out.append(JobEvent(job_id, JobStatus.ERROR, message=run.job.error))
                self._finish(job_id)
            elif run.cancel_at is not None and time.monotonic() - run.cancel_at > CANCEL_GRACE_S:
                run.process.terminate()
                self._set(run, JobStatus.CANCELLED, "cancelled")
                out.append(JobEvent(job_id, JobStatus.CANCELLED, message="cancelled"))
                self._finish(job_id)
        return out

    def pid(self, job_id: int) -> int | None:
        """The process id of a running job (for diagnostics)."""
        run = self._running.get(job_id)
        return None if run is None else int(run.process.pid)

    def wait(self, job: SegmentJob, timeout: float = 600.0) -> SegmentJob:
        """Poll until ``job`` is finished (for the CLI and tests; the GUI polls instead)."""
        deadline = time.monotonic() + timeout
        while not job.finished:
            self.poll()
            if time.monotonic() > deadline:
                raise TimeoutError(f"inference job {job.job_id} still running after {timeout} s")
            time.sleep(0.05)
        return job

    def shutdown(self) -> None:
        for job_id, run in list(self._running.items()):
            run.process.terminate()
            run.process.join(5)
            self._set(run, JobStatus.CANCELLED, "worker shut down")
            self._finish(job_id)
        for process, _since in self._exiting:
            process.join(5)
        self._exiting = []

    # -- internals ----------------------------------------------------------------------
    def _drain(self, run: _Running) -> list[JobEvent]:
        out = []
        while not run.job.finished:
            try:
                msg = run.events.get_nowait()
            except (queue.Empty, EOFError, OSError):
                break
            job = run.job
            if msg[0] == "progress":
                job.fraction, job.message = float(msg[1]), str(msg[2])
                out.append(JobEvent(job.job_id, JobStatus.RUNNING, job.fraction, job.message))
            elif msg[0] == "done":
                self._collect(run, msg[1])
                out.append(JobEvent(job.job_id, JobStatus.DONE, 1.0, msg[1]["summary"]))
            elif msg[0] == "outside":
                job.report = msg[1]
                self._set(run, JobStatus.OUTSIDE_USE, msg[1]["summary"])
                out.append(JobEvent(job.job_id, JobStatus.OUTSIDE_USE, 1.0, job.message))
            elif msg[0] == "cancelled":
                self._set(run, JobStatus.CANCELLED, "cancelled")
                out.append(JobEvent(job.job_id, JobStatus.CANCELLED, message="cancelled"))
            else:
                self._set(run, JobStatus.ERROR, str(msg[1]))
                out.append(JobEvent(job.job_id, JobStatus.ERROR, message=job.error))
        return out

    def _collect(self, run: _Running, report: dict[str, Any]) -> None:
        prob = np.ndarray(run.shape, np.float16, buffer=run.blocks["probability"].buf).copy()
        labels = np.ndarray(run.shape, np.uint8, buffer=run.blocks["labelmap"].buf).copy()
        segments = [Segment.from_dict(d) for d in report["segments"]]
        run.job.probability = prob
        run.job.segmentation = Segmentation(labels, run.geometry, segments)
        run.job.report = report
        run.job.fraction, run.job.message = 1.0, report["summary"]
        run.job.status = JobStatus.DONE

    @staticmethod
    def _set(run: _Running, status: JobStatus, text: str) -> None:
        run.job.status = status
        run.job.message = text
        if status is JobStatus.ERROR:
            run.job.error = text

    def _reap(self) -> None:
        """Collect exited children (``is_alive`` reaps); terminate ones stuck exiting."""
        still = []
        for process, since in self._exiting:
            if process.is_alive():
                if time.monotonic() - since > CANCEL_GRACE_S:
                    process.terminate()
                still.append((process, since))
        self._exiting = still

    def _finish(self, job_id: int) -> None:
        run = self._running.pop(job_id)
        if run.process.is_alive():
            self._exiting.append((run.process, time.monotonic()))
        for block in run.blocks.values():
            block.close()
            block.unlink()
        run.events.close()
