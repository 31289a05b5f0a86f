from hpsearch.cli import console_main

console_main()
