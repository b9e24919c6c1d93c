"""Custom widgets of the TUI."""
