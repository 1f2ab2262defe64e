"""The ``moods`` head: the four valence-arousal quadrants of AllMusic-4Q over the shipped model's outputs."""
