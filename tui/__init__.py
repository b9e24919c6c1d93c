"""The Textual terminal UI (`depthprune-tui`). Only this package imports Textual."""
