"""python -m stereo_core input.mp4 -o output_sbs.mp4 (see stereo_core.cli);
python -m stereo_core download --models DIR fetches the models (see stereo_core.download)."""

import sys

from .cli import main

sys.exit(main())
