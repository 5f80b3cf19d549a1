import sys

from rag.cli import main

if __name__ == "__main__":  # parser workers re-import this module
    sys.exit(main())
