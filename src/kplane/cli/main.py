"""The ``kplane`` command line.

``kplane serve`` runs the API server. Later subcommands (``ws``, ``kubeconfig``, ``class``,
``bind``) talk to a running server through its public API only.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from kplane import __version__
from kplane.cli import bind, classes, kubeconfig_cmd, ws


def _serve(args: argparse.Namespace) -> int:
    from kplane.server.runtime import ServeOptions, run

    servers = tuple(s.strip() for s in args.etcd_servers.split(",") if s.strip())
    run(ServeOptions(data_dir=Path(args.data_dir), secure_port=args.secure_port,
                     bind_address=args.bind_address, etcd_servers=servers,
                     etcd_prefix=args.etcd_prefix, etcd_cafile=args.etcd_cafile,
                     etcd_certfile=args.etcd_certfile, etcd_keyfile=args.etcd_keyfile,
                     token_auth_file=args.token_auth_file, audit_log_path=args.audit_log_path,
                     max_requests_inflight=args.max_requests_inflight,
                     max_mutating_requests_inflight=args.max_mutating_requests_inflight))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kplane", description="A multi-tenant, kcp-compatible Kubernetes API server.")
    parser.add_argument("--version", action="version", version=f"kplane {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API server")
    serve.add_argument("--data-dir", default=".kplane",
                       help="where the database, certificates and kubeconfig live "
                            "(default: ./.kplane)")
    serve.add_argument("--secure-port", type=int, default=6443,
                       help="HTTPS port (default: 6443)")
    serve.add_argument("--bind-address", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--etcd-servers", default="",
                       help="comma-separated etcd URLs (http://h1:2379,...); without it, "
                            "kplane stores everything in SQLite in the data directory")
    serve.add_argument("--etcd-prefix", default="/kplane",
                       help="key prefix in etcd (default: /kplane)")
    serve.add_argument("--etcd-cafile", help="CA bundle to verify etcd's certificates")
    serve.add_argument("--etcd-certfile", help="client certificate for etcd")
    serve.add_argument("--etcd-keyfile", help="client key for etcd")
    serve.add_argument("--token-auth-file",
                       help="static bearer tokens, one per line: token,user,uid,\"group1,group2\"")
    serve.add_argument("--audit-log-path",
                       help="append one audit.k8s.io/v1 Event (level Metadata) per request here")
    serve.add_argument("--max-requests-inflight", type=int, default=400,
                       help="concurrent read-only requests before answering 429 (default 400)")
    serve.add_argument("--max-mutating-requests-inflight", type=int, default=200,
                       help="concurrent mutating requests before answering 429 (default 200)")
    serve.add_argument("--log-level", default="warning",
                       choices=["debug", "info", "warning", "error"])
    serve.set_defaults(handler=_serve)
    ws.register(commands)
    kubeconfig_cmd.register(commands)
    classes.register(commands)
    bind.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper() if hasattr(args, "log_level") else "WARNING",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
