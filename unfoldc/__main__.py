import sys

from unfoldc.cli import main

sys.exit(main())
