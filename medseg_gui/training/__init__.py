"""Qt-free training package (see ARCHITECTURE.md)."""
