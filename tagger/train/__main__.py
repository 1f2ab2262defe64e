"""``python -m tagger.train`` = ``tagger-train``."""

from tagger.train.cli import main

main()
