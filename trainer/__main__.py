"""``python -m trainer`` = ``tagger-train``."""

from trainer.cli import main

main()
