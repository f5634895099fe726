from mstbnn.cli import main

raise SystemExit(main())
