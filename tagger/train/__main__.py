"""``python -m tagger.train`` = ``tagger-train``."""

from tagger.train.cli import main

if __name__ == "__main__":  # imported (a package walk, a test that imports every module): nothing runs
    main()
