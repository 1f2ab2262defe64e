"""``python -m tagger.cli``."""

from tagger.cli import main

if __name__ == "__main__":  # not in a worker process, which imports this module as ``__mp_main__``
    main()
