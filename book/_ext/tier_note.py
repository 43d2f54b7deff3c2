"""Sphinx extension of the course book: a banner naming the data tier of the executed notebooks.

The notebooks run at the tier of ``TUTORIAL_KIT_TIER`` (``ci`` when unset), which book/build.py sets
for the whole build; the kernels inherit it, so the banner and the outputs always agree. When the book
is rendered from notebooks the test command executed (``--from-executed``), book/build.py passes the
tier recorded in those notebooks as ``TUTORIAL_KIT_OUTPUTS_TIER``.
Each notebook also prints ``tk.config.describe()`` near its top, with the tier, device and environment.
"""

from __future__ import annotations

import os

TIER_TEXT = {
    "ci": "the <b>ci</b> data tier (small real files, CPU budget)",
    "workshop": "the <b>workshop</b> data tier (full public datasets)",
}


def _announce(app, config) -> None:
    # book/build.py names the tier of the outputs; a build from notebooks executed by the test
    # command's nbval run (execute_notebooks: off) knows it from the notebooks' own metadata.
    tier = os.environ.get("TUTORIAL_KIT_OUTPUTS_TIER", "").strip().lower()
    if not tier:
        if str(config.nb_execution_mode) == "off":
            return  # nothing was executed and nobody said where the stored outputs came from
        tier = os.environ.get("TUTORIAL_KIT_TIER", "ci").strip().lower() or "ci"
    text = TIER_TEXT.get(tier, f"the <b>{tier}</b> data tier")
    options = dict(config.html_theme_options or {})
    if not options.get("announcement"):
        options["announcement"] = f"Notebook outputs in this book were computed at {text} (TUTORIAL_KIT_TIER={tier})."
    config.html_theme_options = options


def setup(app):
    app.connect("config-inited", _announce)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
