"""The Qt-free packages import and work with PySide6 and VTK made unimportable."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'PySide6', 'shiboken6', 'vtk', 'vtkmodules'}:
            raise ImportError(f'{name} is blocked in this test')
sys.meta_path.insert(0, Block())
import medseg_gui
for pkg in ('core', 'io', 'editing', 'inference', 'training'):
    mod = importlib.import_module(f'medseg_gui.{pkg}')
    for info in pkgutil.walk_packages(mod.__path__, f'medseg_gui.{pkg}.'):
        importlib.import_module(info.name)
import medseg_gui.cli
from medseg_gui.io.loader import load_volume
from medseg_gui.resources import DEMO_STUDY
assert load_volume(DEMO_STUDY).shape == (51, 137, 141)
print('ok')
"""


def run_ok(script: str) -> None:
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_qt_free_packages_work_without_qt_or_vtk() -> None:
    run_ok(SCRIPT)


GPU_NODE = r"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'SimpleITK', 'PySide6', 'vtkmodules'}:
            raise ImportError(f'{name} is blocked in this test')
sys.meta_path.insert(0, Block())
import medseg_gui.inference.pipeline, medseg_gui.training.trainer, medseg_gui.training.__main__
print('ok')
"""


def test_training_and_inference_import_without_simpleitk() -> None:
    # The GPU nodes we train and benchmark on have PyTorch and MONAI but no SimpleITK: prepared
    # training folders and on-grid volumes must not need it.
    run_ok(GPU_NODE)
