"""``python -m anymodal`` (and ``accelerate launch -m anymodal train ...``)."""

from anymodal.cli import main

raise SystemExit(main())
