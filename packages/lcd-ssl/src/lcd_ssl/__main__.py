"""``python -m lcd_ssl`` (e.g. ``torchrun --nproc_per_node 2 -m lcd_ssl train ...``)."""

from .cli import main

if __name__ == "__main__":
    main()
