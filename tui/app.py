"""`depthprune-tui` entry point. The terminal UI is not built yet; the headless CLI does the work."""

import sys


def main() -> None:
    print("depthprune-tui: the terminal UI is not available in this version yet; "
          "use the headless commands (`depthprune --help`).", file=sys.stderr)
    sys.exit(1)
