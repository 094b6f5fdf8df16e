"""Tests of kplane.auth."""
