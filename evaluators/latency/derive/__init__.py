"""Deriving the shipped profiles from public ARM measurements in ``../shared/arm-latency`` (never
copied into the project): :mod:`sources` reads them, :mod:`hat_fit` fits the Raspberry Pi 4 rows,
:mod:`priors` holds the host reference and stated assumptions, :mod:`build` writes the profiles.

    python -m evaluators.latency.derive.build [--check]
"""
