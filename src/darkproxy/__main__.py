import sys

from darkproxy.cli import main

sys.exit(main())
