"""Fitting: profile terms from measured rows (:mod:`fit`) and ``maec calibrate`` (:mod:`calibrate`)."""
