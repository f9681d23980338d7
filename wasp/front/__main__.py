import sys

from wasp.front.main import main

sys.exit(main())
