"""Deriving the shipped profiles (``evaluators/latency/profiles/*.json``) from public ARM measurements
in ``../shared/arm-latency`` (read, never copied into the project): :mod:`priors` holds the host
reference and the stated assumptions, :mod:`build` writes the profiles from the fits of
:mod:`evaluators.latency.fit` (HAT's Raspberry Pi 4 rows, ncnn and Paddle-Lite tables).

    python -m evaluators.latency.derive.build [--check]
"""
