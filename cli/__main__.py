"""``python -m biodiscover.cli``: the same as the ``biodiscover`` command."""

import sys

from biodiscover.cli.main import main

sys.exit(main())
