import sys

from hotplug_guard.cli import main

sys.exit(main())
