"""``python -m scalelab.datasets verify | manifest``."""

import sys

from scalelab.datasets import main

sys.exit(main())
