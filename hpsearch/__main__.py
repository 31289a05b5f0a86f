from hpsearch.cli import main

raise SystemExit(main())
