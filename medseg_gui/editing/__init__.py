"""Qt-free editing package (see ARCHITECTURE.md)."""
