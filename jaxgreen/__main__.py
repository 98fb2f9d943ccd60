"""``python -m jaxgreen``: the command line."""

import sys

if __name__ == "__main__":
  from jaxgreen._src.cli import main

  sys.exit(main())
