"""Qt-free inference package (see ARCHITECTURE.md)."""
