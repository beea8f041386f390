"""`python -m core.cli` (and `torchrun -m core.cli`): the pneumolab command."""

from core.cli import main

raise SystemExit(main())
