from optlab.cli.app import console_main

raise SystemExit(console_main())
