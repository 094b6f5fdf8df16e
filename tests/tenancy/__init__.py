"""Unit tests of :mod:`kplane.tenancy` over a real in-process store."""
