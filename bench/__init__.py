"""The speed benchmark (``bench/run.py``); a package so its rooms import each other however it is started."""
