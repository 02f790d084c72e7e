"""python -m stereo_core input.mp4 -o output_sbs.mp4 (see stereo_core.cli)."""

import sys

from .cli import main

sys.exit(main())
