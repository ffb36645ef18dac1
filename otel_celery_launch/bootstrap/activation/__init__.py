"""Activation: each integration set up once the program imports its library, at a moment when that is safe.

:mod:`.imports` watches imports and runs set-ups; :mod:`.instrumentations` registers every
planned instrumentation with it; :mod:`.broker_traffic` keeps the Redis broker's own commands untraced.
"""
