"""The one order of model versions, used by the model resolver and by the model registry.

A version reads ``RELEASE[TAG...][+LOCAL]``:

- ``RELEASE`` is the leading run of dot-separated numbers (``1.10.0``), compared numerically:
  ``1.9.0 < 1.10.0``.
- Each ``TAG`` starts with ``-`` or ``_`` (``-rc1``, ``_ft2``, ``-ft.20250101120000``). A tag whose
  text begins with ``ft`` marks a fine-tune of what precedes it and sorts *after* it; any other
  tag (``rc1``, ``beta2``, ``dev``) marks a pre-release and sorts *before* it, as in SemVer.
  Tags compare with each other naturally (text alphabetically, numbers numerically), so
  ``_ft2 < _ft10`` and ``-beta2 < -rc1``. Tags nest: ``1.1.0_ft2-rc1`` is a pre-release of the
  fine-tune ``1.1.0_ft2``.
- ``+LOCAL`` (everything after the first ``+``) labels a build of the same version: it sorts
  after that version without a label, and before its fine-tunes and the next release.

So, oldest first::

    1.1.0-rc1 < 1.1.0 < 1.1.0+local < 1.1.0_ft1 < 1.1.0_ft2-rc1 < 1.1.0_ft2 < 1.1.0_ft10
              < 1.1.0-ft.20250101120000 < 1.1.1-rc1 < 1.1.1 < 1.10.0

Fine-tunes made by the app are named ``<base>-ft.<UTC time>``
(:mod:`medseg_gui.training.finetune_commands`), so they follow their base and each other in the
order they were made. Two spellings that name the same place (``1.1.0-ft.2`` and ``1.1.0_ft2``)
are ordered by their text, so the order is total and the same on every machine.
"""

from __future__ import annotations

import re

# (0, number, "") for a number, (1, 0, text) for text: numbers before text, as in SemVer.
Part = tuple[int, int, str]
VersionKey = tuple[tuple[int, ...], tuple[tuple[int, tuple[Part, ...]], ...], tuple[Part, ...],
                   str]

FINE_TUNE = "ft"
_RELEASE = re.compile(r"\d+(?:\.\d+)*")
_TAG_SEPARATORS = re.compile(r"[-_]")
_PARTS = re.compile(r"\d+|[^\W\d_]+")


def _natural(text: str) -> tuple[Part, ...]:
    """Runs of digits (as numbers) and of letters; punctuation only separates."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower())
                 for p in _PARTS.findall(text))


def version_key(version: str) -> VersionKey:
    """The sort key of ``version`` in the order of the module docstring.

    Parameters
    ----------
    version
        A model card's ``version``.

    Returns
    -------
    VersionKey
        Keys compare as the versions do: ``max(cards, key=lambda c: version_key(c.version))``
        is the newest.

    Examples
    --------
    >>> sorted(["1.1.0_ft2", "1.1.1", "1.1.0", "1.1.0-rc1", "1.1.0+local"], key=version_key)
    ['1.1.0-rc1', '1.1.0', '1.1.0+local', '1.1.0_ft2', '1.1.1']
    """
    public, _, local = version.partition("+")
    match = _RELEASE.match(public)
    release = tuple(int(p) for p in match.group().split(".")) if match else ()
    rest = public[match.end():] if match else public
    tags = tuple((1 if tag.lower().startswith(FINE_TUNE) else -1, _natural(tag))
                 for tag in _TAG_SEPARATORS.split(rest) if tag)
    # The release itself ranks 0 at the end of its tags: pre-releases (-1) come before it,
    # fine-tunes (+1) after it.
    return release, (*tags, (0, ())), _natural(local), version
