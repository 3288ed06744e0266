"""Small interactive controls for the notebooks: one module per idea, each with a static fallback.

Every widget here has the same values reachable from code (so a notebook's stored outputs stay deterministic)
and a static picture for readers who do not run the notebook. Import them from their modules, e.g.
``from lmlab.widgets.smoothing import SmoothingExplorer``.
"""
