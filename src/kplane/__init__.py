"""kplane: a multi-tenant, kcp-compatible Kubernetes API server."""

__version__ = "0.1.0"
