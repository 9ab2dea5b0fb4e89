"""``python -m lcd_embed ...`` (and ``torchrun --nproc_per_node N -m lcd_embed embed ...``)."""

from .cli import main

if __name__ == "__main__":
    main()
