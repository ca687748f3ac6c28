"""Frozen entry point of ``medseg-gui`` (see frozen_main.py)."""

from frozen_main import run

run("gui")
