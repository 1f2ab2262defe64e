"""``python -m tagger.train`` = ``tagger-train``."""

from tagger.train.cli import main

if __name__ == "__main__":  # not when a walk over the package imports every module (tests/test_errors.py)
    main()
