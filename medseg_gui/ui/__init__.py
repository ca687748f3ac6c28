"""Qt widgets and windows: the only package that imports PySide6."""
