"""Qt-free training package (see ARCHITECTURE.md).

Supervised training of the shipped tumour model (``medseg train``): :mod:`.data` (cases, data hash,
the fixed split, the prepared-array cache), :mod:`.sampling` (MONAI patch sampling and
augmentation), :mod:`.trainer` (the run), :mod:`.checkpoint` (resumable, pickle-free),
:mod:`.evaluate` (sliding-window validation Dice on the original grid), :mod:`.export` (weights,
ONNX, model card) and :mod:`.commands` (the CLI).
"""
