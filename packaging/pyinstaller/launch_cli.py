"""Frozen entry point of ``medseg`` (see frozen_main.py)."""

from frozen_main import run

run("cli")
