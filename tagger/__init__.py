"""genre-tagger: listens to a music library and writes genre tags into the files."""

__version__ = "0.1.0"
