from postprocessing.cli import main

raise SystemExit(main())
