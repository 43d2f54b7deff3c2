"""The data tiers of the course, in a module of their own.

:mod:`tutorial_kit.config` (which tier is active) and :mod:`tutorial_kit.data.registry` (which
file belongs to which tier) both need them; neither imports the other for them.
"""

TIERS = ("ci", "workshop")
"""The two data tiers of the course: ``ci`` (small real files) and ``workshop`` (full public datasets)."""
