"""The training queue: rows, files, hashes, orphans, and consistency under kill -9."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medseg_gui.core.geometry import Geometry
from medseg_gui.inference.model_card import sha256_file
from medseg_gui.io.imagefile import read_image
from medseg_gui.training.queue import CorrectionEffort, QueueStatus, TrainingQueue

GEOM = Geometry(shape=(8, 16, 12), spacing=(0.8, 0.8, 3.0), origin=(1.0, 2.0, 3.0))


def _case(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(-1000, 1000, GEOM.shape).astype(np.int16)
    mask = np.zeros(GEOM.shape, np.uint8)
    mask[2:6, 4:12, 3:9] = 1
    draft = np.zeros_like(mask)
    draft[2:6, 5:12, 3:10] = 1
    return image, mask, draft


def test_add_get_list_remove(medseg_home: Path) -> None:
    image, mask, draft = _case()
    effort = CorrectionEffort(10, 4, 0.9, 35.0)
    with TrainingQueue() as q:
        assert q.root == medseg_home / "data" / "queue"
        item = q.add(image, GEOM, mask, draft=draft, metadata={"patient": "P1"}, patient="P1",
                     model_ref="tumour:1.0", effort=effort, annotator="dr-a")
        assert item.id == 1 and item.status is QueueStatus.QUEUED
        assert item.effort == effort and item.model_ref == "tumour:1.0"
        assert item.draft_file is not None and item.draft_file.is_file()
        back = read_image(item.image_file)
        assert back.geometry.same_grid(GEOM)
        np.testing.assert_array_equal(back.array, image)
        np.testing.assert_array_equal(read_image(item.mask_file).array, mask)
        meta = json.loads((item.folder / "meta.json").read_text())
        assert meta["case_id"] == item.case_id and meta["patient"] == "P1"
        for name, sha in item.files.items():
            assert sha256_file(item.folder / name) == sha
        second = q.add(image, GEOM, mask, metadata={})
        assert second.draft_file is None and second.effort == CorrectionEffort()
        assert [i.id for i in q.items()] == [1, 2]
        q.set_status(1, QueueStatus.USED)
        assert [i.id for i in q.items(QueueStatus.QUEUED)] == [2]
        assert q.get(1).updated >= q.get(1).created
        q.remove(1)
        assert not item.folder.exists()
        with pytest.raises(KeyError):
            q.get(1)
        assert q.verify() == []
    # a second open sees the same rows
    with TrainingQueue() as q:
        assert [i.id for i in q.items()] == [2]


def test_rejects_mask_off_grid() -> None:
    image, mask, _ = _case()
    with TrainingQueue() as q, pytest.raises(ValueError, match="image grid"):
        q.add(image, GEOM, mask[:-1], metadata={})
    with TrainingQueue() as q:
        assert q.items() == [] and list(q.cases_dir.iterdir()) == []


def test_orphan_folder_removed_at_open_and_tamper_detected() -> None:
    image, mask, _ = _case()
    with TrainingQueue() as q:
        item = q.add(image, GEOM, mask, metadata={})
        orphan = q.cases_dir / "deadbeef00000000"
        orphan.mkdir()
        (orphan / "image.nii.gz").write_bytes(b"half a file")
    with TrainingQueue() as q:
        assert q.removed_orphans == ["deadbeef00000000"]
        assert not orphan.exists()
        item.mask_file.write_bytes(b"changed")
        assert q.verify() == [f"item {item.id}: mask.nii.gz missing or not matching its SHA-256"]


_CHILD = """
import itertools, sys
import numpy as np
from medseg_gui.core.geometry import Geometry
from medseg_gui.training.queue import TrainingQueue
g = Geometry(shape=(24, 48, 48), spacing=(1.0, 1.0, 2.0))
rng = np.random.default_rng()
q = TrainingQueue()
print("ready", flush=True)
for n in itertools.count():
    img = rng.integers(-1000, 1000, g.shape).astype(np.int16)
    q.add(img, g, (img > 500).astype(np.uint8), draft=(img > 400).astype(np.uint8),
          metadata={"n": n}, annotator="loop")
"""


def test_consistent_after_random_sigkills() -> None:
    rng = random.Random(1234)
    root = Path(os.environ["MEDSEG_HOME"]) / "data" / "queue"
    orphans = 0
    for _ in range(8):
        child = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE,
                                 cwd=Path(__file__).resolve().parent.parent)
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 0.6))
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        with TrainingQueue() as q:  # every reopen finds the queue consistent
            orphans += len(q.removed_orphans)
            assert q.verify() == []
    assert orphans >= 1  # some kills did land between a case's files and its commit
    with TrainingQueue() as q:
        items = q.items()
        assert len(items) > 3  # the loop got some work done between kills
        assert q.verify() == []
        for item in items:
            assert set(item.files) == {"image.nii.gz", "mask.nii.gz", "draft.nii.gz",
                                       "meta.json"}
            # no temporary or extra file in a committed case
            assert sorted(p.name for p in item.folder.iterdir()) == sorted(item.files)
            json.loads((item.folder / "meta.json").read_text())
            assert read_image(item.image_file).shape == (24, 48, 48)
        # orphan folders of the killed adds are gone: every folder has a row
        assert {p.name for p in q.cases_dir.iterdir()} == {i.case_id for i in items}
    assert (root / "queue.sqlite").is_file()
