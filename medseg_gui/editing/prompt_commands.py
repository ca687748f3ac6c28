"""``medseg prompt``: the promptable model from the command line, through the editing rules.

It runs what the AI tool runs (:func:`medseg_gui.inference.interactive.predict`, then
:mod:`.ai_prompt` to put the result into a segment), so it lives beside those rules: with
``--mask`` the prompts refine segment ``--label`` of an existing segmentation and other segments
are never painted over (unless ``--overwrite-other``); without it the output holds one new
segment. Points are LPS millimetres, the coordinates the viewer's readout shows. Bad prompts
(outside the image, an empty box, nothing positive) end in one line and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from medseg_gui.inference.backend import BACKENDS
from medseg_gui.inference.models import DEFAULT_PROMPT_MODEL
from medseg_gui.io.errors import LoadError

MAX_SCRIBBLE_POINTS = 5000
COORDINATE_OPTIONS = ("--point", "--negative", "--box")
_COORDINATES = re.compile(r"^-?[\d.]+(,-?[\d.eE+-]+)+$")


def join_coordinates(argv: Sequence[str]) -> list[str]:
    """``--point -12.5,30,4`` as ``--point=-12.5,30,4``: LPS coordinates are often negative,
    and argparse would take the value for an option."""
    out: list[str] = []
    for token in argv:
        if out and out[-1] in COORDINATE_OPTIONS and _COORDINATES.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def scribbles_from(path: str, volume: Any) -> Any:
    """Prompts from a scribble image on the study's grid: voxels of 1 are a positive scribble,
    of 2 a negative one (at most :data:`MAX_SCRIBBLE_POINTS` points each, evenly taken)."""
    from medseg_gui.inference.prompts import Prompts
    from medseg_gui.io.imagefile import read_image

    img = read_image(path)
    if not img.geometry.same_grid(volume.geometry, tol=1e-2):
        img = img.resample(volume.geometry, interpolation="nearest")
    out = Prompts()
    for value, negative in ((1, False), (2, True)):
        kji = np.argwhere(np.rint(img.array) == value)
        if kji.size == 0:
            continue
        kji = kji[:: max(1, len(kji) // MAX_SCRIBBLE_POINTS)]
        world = volume.geometry.index_to_world(kji[:, ::-1].astype(np.float64))
        strokes = tuple(((float(p[0]), float(p[1]), float(p[2])),) for p in world)
        name = "negative scribble" if negative else "scribble"
        out = out.add(Prompts(negative_scribbles=strokes, names=(name,)) if negative
                      else Prompts(scribbles=strokes, names=(name,)))
    if out.empty:
        raise LoadError(path, "the scribble image holds no voxel of 1 (positive) or 2 (negative)")
    return out


def cmd_prompt(args: argparse.Namespace) -> int:
    from medseg_gui.core.review import Review, ReviewStatus
    from medseg_gui.core.segmentation import Segment, Segmentation, SegmentSource
    from medseg_gui.editing.ai_prompt import find_object, prompt_change
    from medseg_gui.editing.constraints import Overwrite, PaintConstraint
    from medseg_gui.inference.backend import open_backend
    from medseg_gui.inference.interactive import predict
    from medseg_gui.inference.models import resolve_model
    from medseg_gui.inference.prompts import Prompts, box, parse_box, parse_triple, point
    from medseg_gui.io.loader import load_volume
    from medseg_gui.io.masks import check_mask_output, save_mask

    out = check_mask_output(args.output, force=args.force)
    prompts = Prompts()
    for text in args.point or []:
        prompts = prompts.add(point(parse_triple(text, "--point")))
    for text in args.negative or []:
        prompts = prompts.add(point(parse_triple(text, "--negative"), negative=True))
    for text in args.box or []:
        b = parse_box(text)
        prompts = prompts.add(box(b.a, b.b))
    card = resolve_model(args.model or DEFAULT_PROMPT_MODEL)
    if not card.promptable:
        raise LoadError(card.folder, f"model {card.ref} is automatic, not promptable: use "
                        "medseg segment, or --model a promptable model")
    volume = load_volume(args.input)
    if args.scribble:
        prompts = prompts.add(scribbles_from(args.scribble, volume))
    row = Segment(args.label, args.name or card.labels[0].name, card.labels[0].color,
                  card.labels[0].category, card.labels[0].type, SegmentSource.SEMIAUTOMATIC,
                  card.ref, Review.now(ReviewStatus.DRAFT))  # the AI's, not yet reviewed
    if args.mask:
        from medseg_gui.io.masks import load_mask

        seg = load_mask(args.mask, volume)
        if not any(s.label == args.label for s in seg.segments):
            seg.segments.append(row)
    else:
        seg = Segmentation.empty(volume.geometry, [row])
    prior = find_object(seg.labelmap, args.label, prompts, volume.geometry)
    backend = open_backend(card, args.backend, device=args.device)
    try:
        result = predict(volume, card, backend, prompts, prior=prior)
    finally:
        backend.close()
    constraint = PaintConstraint(overwrite=Overwrite.ALL if args.overwrite_other
                                 else Overwrite.NONE)
    change, _inside = prompt_change(seg.labelmap, args.label, result, prior,
                                    name=prompts.describe(), constraint=constraint)
    change.write(seg)
    seg.segments[:] = [dataclasses.replace(s, source=SegmentSource.SEMIAUTOMATIC, model=card.ref)
                       if s.label == args.label else s for s in seg.segments]
    save_mask(seg, out)
    for message in result.messages:
        print(f"medseg: warning: {message}", file=sys.stderr)
    ml = seg.volumes_ml().get(args.label, 0.0)
    print(f"wrote {out}: segment {args.label} {ml:.1f} ml by {card.ref}; {result.summary()}")
    return 0


def add_commands(subparsers: Any) -> None:
    """Register ``prompt`` on ``medseg``'s subparsers."""
    p = subparsers.add_parser("prompt", help="segment the object the prompts point at with the "
                              "promptable model (points, boxes and scribbles in LPS mm)")
    p.add_argument("input", help="DICOM folder or file, .nii.gz, .nrrd or .mha")
    p.add_argument("-o", "--output", required=True, help="mask to write (.nii.gz or .seg.nrrd)")
    p.add_argument("--point", action="append", metavar="X,Y,Z",
                   help="a positive click (LPS mm); repeatable")
    p.add_argument("--negative", action="append", metavar="X,Y,Z",
                   help="a negative click (LPS mm); repeatable")
    p.add_argument("--box", action="append", metavar="X1,Y1,Z1,X2,Y2,Z2",
                   help="a box between two corners (LPS mm; flat along one axis: a rectangle "
                        "on one slice)")
    p.add_argument("--scribble", metavar="FILE",
                   help="scribble image on the study's grid: 1 = positive, 2 = negative")
    p.add_argument("--mask", metavar="PRIOR", help="existing segmentation to refine")
    p.add_argument("--label", type=int, default=1,
                   help="the segment the prompts are about (default 1)")
    p.add_argument("--name", help="name of a new segment (default: the model's label)")
    p.add_argument("--overwrite-other", action="store_true",
                   help="let the result paint over other segments of --mask")
    p.add_argument("--model", help=f"ID[:VERSION] or a model folder (default: "
                   f"{DEFAULT_PROMPT_MODEL}, highest version)")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: the GPU when there is one")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=cmd_prompt)
