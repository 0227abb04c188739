"""`python -m scripts.ui`: capture the README's screenshots (see screenshots.py)."""

from __future__ import annotations

import sys

from scripts.ui.screenshots import main

if __name__ == "__main__":
    sys.exit(main())
