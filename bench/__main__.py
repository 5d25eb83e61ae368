import sys

from bench.cli.main import main

sys.exit(main(sys.argv[1:]))
