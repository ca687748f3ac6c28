"""``medseg segment`` and ``medseg build-engine``: registered by :func:`add_commands`.

User errors (a bad file, a missing model or backend, out of memory everywhere) become
:class:`LoadError`, which ``medseg_gui.cli`` prints as one line and turns into exit code 2.
A study outside the model's intended use (:mod:`~medseg_gui.inference.guard`), checked before
and after inference, gets one warning line and exit code 3 with nothing written, unless
``--force``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medseg_gui.core.progress import TerminalProgress
from medseg_gui.inference.backend import BACKENDS
from medseg_gui.io.errors import LoadError

EXIT_OUTSIDE_USE = 3


def cmd_segment(args: argparse.Namespace) -> int:
    import numpy as np

    from medseg_gui.core.volume import Volume
    from medseg_gui.inference.backend import open_backends
    from medseg_gui.inference.guard import check_result, check_study, intended_use, warning_line
    from medseg_gui.inference.models import resolve_model
    from medseg_gui.inference.pipeline import InferenceError, segment
    from medseg_gui.io.imagefile import write_image
    from medseg_gui.io.loader import load_volume
    from medseg_gui.io.masks import check_mask_output, save_mask
    from medseg_gui.io.output import check_output

    out = check_mask_output(args.output, force=args.force)
    if args.probability:
        check_output(args.probability, force=args.force)
    card = resolve_model(args.model)
    progress = TerminalProgress()
    volume = load_volume(args.input, progress=progress)
    use = intended_use(card)

    def outside(reasons: list[str]) -> bool:
        """Print the warning line; True when that ends the command (no --force)."""
        if not reasons or use is None:
            return False
        progress.clear()
        then = ("segmented anyway (--force)" if args.force else
                "no mask written; pass --force to segment it anyway, or outline the lesion "
                "with `medseg prompt`")
        print(f"medseg: warning: {args.input}: {warning_line(card.ref, use, reasons)}; {then}",
              file=sys.stderr)
        return not args.force

    if use is not None and outside(check_study(volume, use)):
        return EXIT_OUTSIDE_USE
    backends = open_backends(card, args.backend, device=args.device, precision=args.precision,
                             gpus=args.gpus)
    try:
        result = segment(volume, card, backends, batch_size=args.batch,
                         skip_air=not args.no_skip_air, progress=progress)
    except InferenceError as exc:
        raise LoadError(args.input, str(exc)) from exc
    finally:
        for backend in backends:
            backend.close()
    seg = result.segmentation
    if use is not None and outside(check_result(volume, seg.labelmap, use)):
        return EXIT_OUTSIDE_USE
    save_mask(seg, out)
    if args.probability:
        prob = result.probability.astype(np.float32)  # NIfTI readers rarely take float16
        write_image(Volume(prob, seg.geometry, info=volume.info), Path(args.probability))
    progress.clear()
    ml = sum(seg.volumes_ml().values())
    print(f"wrote {out}: {ml:.1f} ml segmented by {card.ref}; {result.summary()}")
    return 0


def cmd_build_engine(args: argparse.Namespace) -> int:
    from medseg_gui.inference.backend import cuda_available, module_available
    from medseg_gui.inference.models import resolve_model

    if not module_available("tensorrt"):
        raise LoadError("tensorrt", "TensorRT is not installed; install the 'tensorrt' extra")
    if not cuda_available():
        raise LoadError("cuda", "building a TensorRT engine needs a CUDA GPU")
    card = resolve_model(args.model)
    calibration = None
    if args.precision == "int8" and args.calibrate:
        from medseg_gui.inference.calibration import calibration_batches
        from medseg_gui.io.loader import load_volume

        studies = (load_volume(p) for p in args.calibrate)
        calibration = calibration_batches(studies, card, args.opt_batch)
    from medseg_gui.inference.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(card, device="cuda:0", precision=args.precision,
                              max_batch=args.max_batch, opt_batch=args.opt_batch,
                              calibration=calibration)
    print(f"{'built' if backend.built else 'cached'} TensorRT {args.precision} engine for "
          f"{card.ref} (batch 1..{args.max_batch}, best at {args.opt_batch})")
    backend.close()
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``segment`` and ``build-engine`` on ``medseg``'s subparsers."""
    p = subparsers.add_parser("segment", help="segment the tumour in a study with an AI model")
    p.add_argument("input", help="DICOM folder or file, .nii.gz, .nrrd or .mha")
    p.add_argument("-o", "--output", required=True, help="label map to write (.nii.gz, ...)")
    p.add_argument("--model", help="ID[:VERSION] under engines/, or a model folder "
                   "(default: sts-tumour-unet, highest version)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="auto: TensorRT with a GPU, else ONNX Runtime CUDA, torch CUDA, CPU")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: the GPU when there is one")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"),
                   help="default: fp16 on a GPU, fp32 on the CPU")
    p.add_argument("--gpus", type=int,
                   help="split the windows over this many GPUs (default: every visible GPU)")
    p.add_argument("--probability", help="also write the tumour probability (float32 image)")
    p.add_argument("--batch", type=int, default=8, help="windows per network call (default 8)")
    p.add_argument("--no-skip-air", action="store_true", help="run windows of air too")
    p.add_argument("--force", action="store_true",
                   help="overwrite existing output files, and segment a study outside the "
                   "model's intended use (otherwise: a warning and exit code 3)")
    p.set_defaults(func=cmd_segment)

    p = subparsers.add_parser("build-engine", help="build and cache a model's TensorRT engine")
    p.add_argument("--model", help="ID[:VERSION] or a model folder (default: sts-tumour-unet)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    p.add_argument("--calibrate", nargs="+", default=[],
                   help="CT studies whose windows calibrate INT8 (kept in a calibration cache)")
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--opt-batch", type=int, default=8)
    p.set_defaults(func=cmd_build_engine)
