import sys

from rag.server.run import main

sys.exit(main())
