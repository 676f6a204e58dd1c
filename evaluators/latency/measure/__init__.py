"""Measuring: operator and whole-model benchmarks exported to ONNX and timed with ONNX Runtime.

:mod:`ort_timing` is the one timing helper (sessions, the multi-pass rule, machine facts); it imports
nothing of the project, because ``maec measure --export-kit`` copies it as ``run_kit.py`` to a board.
:mod:`host` times and scores exported models on this machine (``maec apply``). :mod:`items` is the
row format, :mod:`op_items` / :mod:`model_items` the benchmarks, :mod:`kit` builds and runs a kit.
"""
