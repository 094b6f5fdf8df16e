"""Tests of kplane.registry."""
