"""Screens: home, labelling (binary and pairwise), and small modal dialogs."""
