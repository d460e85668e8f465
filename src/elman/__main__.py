from elman.cli import main

raise SystemExit(main())
