import sys

from jaxgreen.cli import main

sys.exit(main())
