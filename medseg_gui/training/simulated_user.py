"""Simulated users for training the promptable model: batched torch, on the training device.

Training follows the iterative recipe of DeepEdit/DeepGrow and RITM: each sample starts with one
prompt (a click in the object, a 3D box, a rectangle on one slice, a scribble, or a damaged draft
of the mask to refine), then the network in its current state predicts, a corrective click goes
to the centre of the worst error (positive where it missed, negative where it leaked; sometimes
a negative scribble instead), that prediction becomes the prior, and so on for a random number of
rounds; only the last prediction is trained on. MONAI's DeepEdit/DeepGrow interaction transforms
do this one sample at a time in numpy on the CPU; here the same steps run on a whole batch on
the GPU, which is what lets a training run see hundreds of thousands of interactions in minutes.

"Centre of an error" is the voxel deepest inside it: the erosion depth by repeated 3x3x3
min-pooling (a chessboard distance transform, exact enough to pick a centre), with a little noise
so ties break at random. Coordinates are crop indices ``(z, y, x)``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medseg_gui.inference.prompt_encoding import EncodedPrompts

MODES = ("point", "box3d", "box2d", "scribble", "prior")
MODE_ODDS = (0.40, 0.12, 0.13, 0.15, 0.20)
ROUND_ODDS = (0.35, 0.20, 0.20, 0.15, 0.10)  # 0..4 corrective rounds
DEPTH_ITERS = 12


def depth(mask: torch.Tensor, iters: int = DEPTH_ITERS) -> torch.Tensor:
    """Erosion depth of a boolean ``(B, D, H, W)`` mask (0 outside, 1 at its border, ...).

    Half precision on a GPU (depths up to ``iters`` are exact in it) halves the memory traffic
    of the pooling passes, the simulated user's largest cost."""
    m = mask[:, None].to(torch.float16 if mask.is_cuda else torch.float32)
    total = m.clone()
    for _ in range(iters - 1):
        m = -F.max_pool3d(-m, 3, stride=1, padding=1)
        if not bool(m.any()):
            break
        total += m
    return total[:, 0].float()


def _argmax_zyx(score: torch.Tensor) -> torch.Tensor:
    """``(B, 3)`` indices of the maximum of each ``(B, D, H, W)`` score."""
    b, _d, h, w = score.shape
    flat = score.reshape(b, -1).argmax(dim=1)
    return torch.stack([flat // (h * w), (flat // w) % h, flat % w], dim=1).float()


def centre_click(mask: torch.Tensor, gen: torch.Generator, jitter: float = 0.3,
                 d: torch.Tensor | None = None) -> torch.Tensor:
    """The deepest voxel of each mask (noise breaks ties and sometimes picks a near-deepest
    one), ``(B, 3)``; meaningless where a mask is empty (check ``mask.any``). ``d``: the
    mask's :func:`depth` when the caller has it already."""
    d = depth(mask) if d is None else d
    noise = torch.rand(d.shape, generator=gen, device=d.device) * jitter * \
        d.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1.0)
    return _argmax_zyx(torch.where(mask, d + noise, torch.full_like(d, -1.0)))


def random_click(mask: torch.Tensor, gen: torch.Generator, min_depth: float = 0.4,
                 d: torch.Tensor | None = None) -> torch.Tensor:
    """A random voxel of each mask at least ``min_depth`` of its deepest voxel inside it
    (``d`` as in :func:`centre_click`)."""
    d = depth(mask) if d is None else d
    ok = d >= (min_depth * d.amax(dim=(1, 2, 3), keepdim=True)).clamp_min(1.0)
    score = torch.rand(d.shape, generator=gen, device=d.device)
    return _argmax_zyx(torch.where(ok & mask, score, torch.full_like(score, -1.0)))


def bounding_boxes(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lo, hi)`` ``(B, 3)`` inclusive index bounds of each mask (zeros where empty)."""
    lo, hi = [], []
    for axis in range(3):
        other = tuple(a for a in (1, 2, 3) if a != axis + 1)
        present = mask.any(dim=other)  # (B, n)
        n = present.shape[1]
        idx = torch.arange(n, device=mask.device).float()
        big = torch.full_like(idx, float(n))
        lo.append(torch.where(present, idx, big).amin(dim=1).clamp(max=n - 1))
        hi.append(torch.where(present, idx, -torch.ones_like(idx)).amax(dim=1).clamp(min=0))
    return torch.stack(lo, dim=1), torch.stack(hi, dim=1)


@dataclass
class PromptBatch:
    """Growing prompt lists of a batch (crop indices) and the prior mask."""

    prompts: EncodedPrompts
    prior: torch.Tensor  # (B, D, H, W) float 0/1

    def add_points(self, pts: torch.Tensor, positive: torch.Tensor, valid: torch.Tensor) -> None:
        """Append one click per sample: positive where ``positive``, negative elsewhere."""
        p = self.prompts
        p.positive = torch.cat([p.positive, pts[:, None]], dim=1)
        p.positive_valid = torch.cat([p.positive_valid, (valid & positive)[:, None]], dim=1)
        p.negative = torch.cat([p.negative, pts[:, None]], dim=1)
        p.negative_valid = torch.cat([p.negative_valid, (valid & ~positive)[:, None]], dim=1)

    def add_negative_scribbles(self, pts: torch.Tensor, valid: torch.Tensor) -> None:
        p = self.prompts
        p.negative_scribble = torch.cat([p.negative_scribble, pts], dim=1)
        p.negative_scribble_valid = torch.cat([p.negative_scribble_valid, valid], dim=1)


def _slice_of(mask: torch.Tensor, axis: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per sample, a slice index along ``axis`` (0, 1, 2 = z, y, x) where the mask's area is
    at least half its largest cross-section."""
    out = torch.zeros(mask.shape[0], dtype=torch.long, device=mask.device)
    for a in range(3):
        other = tuple(x for x in (1, 2, 3) if x != a + 1)
        area = mask.float().sum(dim=other)  # (B, n)
        ok = area >= 0.5 * area.amax(dim=1, keepdim=True).clamp_min(1.0)
        score = torch.where(ok, torch.rand(area.shape, generator=gen, device=area.device), -1.0)
        out = torch.where(axis == a, score.argmax(dim=1), out)
    return out


def _on_slice(mask: torch.Tensor, axis: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``mask`` with everything off the chosen slice cleared."""
    shape = mask.shape[1:]
    keep = torch.zeros_like(mask)
    for a in range(3):
        grid = torch.arange(shape[a], device=mask.device)
        view = [1, 1, 1, 1]
        view[a + 1] = shape[a]
        sel = (grid.reshape(view) == index.reshape(-1, 1, 1, 1)) & (axis == a).reshape(-1, 1, 1, 1)
        keep |= sel.expand_as(mask)
    return mask & keep


def _slice_axis(b: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """Mostly axial (z), sometimes coronal (y) or sagittal (x) slices, as users draw them."""
    r = torch.rand(b, generator=gen, device=device)
    return torch.where(r < 0.6, 0, torch.where(r < 0.8, 1, 2))


def _stroke_points(mask: torch.Tensor, gen: torch.Generator, count: int = 3,
                   steps: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """A polyline through ``count`` random voxels of each (single-slice) mask, sampled at
    ``steps`` points per segment, kept where it stays inside the mask: ``(B, N, 3)``, valid."""
    d = depth(mask, iters=1)  # min_depth 0: only "inside or not" matters
    anchors = [random_click(mask, gen, min_depth=0.0, d=d) for _ in range(count)]
    t = torch.linspace(0.0, 1.0, steps, device=mask.device)[None, :, None]
    pts = torch.cat([a[:, None] + t * (b - a)[:, None]
                     for a, b in itertools.pairwise(anchors)], dim=1)
    idx = torch.round(pts).long()
    shape = torch.tensor(mask.shape[1:], device=mask.device)
    inside = ((idx >= 0) & (idx < shape)).all(dim=-1)
    idx = torch.minimum(idx.clamp_min(0), shape - 1)
    bidx = torch.arange(mask.shape[0], device=mask.device)[:, None].expand(-1, pts.shape[1])
    on = mask[bidx, idx[..., 0], idx[..., 1], idx[..., 2]]
    valid = inside & on & mask.flatten(1).any(dim=1)[:, None]
    return pts, valid


def damaged_draft(label: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A plausible imperfect mask of the object: grown or shrunk by 1-3 voxels, shifted,
    with a chunk missing or a blob of leakage added (an automatic draft, a rough brush mask)."""
    b = label.shape[0]
    dev = label.device
    m = label[:, None].float()
    r = torch.rand(b, 4, generator=gen, device=dev)
    k = 1 + 2 * int(torch.randint(1, 4, (1,), generator=gen, device=dev))
    grown = F.max_pool3d(m, k, stride=1, padding=k // 2)
    shrunk = -F.max_pool3d(-m, k, stride=1, padding=k // 2)
    m = torch.where(r[:, 0, None, None, None, None] < 0.35, grown,
                    torch.where(r[:, 0, None, None, None, None] < 0.7, shrunk, m))
    shift = torch.randint(-3, 4, (3,), generator=gen, device=dev).tolist()
    m = torch.where(r[:, 1, None, None, None, None] < 0.3,
                    torch.roll(m, shifts=shift, dims=(2, 3, 4)), m)
    # a chunk missing: everything beyond a random plane through the object on one side
    d, h, w = label.shape[1:]
    zz = torch.arange(d, device=dev)[:, None, None].float() / max(d - 1, 1)
    yy = torch.arange(h, device=dev)[None, :, None].float() / max(h - 1, 1)
    xx = torch.arange(w, device=dev)[None, None, :].float() / max(w - 1, 1)
    normal = torch.randn(b, 3, generator=gen, device=dev)
    plane = (normal[:, 0, None, None, None] * (zz - 0.5) + normal[:, 1, None, None, None] *
             (yy - 0.5) + normal[:, 2, None, None, None] * (xx - 0.5))
    cut = plane > 0.15 * torch.rand(b, 1, 1, 1, generator=gen, device=dev)
    m = torch.where((r[:, 2] < 0.3)[:, None, None, None, None], m * (~cut[:, None]).float(), m)
    # leakage: the object grown a lot, but only on one side of another plane
    leak = F.max_pool3d(label[:, None].float(), 7, stride=1, padding=3) * (plane > 0)[:, None]
    m = torch.where((r[:, 3] < 0.3)[:, None, None, None, None], torch.maximum(m, leak), m)
    return m[:, 0] > 0.5


def initial_prompts(label: torch.Tensor, gen: torch.Generator) -> tuple[PromptBatch,
                                                                        torch.Tensor]:
    """The first prompt of each sample (see :data:`MODES`); returns the prompts and the mode
    index of each sample."""
    b = label.shape[0]
    dev = label.device
    mode = torch.multinomial(torch.tensor(MODE_ODDS, device=dev), b, replacement=True,
                             generator=gen)
    has = label.flatten(1).any(dim=1)
    batch = PromptBatch(EncodedPrompts.empty(b, dev), torch.zeros_like(label, dtype=torch.float32))
    # clicks: the centre for half of them, a random deep voxel for the others; extra clicks
    d_label = depth(label)
    centre = centre_click(label, gen, d=d_label)
    anywhere = random_click(label, gen, d=d_label)
    pick = torch.rand(b, generator=gen, device=dev) < 0.5
    click = torch.where(pick[:, None], centre, anywhere)
    is_point = mode == 0
    batch.add_points(click, torch.ones(b, dtype=torch.bool, device=dev), is_point & has)
    extra = is_point & has & (torch.rand(b, generator=gen, device=dev) < 0.2)
    batch.add_points(random_click(label, gen, d=d_label), torch.ones_like(extra), extra)
    # boxes: the bounding box with a little slack (3D), or a rectangle on one slice (2D)
    lo, hi = bounding_boxes(label)
    size = (hi - lo + 1)
    slack = (torch.rand(b, 2, 3, generator=gen, device=dev) - 0.3) * 0.1 * size[:, None]
    axis = _slice_axis(b, gen, dev)
    index = _slice_of(label, axis, gen)
    lo2, hi2 = bounding_boxes(_on_slice(label, axis, index))
    box_lo = torch.where((mode == 1)[:, None], lo - slack[:, 0], lo2)
    box_hi = torch.where((mode == 1)[:, None], hi + slack[:, 1], hi2)
    p = batch.prompts
    p.box_lo, p.box_hi = box_lo[:, None], box_hi[:, None]
    p.box_valid = (((mode == 1) | (mode == 2)) & has)[:, None]
    # a scribble on one slice inside the object
    eroded = d_label >= 2
    on_slice = _on_slice(torch.where(eroded.flatten(1).any(1)[:, None, None, None], eroded,
                                     label), axis, index)
    pts, valid = _stroke_points(on_slice, gen)
    p.scribble, p.scribble_valid = pts, valid & ((mode == 3) & has)[:, None]
    # a damaged draft, and a first corrective click on it (made only for the samples that
    # get one: its wide pooling kernels cost more than the rest of the prompts)
    rows = (mode == 4).nonzero()[:, 0]
    draft = torch.zeros_like(label)
    if len(rows):
        draft[rows] = damaged_draft(label[rows], gen)
    batch.prior = draft.float()
    need = (mode == 4) & has
    correct(batch, label, draft, gen, valid=need)
    return batch, mode


def _depth_of_rows(mask: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """:func:`depth` of the samples where ``rows`` (all when ``None``), zero elsewhere."""
    if rows is None:
        return depth(mask)
    out = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    idx = rows.nonzero()[:, 0]
    if len(idx):
        out[idx] = depth(mask[idx])
    return out


def correct(batch: PromptBatch, label: torch.Tensor, pred: torch.Tensor, gen: torch.Generator,
            valid: torch.Tensor | None = None, scribble_odds: float = 0.15) -> None:
    """One corrective round: a click at the centre of the deeper error of ``pred`` (positive
    where it missed, negative where it leaked), sometimes a negative scribble through the leak
    instead; ``pred`` becomes the prior."""
    b = label.shape[0]
    dev = label.device
    fn, fp = label & ~pred, pred & ~label
    depth_fn, depth_fp = _depth_of_rows(fn, valid), _depth_of_rows(fp, valid)
    positive = depth_fn.amax(dim=(1, 2, 3)) >= depth_fp.amax(dim=(1, 2, 3))
    err = torch.where(positive[:, None, None, None], fn, fp)
    has_err = err.flatten(1).any(dim=1)
    ok = has_err if valid is None else has_err & valid
    click = centre_click(err, gen, d=torch.where(positive[:, None, None, None], depth_fn,
                                                 depth_fp))
    scribble = (~positive) & (torch.rand(b, generator=gen, device=dev) < scribble_odds)
    batch.add_points(click, positive, ok & ~scribble)
    axis = _slice_axis(b, gen, dev)
    index = click.gather(1, axis[:, None]).squeeze(1).round().long()
    pts, pts_ok = _stroke_points(_on_slice(fp, axis, index), gen)
    batch.add_negative_scribbles(pts, pts_ok & (ok & scribble)[:, None])
    if valid is None:
        batch.prior = pred.float()


def rounds(gen: torch.Generator, device: torch.device | str) -> int:
    """How many corrective rounds this batch gets (:data:`ROUND_ODDS`)."""
    odds = torch.tensor(ROUND_ODDS, device=device)
    return int(torch.multinomial(odds, 1, generator=gen)[0])
