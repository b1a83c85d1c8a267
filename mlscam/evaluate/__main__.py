"""``python -m mlscam.evaluate --forecast F.nc --truth T.nc --out DIR`` (skill) or ``... climate ...``."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
