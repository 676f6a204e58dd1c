"""Predicting: a config's latency from its shapes alone (no torch, no model built).

:mod:`ops` decomposes a model shape + config into the operators a runtime runs, :mod:`cost` prices
one operator from a profile's terms, :mod:`profile` reads and writes device profiles, and
:mod:`predictor` adds them up.
"""
