"""The background worker: results through shared memory, cancel, a killed process, supersede."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from medseg_gui.core.jobs import JobStatus
from medseg_gui.core.review import ReviewStatus
from medseg_gui.core.segmentation import Segment
from medseg_gui.inference.confidence import HIGH, LOW, UncertainRegion, uncertain_regions
from medseg_gui.inference.model_card import ModelCard
from medseg_gui.inference.pipeline import segment
from medseg_gui.inference.torch_backend import TorchBackend
from medseg_gui.inference.worker import InferenceWorker
from tests.test_inference import ct_like, make_card


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> ModelCard:
    return make_card(tmp_path_factory.mktemp("worker") / "tiny-unet" / "0.1.0")


def _wait_running(worker: InferenceWorker, job_id: int, timeout: float = 120) -> None:
    """Until the child has reported progress (torch imported, model loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.job_id == job_id and e.fraction > 0.1 for e in worker.poll()):
            return
        time.sleep(0.05)
    raise AssertionError("the job never reported progress")


def test_worker_result_equals_in_process_result(card: ModelCard) -> None:
    volume = ct_like()
    worker = InferenceWorker()
    job = worker.wait(worker.submit(volume, card.folder, backend="torch", device="cpu"), 180)
    assert job.status is JobStatus.DONE, job.error
    expected = segment(volume, card, TorchBackend(card))
    assert job.probability is not None and job.segmentation is not None
    assert np.array_equal(job.probability, expected.probability)
    assert np.array_equal(job.segmentation.labelmap, expected.segmentation.labelmap)
    # The same segments, drafts by the same user; the review time is each run's own clock.
    def unclocked(segments: list[Segment]) -> list[Segment]:
        return [dataclasses.replace(s, review=dataclasses.replace(s.review, at=""))
                if s.review is not None else s for s in segments]

    ours, theirs = job.segmentation.segments, expected.segmentation.segments
    assert unclocked(ours) == unclocked(theirs)
    assert all(s.review is not None and s.review.status is ReviewStatus.DRAFT for s in ours)
    assert job.report["backend"] == "torch" and "windows" in job.message
    # The low-confidence regions come with the report, as the GUI thread would compute them.
    regions = uncertain_regions(job.probability, volume.geometry)
    assert [UncertainRegion.from_dict(d) for d in job.report["uncertain"]] == regions
    assert job.report["uncertain_band"] == [LOW, HIGH]


def test_killed_process_is_an_error_not_a_hang(card: ModelCard) -> None:
    worker = InferenceWorker()
    job = worker.submit(ct_like((120, 200, 200)), card.folder, backend="torch", device="cpu")
    _wait_running(worker, job.job_id)
    pid = worker.pid(job.job_id)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    worker.wait(job, 30)
    assert job.status is JobStatus.ERROR
    assert "died" in job.error and "-9" in job.error


def test_newer_request_for_the_study_cancels_the_older(card: ModelCard) -> None:
    worker = InferenceWorker()
    big = ct_like((120, 200, 200))
    old = worker.submit(big, card.folder, study_key="study-1", backend="torch", device="cpu")
    _wait_running(worker, old.job_id)
    new = worker.submit(ct_like(), card.folder, study_key="study-1", backend="torch",
                        device="cpu")
    worker.wait(old, 30)
    assert old.status is JobStatus.CANCELLED
    worker.wait(new, 180)
    assert new.status is JobStatus.DONE, new.error
    worker.shutdown()


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    worker = InferenceWorker()
    job = worker.wait(worker.submit(ct_like(), tmp_path, backend="torch", device="cpu"), 180)
    assert job.status is JobStatus.ERROR and "no model card" in job.error
