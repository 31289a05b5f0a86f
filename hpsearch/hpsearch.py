"""``python -m hpsearch.hpsearch``: the spelling of hypnettorch users
(``python -m hypnettorch.hpsearch.hpsearch``), the same as ``python -m hpsearch``."""

from hpsearch.cli import console_main

if __name__ == "__main__":
    console_main()
