"""``kplane bind``: bind an APIExport into the current workspace, as ``kubectl kcp bind``.

It creates an ``apis.kcp.io/v1alpha2`` APIBinding that references the export by workspace
path and name, accepting the permission claims the user names, and waits until the server's
binding controller reports phase ``Bound``. A binding that does not get there in time is
reported with its conditions, which say why (export missing, no ``bind`` permission,
a naming conflict, ...).

Building the binding and describing its state are pure functions; the command around them
does the HTTP with the CLI's kubeconfig client, so it finds the kubeconfig as ``kplane ws``
does (``--kubeconfig``, ``$KUBECONFIG``, ``~/.kube/config``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from kplane.apimachinery.names import is_dns1123_subdomain
from kplane.cli.client import ApiClient, ApiError, CliError, current_server, exit_code
from kplane.cli.ws import Session, workspace_path_of
from kplane.tenancy.names import is_valid_reference

APIS_GROUP = "apis.kcp.io"
BINDINGS_API = f"/apis/{APIS_GROUP}/v1alpha2/apibindings"
EXPORTS_API = f"/apis/{APIS_GROUP}/v1alpha2/apiexports"
BOUND = "Bound"
CORE_GROUP_ALIAS = "core"
DEFAULT_TIMEOUT_SECONDS = 60.0
_POLL_INTERVAL_SECONDS = 0.25

DESCRIPTION = """\
Bind an APIExport into the current workspace and wait until its resources are served.

EXPORT is <workspace path>:<export name>, e.g. root:providers:postgres. Permission claims
the export makes (e.g. on Secrets) are only granted when accepted with
--accept-permission-claim <resource>.<group> ("core" names the core group: secrets.core).
"""


@dataclass(frozen=True, slots=True)
class ExportReference:
    """An APIExport by workspace path (empty: the binding's own workspace) and name."""

    path: str
    name: str

    def __str__(self) -> str:
        return f"{self.path}:{self.name}" if self.path else self.name


@dataclass(frozen=True, slots=True)
class Claim:
    """An accepted permission claim on ``resource`` in ``group`` ("" is the core group)."""

    group: str
    resource: str

    def __str__(self) -> str:
        return f"{self.resource}.{self.group or CORE_GROUP_ALIAS}"


# --- pure parts ---------------------------------------------------------------------------


def parse_export_reference(text: str) -> ExportReference:
    """``root:providers:postgres`` (or ``:root:...``) -> path ``root:providers``, name
    ``postgres``; a bare name means an export in the current workspace."""
    spelled = text[1:] if text.startswith(":") else text
    path, _sep, name = spelled.rpartition(":")
    if not name or is_dns1123_subdomain(name):
        raise CliError(f'invalid APIExport reference "{text}": expected <workspace path>:<name>')
    if path and not is_valid_reference(path):
        raise CliError(f'invalid workspace path "{path}" in "{text}"')
    return ExportReference(path=path, name=name)


def parse_claim(text: str) -> Claim:
    """``secrets.core`` -> core ``secrets``; ``widgets.example.io`` -> ``widgets`` in
    ``example.io``."""
    resource, dot, group = text.strip().partition(".")
    if not dot or not resource or not group:
        raise CliError(f'invalid permission claim "{text}": expected <resource>.<group>, '
                       f'e.g. secrets.core')
    return Claim(group="" if group == CORE_GROUP_ALIAS else group, resource=resource)


def binding_body(*, name: str, export: ExportReference, claims: Sequence[Claim],
                 identity_hashes: Mapping[Claim, str] | None = None) -> dict[str, Any]:
    """The APIBinding (v1alpha2) to create."""
    hashes = identity_hashes or {}
    reference: dict[str, str] = {"name": export.name}
    if export.path:
        reference["path"] = export.path
    accepted = []
    for claim in claims:
        entry: dict[str, Any] = {"group": claim.group, "resource": claim.resource}
        if hashes.get(claim):
            entry["identityHash"] = hashes[claim]
        entry |= {"state": "Accepted", "verbs": ["*"], "selector": {"matchAll": True}}
        accepted.append(entry)
    spec: dict[str, Any] = {"reference": {"export": reference}}
    if accepted:
        spec["permissionClaims"] = accepted
    return {"apiVersion": f"{APIS_GROUP}/v1alpha2", "kind": "APIBinding",
            "metadata": {"name": name}, "spec": spec}


def export_claims(export: Mapping[str, Any]) -> dict[Claim, str]:
    """The permission claims an APIExport makes, with their identity hashes ("" if none)."""
    claims: dict[Claim, str] = {}
    for item in (export.get("spec") or {}).get("permissionClaims") or []:
        if isinstance(item, dict) and item.get("resource"):
            claim = Claim(group=str(item.get("group") or ""), resource=str(item["resource"]))
            claims[claim] = str(item.get("identityHash") or "")
    return claims


def phase_of(binding: Mapping[str, Any]) -> str:
    return str((binding.get("status") or {}).get("phase") or "")


def describe_conditions(binding: Mapping[str, Any]) -> list[str]:
    """One line per condition that is not True (all of them if every one is True)."""
    conditions = [c for c in (binding.get("status") or {}).get("conditions") or []
                  if isinstance(c, dict)]
    failing = [c for c in conditions if c.get("status") != "True"] or conditions
    lines = []
    for condition in failing:
        line = f"{condition.get('type', '?')}={condition.get('status', 'Unknown')}"
        if condition.get("reason"):
            line += f" ({condition['reason']})"
        if condition.get("message"):
            line += f": {condition['message']}"
        lines.append(line)
    return lines


def bound_resources(binding: Mapping[str, Any]) -> list[str]:
    """``plural.group`` of every resource the binding serves."""
    names = []
    for item in (binding.get("status") or {}).get("boundResources") or []:
        if isinstance(item, dict) and item.get("resource"):
            group = item.get("group") or CORE_GROUP_ALIAS
            names.append(f"{item['resource']}.{group}")
    return names


# --- talking to the server ----------------------------------------------------------------


def read_export_claims(client: ApiClient, export: ExportReference, *,
                       here: str) -> dict[Claim, str] | None:
    """The export's permission claims with their identity hashes, or None when the caller
    may not read the export (binding needs only ``bind`` on it, not ``get``)."""
    workspace = export.path or here
    try:
        return export_claims(client.get(f"/clusters/{workspace}{EXPORTS_API}/{export.name}"))
    except ApiError as error:
        if error.code in (403, 404):
            return None
        raise


def accept_claims(binding: Mapping[str, Any], wanted: Sequence[Mapping[str, Any]],
                  ) -> dict[str, Any] | None:
    """A copy of an existing ``binding`` that also accepts the ``wanted`` claim entries, or
    None when it accepts them all already. Claims it holds are kept: binding again never
    takes a grant back."""
    spec = dict(binding.get("spec") or {})
    current = [dict(c) for c in spec.get("permissionClaims") or [] if isinstance(c, dict)]
    accepted = {(c.get("group") or "", c.get("resource")) for c in current
                if c.get("state") == "Accepted"}
    missing = [dict(c) for c in wanted if (c["group"], c["resource"]) not in accepted]
    if not missing:
        return None
    replaced = {(c["group"], c["resource"]) for c in missing}
    kept = [c for c in current if (c.get("group") or "", c.get("resource")) not in replaced]
    return {**binding, "spec": {**spec, "permissionClaims": kept + missing}}


def create_or_adopt(client: ApiClient, *, workspace: str, body: Mapping[str, Any],
                    export: ExportReference, out: TextIO | None = None,
                    ) -> tuple[dict[str, Any], bool]:
    """Create the binding; an existing one of that name is fine when it binds the same
    export (it is made to accept the claims asked for). Returns the binding and whether it
    existed."""
    collection = f"/clusters/{workspace}{BINDINGS_API}"
    try:
        return client.post(collection, body), False
    except ApiError as error:
        if error.code != 409:
            raise
    name = body["metadata"]["name"]
    existing = client.get(f"{collection}/{name}")
    actual = (existing.get("spec") or {}).get("reference", {}).get("export") or {}
    if actual.get("name") != export.name or (actual.get("path") or "") != export.path:
        other = ExportReference(path=str(actual.get("path") or ""),
                                name=str(actual.get("name") or ""))
        raise CliError(f'APIBinding "{name}" already exists and binds "{other}", not '
                       f'"{export}": choose another name with --name')
    updated = accept_claims(existing, (body.get("spec") or {}).get("permissionClaims") or [])
    if updated is None:
        return existing, True
    if out is not None:
        print(f'APIBinding "{name}" already exists: accepting the permission claims asked for.',
              file=out, flush=True)
    # A PUT carries the resourceVersion read above: a concurrent change fails (409) rather
    # than being overwritten.
    return client.request("PUT", f"{collection}/{name}", updated).body, True


def applied_claims(binding: Mapping[str, Any]) -> set[Claim]:
    return {Claim(group=str(c.get("group") or ""), resource=str(c.get("resource") or ""))
            for c in (binding.get("status") or {}).get("appliedPermissionClaims") or []
            if isinstance(c, dict)}


def is_done(binding: Mapping[str, Any], expected_claims: Iterable[Claim]) -> bool:
    """Bound, with every claim that should be applied applied."""
    return phase_of(binding) == BOUND and set(expected_claims) <= applied_claims(binding)


def wait_until_bound(client: ApiClient, *, workspace: str, name: str, timeout: float,
                     out: TextIO, expected_claims: Sequence[Claim] = (),
                     clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep,
                     poll_interval: float = _POLL_INTERVAL_SECONDS) -> dict[str, Any]:
    """Poll the binding until it is Bound with ``expected_claims`` applied, printing each
    phase it passes through."""
    deadline = clock() + timeout
    url = f"/clusters/{workspace}{BINDINGS_API}/{name}"
    last_phase: str | None = None
    while True:
        binding = client.get(url)
        phase = phase_of(binding)
        if phase != last_phase and phase != BOUND:
            print(f"  phase: {phase or '(none yet)'}", file=out, flush=True)
        last_phase = phase
        if is_done(binding, expected_claims):
            return binding
        if clock() >= deadline:
            details = describe_conditions(binding)
            if phase == BOUND:
                waiting = sorted(str(c) for c in set(expected_claims) - applied_claims(binding))
                details.insert(0, f"permission claims not applied yet: {', '.join(waiting)}")
            reasons = "\n  ".join(details) if details else "no conditions reported"
            raise CliError(f'APIBinding "{name}" is not bound after {timeout:g}s '
                           f'(phase "{phase}"):\n  {reasons}')
        sleep(min(poll_interval, max(0.0, deadline - clock())))


def bind(session: Session, *, export: ExportReference, claims: Sequence[Claim],
         name: str | None, timeout: float, out: TextIO, err: TextIO) -> dict[str, Any]:
    workspace = workspace_path_of(current_server(session.config))
    client = session.client()
    binding_name = name or export.name
    offered = read_export_claims(client, export, here=workspace) if claims else None
    expected: list[Claim] = []
    if offered is not None:
        for claim in claims:
            if claim in offered:
                expected.append(claim)
            else:
                print(f'warning: APIExport "{export}" does not claim {claim}', file=err)
    # Claims on resources of another export name it by identity hash, as the export does.
    hashes = {claim: offered[claim] for claim in claims if offered and offered.get(claim)}
    body = binding_body(name=binding_name, export=export, claims=claims,
                        identity_hashes=hashes)
    binding, existed = create_or_adopt(client, workspace=workspace, body=body, export=export,
                                       out=out)
    subject = f'APIBinding "{binding_name}" in {workspace}'
    if not is_done(binding, expected):
        verb = "already exists" if existed else "created"
        print(f'{subject} {verb}. Waiting for "{export}" to be bound...', file=out, flush=True)
        binding = wait_until_bound(client, workspace=workspace, name=binding_name,
                                   timeout=timeout, out=out, expected_claims=expected)
    resources = bound_resources(binding)
    served = f": {', '.join(resources)}" if resources else ""
    print(f'{subject} is bound to "{export}"{served}.', file=out)
    applied = sorted(str(c) for c in applied_claims(binding))
    if applied:
        print(f"Accepted permission claims in effect: {', '.join(applied)}.", file=out)
    return binding


# --- argument parsing ---------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bind`` to the ``kplane`` command."""
    parser = subparsers.add_parser(
        "bind", help="bind an APIExport into the current workspace",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export", metavar="EXPORT",
                        help="<workspace path>:<export name>, e.g. root:providers:postgres")
    parser.add_argument("--accept-permission-claim", action="append", default=[],
                        metavar="RESOURCE.GROUP", dest="claims",
                        help="accept a permission claim of the export (repeatable), e.g. "
                             "secrets.core")
    parser.add_argument("--name", help="the APIBinding's name (default: the export's name)")
    parser.add_argument("--kubeconfig", help="the kubeconfig to use (default: $KUBECONFIG, "
                                             "then ~/.kube/config)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS,
                        metavar="SECONDS",
                        help="how long to wait for the binding to be bound (default: 60)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``kplane bind``; errors become one message on stderr and exit code 1."""
    def command() -> None:
        export = parse_export_reference(args.export)
        claims = list(dict.fromkeys(parse_claim(text) for text in args.claims))
        if args.name is not None and is_dns1123_subdomain(args.name):
            raise CliError(f'invalid APIBinding name "{args.name}"')
        if args.timeout < 0:
            raise CliError("--timeout must not be negative")
        bind(Session.open(args.kubeconfig), export=export, claims=claims, name=args.name,
             timeout=args.timeout, out=sys.stdout, err=sys.stderr)

    return exit_code(command)
