"""``python -m lcd_pipeline``: the ``lcd`` command."""

from lcd_pipeline.cli import main

if __name__ == "__main__":
    main()
