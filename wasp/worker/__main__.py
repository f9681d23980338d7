import sys

from wasp.worker.main import main

sys.exit(main())
