"""The Textual user interface: the only part of evaltui that imports textual."""
