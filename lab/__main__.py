from lab.cli import main
import sys

sys.exit(main())
