"""``python -m lcd_nuclei count | evaluate``."""

from .cli import main

if __name__ == "__main__":
    main()
