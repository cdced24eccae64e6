"""Closed-loop evaluation of action schedulers (Meta-World, scripted experts standing in for the VLA)."""
