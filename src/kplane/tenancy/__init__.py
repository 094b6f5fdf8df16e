"""Logical clusters and workspaces: names, paths, WorkspaceTypes and workspace admission.

A workspace is a Workspace object in its parent's logical cluster that owns one child
logical cluster. Everything here works on the shared keyspace and the watch cache; nothing
runs per workspace.
"""
