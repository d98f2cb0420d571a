from lab.host.cli import main
import sys

sys.exit(main())
