"""`python -m depthprune.cli ...` (how the TUI and studies start child searches)."""

from . import main

main()
