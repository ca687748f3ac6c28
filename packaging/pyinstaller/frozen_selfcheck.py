"""``medseg -m frozen_selfcheck [STUDY]``: the GUI's "Segment tumour" path, without the GUI.

Shipped in the bundle for packaging/smoke_test.sh. The GUI segments in a ``spawn`` child process
(:class:`medseg_gui.inference.worker.InferenceWorker`) that gets the voxels through shared
memory; in a frozen app that child is the executable itself, started with
``--multiprocessing-fork``, which only works when the launcher calls ``freeze_support()``
(frozen_main.py does). This runs that path on the CPU with the model the GUI would take (the
registry's active version) and exits 0 when the job finished with a non-empty mask.
"""

from __future__ import annotations

import sys

from medseg_gui.inference.models import DEFAULT_MODEL, resolve_model
from medseg_gui.inference.worker import InferenceWorker, JobStatus
from medseg_gui.io.loader import load_volume
from medseg_gui.resources import DEMO_STUDY
from medseg_gui.inference.registry import ModelRegistry


def main(argv: list[str]) -> int:
    study = argv[0] if argv else str(DEMO_STUDY)
    volume = load_volume(study)
    active = ModelRegistry().active(DEFAULT_MODEL)
    folder = active.folder if active is not None else resolve_model(DEFAULT_MODEL).folder
    worker = InferenceWorker()
    try:
        job = worker.wait(worker.submit(volume, folder, device="cpu"), timeout=600)
    finally:
        worker.shutdown()
    if job.status != JobStatus.DONE or job.segmentation is None:
        print(f"selfcheck: the inference worker ended {job.status}: {job.error}", file=sys.stderr)
        return 1
    voxels = int((job.segmentation.labelmap > 0).sum())
    print(f"selfcheck: the GUI's inference worker segmented {voxels} voxels "
          f"({job.report.get('summary', '')})")
    return 0 if voxels > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
