"""``kplane kubeconfig``: a kubeconfig for one workspace, to hand to a person or a program.

The result is self-contained: one cluster (``https://HOST:PORT/clusters/<path>``), one
user, one context, with the CA and client key pair embedded even when the source
kubeconfig referenced files, so it keeps working after being copied elsewhere.

Today the identity is the source kubeconfig's own. Minting a certificate for another
identity (``--user``, ``--group``, ``--expires``) plugs in at ``credentials_for``: the
parser and the builder already treat the identity as a separate input.
"""

from __future__ import annotations

import argparse
import base64
import copy
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from kplane.auth.pki import ensure_pki
from kplane.cli.client import (
    CliError,
    current_cluster,
    current_context,
    current_server,
    current_user,
    read_pem,
    save_kubeconfig,
    split_cluster_url,
)
from kplane.cli.ws import Session, ensure_workspace_exists, resolve_target, workspace_url

_EMBEDDABLE_FILES = {
    "cluster": ("certificate-authority",),
    "user": ("client-certificate", "client-key"),
}


@dataclass(frozen=True, slots=True)
class Credentials:
    """A kubeconfig user entry: its name and its body (certificate, key or token)."""

    name: str
    user: dict[str, Any]


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``kubeconfig`` to the ``kplane`` command."""
    parser = subparsers.add_parser(
        "kubeconfig", help="write a kubeconfig for one workspace",
        description="Write a kubeconfig whose only context is WORKSPACE, with the "
                    "credentials of the current context of the source kubeconfig.")
    parser.add_argument("workspace", metavar="WORKSPACE",
                        help="root:a:b or :root:a:b, or a path relative to the current "
                             "workspace")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write to FILE (mode 0600) instead of standard output")
    parser.add_argument("--kubeconfig", help="the source kubeconfig (default: $KUBECONFIG, "
                                             "then ~/.kube/config)")
    identity = parser.add_argument_group(
        "a new identity", "mint a client certificate signed by the server's CA (needs the "
                          "server's data directory) instead of copying the current user")
    identity.add_argument("--user", help="the user name (certificate CN)")
    identity.add_argument("--group", action="append", default=[],
                          help="a group (certificate O); repeat for several")
    identity.add_argument("--expires", default="8760h",
                          help="lifetime, e.g. 30m, 8h, 7d (default 8760h)")
    identity.add_argument("--data-dir", default=".kplane",
                          help="the server's data directory, holding its CA (default .kplane)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        session = Session.open(args.kubeconfig)
        config = workspace_kubeconfig_for(session, target=args.workspace,
                                          credentials=credentials_for(args, session))
        if args.output:
            save_kubeconfig(Path(args.output), config)
        else:
            sys.stdout.write(yaml.safe_dump(config, default_flow_style=False, sort_keys=False))
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def parse_duration(text: str) -> timedelta:
    """``30m``, ``8h``, ``7d``, ``90s`` or combinations like ``1h30m``."""
    match = _DURATION.fullmatch(text.strip())
    if not match or not any(match.groups()):
        raise CliError(f"invalid duration {text!r}: use e.g. 30m, 8h or 7d")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise CliError("the duration must be positive")
    return duration


def minted_credentials(*, data_dir: Path, user: str, groups: list[str],
                       expires: timedelta) -> Credentials:
    """A client certificate for ``user`` signed by the server's CA in ``data_dir``."""
    if not (data_dir / "pki" / "ca.key").exists():
        raise CliError(f"no kplane CA in {data_dir}/pki: pass the server's --data-dir")
    try:
        pki = ensure_pki(data_dir, hosts=[])
        cert_pem, key_pem = pki.issue_client_certificate(user=user, groups=groups,
                                                         expires_in=expires)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot mint a certificate: {exc}") from None
    return Credentials(name=user, user={
        "client-certificate-data": base64.b64encode(cert_pem).decode(),
        "client-key-data": base64.b64encode(key_pem).decode()})


def credentials_for(args: argparse.Namespace, session: Session) -> Credentials:
    """The identity the new kubeconfig carries: a minted one with --user, else the source's
    current user."""
    if getattr(args, "user", None):
        return minted_credentials(data_dir=Path(args.data_dir), user=args.user,
                                  groups=list(args.group), expires=parse_duration(args.expires))
    name = str(current_context(session.config).get("user", ""))
    user = embed_files(current_user(session.config), fields=_EMBEDDABLE_FILES["user"],
                       config_dir=session.path.parent)
    return Credentials(name=name or "user", user=user)


def workspace_kubeconfig_for(session: Session, *, target: str,
                             credentials: Credentials) -> dict[str, Any]:
    """Resolve ``target`` against the session's current workspace, check it, build the file."""
    api_root, current_path = split_cluster_url(current_server(session.config))
    path = resolve_target(current_path, target)
    ensure_workspace_exists(session.client(), path)
    cluster = embed_files(current_cluster(session.config),
                          fields=_EMBEDDABLE_FILES["cluster"], config_dir=session.path.parent)
    return workspace_kubeconfig(cluster=cluster, server=workspace_url(api_root, path),
                                context=path, credentials=credentials)


def workspace_kubeconfig(*, cluster: Mapping[str, Any], server: str, context: str,
                         credentials: Credentials) -> dict[str, Any]:
    """A ``v1`` Config with one cluster and one context named ``context``, made current.

    ``cluster`` is a kubeconfig cluster body whose TLS settings are kept; only its server
    changes.
    """
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": context, "cluster": {**copy.deepcopy(dict(cluster)),
                                                   "server": server}}],
        "users": [{"name": credentials.name, "user": copy.deepcopy(credentials.user)}],
        "contexts": [{"name": context,
                      "context": {"cluster": context, "user": credentials.name}}],
        "current-context": context,
    }


def embed_files(entry: Mapping[str, Any], *, fields: tuple[str, ...],
                config_dir: Path) -> dict[str, Any]:
    """A copy of ``entry`` with each file reference in ``fields`` replaced by ``-data``."""
    embedded = copy.deepcopy(dict(entry))
    for name in fields:
        if embedded.get(name) and not embedded.get(f"{name}-data"):
            pem = read_pem(embedded, name, config_dir=config_dir)
            del embedded[name]
            if pem is not None:
                embedded[f"{name}-data"] = base64.b64encode(pem).decode("ascii")
    return embedded
