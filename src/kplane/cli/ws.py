"""``kplane ws``: move between workspaces, create them and show their tree, as kcp's plugin does.

A workspace is just a URL (``https://HOST:PORT/clusters/root:acme``), so "entering" one
means pointing the kubeconfig's current context at another URL. Like kcp's ``kubectl ws``,
this never edits the cluster entry the user's own contexts use: it writes a dedicated
cluster and context named ``workspace.kcp.io/current``, makes that context current, and
keeps where the user came from as ``workspace.kcp.io/previous`` so that ``ws -`` returns.

The kubeconfig arithmetic (paths, ``..``, ``-``, the context swap, tree rendering) is
pure functions over dicts and strings; the commands around them do the HTTP. The same
commands serve ``kplane ws`` and the ``kubectl-ws`` plugin executable.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kplane.cli.client import (
    ApiClient,
    ApiError,
    CliError,
    current_context,
    current_server,
    exit_code,
    kubeconfig_path,
    load_kubeconfig,
    named_entry,
    save_kubeconfig,
    set_named_entry,
    split_cluster_url,
)
from kplane.tenancy.names import is_valid_reference

CURRENT_ENTRY = "workspace.kcp.io/current"
PREVIOUS_ENTRY = "workspace.kcp.io/previous"
ROOT = "root"
WORKSPACES_API = "/apis/tenancy.kcp.io/v1alpha1/workspaces"
DEFAULT_READY_TIMEOUT_SECONDS = 60.0
_POLL_INTERVAL_SECONDS = 0.2
_READY = "Ready"
_SUBCOMMANDS = ("use", "cd", "current", "create", "tree")

DESCRIPTION = """\
Show, enter, create and list kcp workspaces by rewriting the kubeconfig.

commands:
  current                 print the current workspace (also: no command, or ".")
  use WORKSPACE           enter a workspace; the word "use" may be left out:
                            name or a:b      relative to the current workspace
                            :root:a or root:a  absolute
                            ..  the parent   -  the previous one   :  the root
  create NAME             create a child workspace and wait until it is ready
  tree                    print the tree of workspaces under the current one
"""


# --- workspace paths ----------------------------------------------------------------------


def workspace_url(api_root: str, path: str) -> str:
    return f"{api_root}/clusters/{path}"


def workspace_path_of(server: str) -> str:
    """The workspace path a server URL points at, or a CliError if it points at none."""
    _root, path = split_cluster_url(server)
    if path is None:
        raise CliError(f"current URL {server!r} does not point to a workspace")
    return path


def resolve_target(current: str | None, target: str) -> str:
    """The absolute path ``target`` means when typed in workspace ``current``.

    ``:`` is the root of the current path, ``:a:b`` and ``root:a`` are absolute, anything
    else is relative; ``.`` and ``..`` segments are resolved; ``/`` separates like ``:``.
    ``current`` is None when the kubeconfig points at no workspace: only absolute paths
    mean something then.
    """
    spelled = target.replace("/", ":")
    if spelled == "~" or spelled.startswith("~:"):
        raise CliError("kplane has no home workspaces: give a workspace path instead of '~'")
    if spelled.startswith(":") and spelled != ":":
        absolute = spelled[1:]
    elif spelled == ROOT or spelled.startswith(ROOT + ":"):
        absolute = spelled
    elif current is None:
        raise CliError(f'the kubeconfig points at no workspace: "{target}" needs an '
                       "absolute path such as :root:name")
    elif spelled == ":":
        return current.split(":", 1)[0]
    else:
        absolute = f"{current}:{spelled}"
    resolved = _resolve_dots(absolute)
    if not is_valid_reference(resolved):
        raise CliError(f'invalid workspace path "{target}"')
    return resolved


def _resolve_dots(path: str) -> str:
    segments: list[str] = []
    for segment in path.split(":"):
        if segment == ".":
            continue
        if segment == "..":
            if len(segments) <= 1:
                raise CliError("cannot go up from the root workspace")
            segments.pop()
            continue
        segments.append(segment)
    return ":".join(segments)


def validate_workspace_name(name: str) -> None:
    if ":" in name or not is_valid_reference(name):
        raise CliError(
            f'invalid workspace name "{name}": a name consists of lower case alphanumeric '
            "characters or '-', and starts and ends with an alphanumeric character")


def parse_type_reference(text: str) -> dict[str, str]:
    """``--type`` as a WorkspaceTypeReference: ``T`` or ``path:T`` (kcp lower-cases names)."""
    path, _sep, name = text.rpartition(":")
    if not name:
        raise CliError(f"invalid workspace type {text!r}")
    reference = {"name": name.lower()}
    if path:
        reference["path"] = path
    return reference


def describe_type(reference: Mapping[str, Any] | None) -> str:
    """``root:universal`` for ``{path: root, name: universal}``, as kcp prints types."""
    if not reference:
        return "unknown"
    name = str(reference.get("name", ""))
    path = str(reference.get("path", ""))
    return f"{path}:{name}" if path else name


def current_workspace_message(server: str) -> str:
    _root, path = split_cluster_url(server)
    if path is None:
        return f'Current workspace is the URL "{server}".'
    return f'Current workspace is "{path}".'


# --- kubeconfig rewriting -----------------------------------------------------------------


def enter_workspace(config: Mapping[str, Any], *, server: str) -> dict[str, Any]:
    """A copy of ``config`` whose current context points at ``server``.

    The new location goes into the dedicated ``workspace.kcp.io/current`` cluster and
    context (a copy of the current ones, so the user, namespace and TLS settings carry
    over); the context being left becomes ``workspace.kcp.io/previous``. When that context
    was already the dedicated one, its cluster entry moves to ``previous`` too, because the
    ``current`` cluster entry is about to be overwritten.
    """
    updated = copy.deepcopy(dict(config))
    leaving = copy.deepcopy(current_context(config))
    leaving_cluster = _cluster_of(config, leaving)
    set_named_entry(updated, section="clusters", name=CURRENT_ENTRY,
                    body={**copy.deepcopy(leaving_cluster), "server": server})
    set_named_entry(updated, section="contexts", name=CURRENT_ENTRY,
                    body={**copy.deepcopy(leaving), "cluster": CURRENT_ENTRY})
    if leaving.get("cluster") == CURRENT_ENTRY:
        set_named_entry(updated, section="clusters", name=PREVIOUS_ENTRY,
                        body=copy.deepcopy(leaving_cluster))
        leaving["cluster"] = PREVIOUS_ENTRY
    set_named_entry(updated, section="contexts", name=PREVIOUS_ENTRY, body=leaving)
    updated["current-context"] = CURRENT_ENTRY
    return updated


def swap_with_previous(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` where the previous workspace is current and vice versa."""
    previous = named_entry(config, section="contexts", name=PREVIOUS_ENTRY)
    if previous is None:
        raise CliError("no previous workspace found in the kubeconfig")
    updated = copy.deepcopy(dict(config))
    leaving = copy.deepcopy(current_context(config))
    returning = copy.deepcopy(previous)
    # Read both cluster entries from the original before overwriting either one.
    if leaving.get("cluster") == CURRENT_ENTRY:
        set_named_entry(updated, section="clusters", name=PREVIOUS_ENTRY,
                        body=copy.deepcopy(_cluster_of(config, leaving)))
        leaving["cluster"] = PREVIOUS_ENTRY
    if returning.get("cluster") == PREVIOUS_ENTRY:
        set_named_entry(updated, section="clusters", name=CURRENT_ENTRY,
                        body=copy.deepcopy(_cluster_of(config, returning)))
        returning["cluster"] = CURRENT_ENTRY
    set_named_entry(updated, section="contexts", name=CURRENT_ENTRY, body=returning)
    set_named_entry(updated, section="contexts", name=PREVIOUS_ENTRY, body=leaving)
    updated["current-context"] = CURRENT_ENTRY
    return updated


def _cluster_of(config: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    name = str(context.get("cluster", ""))
    cluster = named_entry(config, section="clusters", name=name)
    if cluster is None:
        raise CliError(f"cluster {name!r} not found in the kubeconfig")
    return cluster


# --- talking to the server ----------------------------------------------------------------


def ensure_workspace_exists(client: ApiClient, path: str) -> None:
    """Raise a CliError unless ``path`` names a workspace the user may enter.

    A parent that answers 404 for the Workspace settles it: nothing can resolve below a
    missing name. Otherwise discovery in the workspace itself decides, as kcp's plugin
    does: 404 is unknown, 403 is a workspace the user may not enter.
    """
    parent, _sep, name = path.rpartition(":")
    # A "system:" reference is a cluster name, not a walk from a parent workspace.
    if parent and not path.startswith("system:"):
        try:
            client.get(f"/clusters/{parent}{WORKSPACES_API}/{name}")
        except ApiError as error:
            if error.code == 404:
                raise CliError(f'workspace "{path}" not found') from None
            if error.code != 403:
                raise
    try:
        client.get(f"/clusters/{path}/api")
    except ApiError as error:
        if error.code == 404:
            raise CliError(f'workspace "{path}" not found') from None
        if error.code == 403:
            raise CliError(f'access to workspace "{path}" denied') from None
        raise


def list_children(client: ApiClient, path: str) -> list[dict[str, Any]]:
    """The Workspaces inside ``path`` that are not being deleted; none if it cannot have any."""
    try:
        listed = client.get(f"/clusters/{path}{WORKSPACES_API}")
    except ApiError as error:
        if error.code == 404:
            return []
        raise
    items = listed.get("items") or []
    return [item for item in items
            if isinstance(item, dict) and not item.get("metadata", {}).get("deletionTimestamp")]


def wait_until_ready(client: ApiClient, *, parent: str, name: str, timeout: float,
                     clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll Workspace ``name`` in ``parent`` until its phase is Ready; return it."""
    deadline = clock() + timeout
    phase = ""
    while True:
        workspace = client.get(f"/clusters/{parent}{WORKSPACES_API}/{name}")
        phase = str(workspace.get("status", {}).get("phase", ""))
        if phase == _READY:
            return workspace
        if clock() >= deadline:
            raise CliError(f'timed out after {timeout:g}s waiting for workspace "{name}" to be '
                           f"ready (phase: {phase or 'none yet'})")
        sleep(_POLL_INTERVAL_SECONDS)


@dataclass
class TreeNode:
    label: str
    children: list[TreeNode] = field(default_factory=list)


def collect_tree(client: ApiClient, *, path: str, label: str, full: bool) -> TreeNode:
    # A child's path is its parent's plus its name: following names (not spec.URL) can
    # never lead back up, so the recursion ends.
    node = TreeNode(label)
    for child in list_children(client, path):
        name = str(child.get("metadata", {}).get("name", ""))
        child_path = f"{path}:{name}"
        node.children.append(collect_tree(client, path=child_path,
                                          label=child_path if full else name, full=full))
    return node


def render_tree(root: TreeNode) -> str:
    """The tree as kcp prints it: a ``.`` line, then box-drawing branches."""
    lines = ["."]
    _render_branches([root], prefix="", lines=lines)
    return "\n".join(lines) + "\n"


def _render_branches(nodes: Sequence[TreeNode], *, prefix: str, lines: list[str]) -> None:
    for index, node in enumerate(nodes):
        last = index == len(nodes) - 1
        lines.append(f"{prefix}{'└── ' if last else '├── '}{node.label}")
        _render_branches(node.children, prefix=prefix + ("    " if last else "│   "),
                         lines=lines)


# --- commands -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    """One command's kubeconfig: where it lives and what it says."""

    path: Path
    config: dict[str, Any]

    @classmethod
    def open(cls, explicit: str | None) -> Session:
        path = kubeconfig_path(explicit)
        return cls(path=path, config=load_kubeconfig(path))

    def client(self) -> ApiClient:
        return ApiClient.from_kubeconfig(self.config, config_dir=self.path.parent)

    def save(self, config: dict[str, Any]) -> None:
        save_kubeconfig(self.path, config)


def show_current(session: Session, *, short: bool, out: TextIO) -> None:
    server = current_server(session.config)
    if short:
        _root, path = split_cluster_url(server)
        if path is not None:
            print(path, file=out)
        return
    print(current_workspace_message(server), file=out)


def use_workspace(session: Session, *, target: str, short: bool, out: TextIO) -> None:
    if target in ("", "."):
        show_current(session, short=short, out=out)
        return
    if target == "-":
        updated = swap_with_previous(session.config)
    else:
        server = current_server(session.config)
        api_root, current_path = split_cluster_url(server)
        path = resolve_target(current_path, target)
        ensure_workspace_exists(session.client(), path)
        updated = enter_workspace(session.config, server=workspace_url(api_root, path))
    session.save(updated)
    show_current(Session(path=session.path, config=updated), short=short, out=out)


def create_workspace(session: Session, *, name: str, type_text: str | None, enter: bool,
                     ignore_existing: bool, timeout: float, out: TextIO) -> None:
    validate_workspace_name(name)
    type_reference = parse_type_reference(type_text) if type_text else None
    if ignore_existing and type_reference and not _is_absolute_type(type_reference):
        raise CliError("--ignore-existing needs no --type or an absolute one (root:...)")
    parent = workspace_path_of(current_server(session.config))
    client = session.client()
    workspace, existed = _create_or_get(client, parent=parent, name=name,
                                        type_reference=type_reference,
                                        ignore_existing=ignore_existing)
    actual_type = workspace.get("spec", {}).get("type")
    if existed and type_reference and not _same_type(actual_type, type_reference):
        raise CliError(f'workspace "{name}" cannot be created with type '
                       f"{describe_type(type_reference)}, it already exists with type "
                       f"{describe_type(actual_type)}")
    subject = f'Workspace "{name}" (type {describe_type(actual_type)})'
    if workspace.get("status", {}).get("phase") == _READY:
        print(f"{subject} already exists." if existed else f"{subject} created.", file=out)
    else:
        verb = "already exists" if existed else "created"
        print(f"{subject} {verb}. Waiting for it to be ready...", file=out, flush=True)
        wait_until_ready(client, parent=parent, name=name, timeout=timeout)
    print(f"{subject} is ready to use.", file=out)
    if enter:
        use_workspace(session, target=name, short=False, out=out)


def _create_or_get(client: ApiClient, *, parent: str, name: str,
                   type_reference: dict[str, str] | None,
                   ignore_existing: bool) -> tuple[dict[str, Any], bool]:
    body: dict[str, Any] = {"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
                            "metadata": {"name": name}, "spec": {}}
    if type_reference:
        body["spec"]["type"] = type_reference
    collection = f"/clusters/{parent}{WORKSPACES_API}"
    try:
        return client.post(collection, body), False
    except ApiError as error:
        if not (ignore_existing and error.code == 409):
            raise
    return client.get(f"{collection}/{name}"), True


def _is_absolute_type(reference: Mapping[str, str]) -> bool:
    path = reference.get("path", "")
    return path == ROOT or path.startswith(ROOT + ":")


def _same_type(actual: Mapping[str, Any] | None, wanted: Mapping[str, str]) -> bool:
    if not actual:
        return False
    return bool(actual.get("name") == wanted["name"]
                and actual.get("path", "") == wanted.get("path", ""))


def show_tree(session: Session, *, full: bool, out: TextIO) -> None:
    path = workspace_path_of(current_server(session.config))
    label = path if full else path.rsplit(":", 1)[-1]
    root = collect_tree(session.client(), path=path, label=label, full=full)
    out.write(render_tree(root))


# --- argument parsing ---------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ws`` to the ``kplane`` command."""
    parser = subparsers.add_parser(
        "ws", help="show, enter, create and list workspaces",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_ws_arguments(parser)
    parser.set_defaults(handler=run, ws_prog="kplane ws")


def add_ws_arguments(parser: argparse.ArgumentParser) -> None:
    """The outer arguments of ``ws``; the words after them are parsed per command by ``run``.

    A workspace may be typed in place of a command (``ws ..``, ``ws -``, ``ws root:a``),
    which argparse's sub-commands cannot express, hence the two stages.
    """
    parser.add_argument("--kubeconfig", help="the kubeconfig to read and rewrite "
                        "(default: $KUBECONFIG, then ~/.kube/config)")
    parser.add_argument("words", nargs=argparse.REMAINDER, metavar="COMMAND ...",
                        help="a command and its arguments (see above)")


def run(args: argparse.Namespace) -> int:
    """Run a ``ws`` command; errors become one line on stderr and exit code 1."""
    def command() -> None:
        parsed = _command_parser(getattr(args, "ws_prog", "kplane ws")).parse_args(
            _with_implicit_command(args.words))
        kubeconfig = getattr(parsed, "kubeconfig", None) or args.kubeconfig
        _dispatch(parsed, Session.open(kubeconfig), out=sys.stdout)

    return exit_code(command)


def _with_implicit_command(words: Sequence[str]) -> list[str]:
    if not words:
        return ["current"]
    first = words[0]
    if first in _SUBCOMMANDS or (first.startswith("-") and first != "-"):
        return list(words)
    return ["use", *words]


def _dispatch(command: argparse.Namespace, session: Session, *, out: TextIO) -> None:
    if command.action == "current":
        show_current(session, short=command.short, out=out)
    elif command.action in ("use", "cd"):
        use_workspace(session, target=command.target, short=command.short, out=out)
    elif command.action == "create":
        create_workspace(session, name=command.name, type_text=command.type,
                         enter=command.enter, ignore_existing=command.ignore_existing,
                         timeout=command.timeout, out=out)
    elif command.action == "tree":
        show_tree(session, full=command.full, out=out)


def _command_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")
    current = _add_command(commands, "current", help="print the current workspace")
    _add_short_flag(current)
    use = _add_command(commands, "use", aliases=["cd"], help="enter a workspace")
    use.add_argument("target", metavar="WORKSPACE",
                     help="name, relative path, :absolute:path, .., -, : or .")
    _add_short_flag(use)
    create = _add_command(commands, "create", help="create a child of the current workspace")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--type", metavar="TYPE",
                        help="workspace type, as NAME or PATH:NAME (default: the parent "
                             "type's default child type)")
    create.add_argument("--enter", action="store_true", help="enter it once it is ready")
    create.add_argument("--ignore-existing", action="store_true",
                        help="succeed if it already exists (with the same type)")
    create.add_argument("--timeout", type=float, default=DEFAULT_READY_TIMEOUT_SECONDS,
                        metavar="SECONDS",
                        help="how long to wait for it to be ready (default: 60)")
    tree = _add_command(commands, "tree", help="print the workspaces under the current one")
    tree.add_argument("-f", "--full", action="store_true", help="show full workspace paths")
    return parser


def _add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
                 **kwargs: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, **kwargs)
    # Accept --kubeconfig after the command too, as kubectl users type it anywhere.
    parser.add_argument("--kubeconfig", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _add_short_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--short", action="store_true",
                        help="print only the workspace path (for shell prompts)")
