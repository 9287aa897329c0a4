"""`python -m rl.data download ...` (see rl.market.download)."""
import sys

from rl.market.download import main

sys.exit(main())
