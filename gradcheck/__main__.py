"""`python -m gradcheck`: the same as the `gradcheck` command."""

import sys

from gradcheck.cli import main

if __name__ == "__main__":
    sys.exit(main())
