import sys

from lab.inlab.agent.service import main

sys.exit(main())
