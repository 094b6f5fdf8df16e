"""Custom resources' schema engine: structural checks, validation, defaulting, CEL rules.

Pure functions and compiled validators over plain dicts; the registry calls them when a
CustomResourceDefinition is written (:func:`kplane.crd.structural.check_crd_spec`) and on
every custom-resource write (:class:`kplane.crd.validation.SchemaValidator`,
:func:`kplane.crd.defaulting.apply_defaults`).
"""
