from runner.cli.app import console_main

raise SystemExit(console_main())
