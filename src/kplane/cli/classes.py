"""``kplane class``: a Kubernetes cluster (a workspace) for every trainee of a class, in seconds.

A class is a workspace ``root:<class>`` labelled ``kplane.io/class`` whose children are
the trainees' workspaces. Everything the class needs lives on the server, so every command
works from any machine with the admin kubeconfig:

* the expiry is the class Workspace's ``kplane.io/expires-at`` annotation, which the
  server acts on (it deletes the class and everything below it);
* the object quota is kept in ``kplane.io/max-objects`` on the class Workspace and set
  on each trainee's LogicalCluster as ``core.kcp.io/max-total-objects``;
* the template is stored in the class workspace (ConfigMap ``kplane-class-template``),
  so ``reset`` can rebuild a trainee's workspace without the original files.

A trainee is the user ``<class>:<trainee>`` (a client certificate minted from the
server's CA, expiring with the class), bound to ``cluster-admin`` in their own workspace
and nowhere else. Setting up a class is a pipeline over a thread pool: the trainee
workspaces are created at once, and each one is set up (binding, template, quota,
kubeconfig) as soon as a listing shows it Ready.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import orjson

from kplane.cli import class_template as template
from kplane.cli.class_http import APPLY_PATCH, KeepAliveClient
from kplane.cli.client import (
    ApiError,
    CliError,
    current_cluster,
    current_server,
    exit_code,
    kubeconfig_path,
    load_kubeconfig,
    save_kubeconfig,
    split_cluster_url,
)
from kplane.cli.kubeconfig_cmd import (
    embed_files,
    minted_credentials,
    parse_duration,
    workspace_kubeconfig,
)
from kplane.cli.ws import validate_workspace_name

ROOT = "root"
WORKSPACES_API = "/apis/tenancy.kcp.io/v1alpha1/workspaces"
CLASS_LABEL = "kplane.io/class"
EXPIRES_ANNOTATION = "kplane.io/expires-at"
MAX_OBJECTS_ANNOTATION = "kplane.io/max-objects"
QUOTA_ANNOTATION = "core.kcp.io/max-total-objects"
TEMPLATE_CONFIGMAP = "kplane-class-template"
TEMPLATE_KEY = "objects.json"
BINDING_NAME = "trainee-admin"
DEFAULT_DATA_DIR = ".kplane"
DEFAULT_EXPIRES = "8h"
DEFAULT_MAX_OBJECTS = 500
DEFAULT_WORKERS = 16
READY_TIMEOUT_SECONDS = 60.0
# Objects every trainee workspace holds besides the template: its LogicalCluster, the
# "default" namespace and the trainee's ClusterRoleBinding (all count against the quota).
BASE_OBJECTS = 3
_POLL_SECONDS = 0.02
_READY = "Ready"
# X.509 limits a certificate's CN, which carries the user name, to 64 characters.
_MAX_USER_NAME = 64


# --- names, times and the class's description ----------------------------------------------


def trainee_names(*, count: int | None, names_file: Path | None) -> list[str]:
    """``trainee-01``.. for ``--trainees N``, or the names listed in ``--trainees-file``."""
    if names_file is not None:
        try:
            lines = names_file.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise CliError(f"cannot read {str(names_file)!r}: {error.strerror}") from None
        names = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    elif count is not None and count > 0:
        width = max(2, len(str(count)))
        names = [f"trainee-{index:0{width}d}" for index in range(1, count + 1)]
    else:
        raise CliError("give --trainees N (N > 0) or --trainees-file FILE")
    if not names:
        raise CliError(f"{names_file} lists no trainees")
    for name in names:
        validate_workspace_name(name)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise CliError(f"trainee names listed twice: {', '.join(duplicates)}")
    return names


def user_name(class_name: str, trainee: str) -> str:
    """The trainee's identity; the class prefix keeps names distinct across classes."""
    return f"{class_name}:{trainee}"


def check_user_names(class_name: str, trainees: Iterable[str]) -> None:
    too_long = [t for t in trainees if len(user_name(class_name, t)) > _MAX_USER_NAME]
    if too_long:
        raise CliError(f'user name "{user_name(class_name, too_long[0])}" is longer than '
                       f"{_MAX_USER_NAME} characters: use shorter class or trainee names")


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC to the second, as Kubernetes writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def class_path(class_name: str) -> str:
    return f"{ROOT}:{class_name}"


def trainee_path(class_name: str, trainee: str) -> str:
    return f"{ROOT}:{class_name}:{trainee}"


def class_workspace_body(*, class_name: str, expires_at: datetime,
                         max_objects: int) -> dict[str, Any]:
    return {"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
            "metadata": {"name": class_name, "labels": {CLASS_LABEL: class_name},
                         "annotations": {EXPIRES_ANNOTATION: format_time(expires_at),
                                         MAX_OBJECTS_ANNOTATION: str(max_objects)}},
            "spec": {}}


def trainee_workspace_body(*, class_name: str, trainee: str) -> dict[str, Any]:
    return {"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
            "metadata": {"name": trainee, "labels": {CLASS_LABEL: class_name}}, "spec": {}}


def binding_body(user: str) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": BINDING_NAME},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": user}]}


def template_configmap(objects: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": TEMPLATE_CONFIGMAP, "namespace": "default"},
            "data": {TEMPLATE_KEY: orjson.dumps(list(objects)).decode()}}


def check_quota_fits(*, objects: int, max_objects: int) -> None:
    needed = objects + BASE_OBJECTS
    if needed > max_objects:
        raise CliError(f"the template has {objects} objects: with the {BASE_OBJECTS} every "
                       f"workspace holds that is {needed}, more than --max-objects "
                       f"{max_objects}")


# --- the class on the server --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassInfo:
    """A class as stored on the server: its Workspace's annotations and its template."""

    name: str
    expires_at: datetime | None
    max_objects: int | None
    phase: str


@dataclass
class TraineeResult:
    trainee: str
    path: str
    kubeconfig: Path | None = None


@dataclass
class Trainer:
    """The admin's view of the server: everything ``kplane class`` does goes through here."""

    client: KeepAliveClient
    api_root: str
    cluster: dict[str, Any]
    data_dir: Path
    workers: int = DEFAULT_WORKERS
    progress: Progress | None = None
    _pool: concurrent.futures.ThreadPoolExecutor | None = field(default=None, repr=False)

    @classmethod
    def from_kubeconfig(cls, explicit: str | None, *, data_dir: Path,
                        workers: int = DEFAULT_WORKERS) -> Trainer:
        path = kubeconfig_path(explicit)
        config = load_kubeconfig(path)
        api_root, _workspace = split_cluster_url(current_server(config))
        cluster = embed_files(current_cluster(config), fields=("certificate-authority",),
                              config_dir=path.parent)
        return cls(client=KeepAliveClient.from_kubeconfig(config, config_dir=path.parent),
                   api_root=api_root, cluster=cluster, data_dir=data_dir, workers=workers)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.client.close()

    @property
    def pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix="kplane-class")
        return self._pool

    # -- reading a class -------------------------------------------------------------------

    def class_info(self, class_name: str) -> ClassInfo:
        try:
            workspace = self.client.get(f"/clusters/{ROOT}{WORKSPACES_API}/{class_name}")
        except ApiError as error:
            if error.code == 404:
                raise CliError(f'class "{class_name}" not found') from None
            raise
        metadata = workspace.get("metadata") or {}
        if (metadata.get("labels") or {}).get(CLASS_LABEL) != class_name:
            raise CliError(f'workspace "{class_path(class_name)}" is not a class')
        annotations = metadata.get("annotations") or {}
        limit = str(annotations.get(MAX_OBJECTS_ANNOTATION, ""))
        return ClassInfo(name=class_name,
                         expires_at=parse_time(str(annotations.get(EXPIRES_ANNOTATION, ""))),
                         max_objects=int(limit) if limit.isdigit() else None,
                         phase=str((workspace.get("status") or {}).get("phase", "")))

    def trainee_workspaces(self, class_name: str) -> list[dict[str, Any]]:
        listed = self.client.get(f"/clusters/{class_path(class_name)}{WORKSPACES_API}")
        items = [item for item in listed.get("items") or [] if isinstance(item, dict)]
        return sorted(items, key=lambda item: str(item["metadata"]["name"]))

    def stored_template(self, class_name: str) -> list[dict[str, Any]]:
        configmap = self.client.get(f"/clusters/{class_path(class_name)}/api/v1/namespaces/"
                                    f"default/configmaps/{TEMPLATE_CONFIGMAP}")
        objects = orjson.loads((configmap.get("data") or {}).get(TEMPLATE_KEY, "[]"))
        return [obj for obj in objects if isinstance(obj, dict)]

    # -- creating ---------------------------------------------------------------------------

    def create_class_workspace(self, *, class_name: str, expires_at: datetime,
                               max_objects: int, objects: Sequence[Mapping[str, Any]]) -> None:
        body = class_workspace_body(class_name=class_name, expires_at=expires_at,
                                    max_objects=max_objects)
        try:
            self.client.post(f"/clusters/{ROOT}{WORKSPACES_API}", body)
        except ApiError as error:
            if error.code == 409:
                raise CliError(f'class "{class_name}" already exists (workspace '
                               f'"{class_path(class_name)}")') from None
            raise
        self.wait_ready(parent=ROOT, names=[class_name], on_ready=lambda _name: None)
        self.client.post(f"/clusters/{class_path(class_name)}/api/v1/namespaces/default/"
                         "configmaps", template_configmap(objects))

    def discover(self, class_name: str,
                 objects: Sequence[Mapping[str, Any]]) -> template.ResourceMap:
        """Kinds to resources, asked once per class: every workspace serves the same APIs."""
        return template.discover_resources(self.client.get, workspace=class_path(class_name),
                                           api_versions=template.group_versions(objects))

    def provision(self, *, class_name: str, trainees: Sequence[str],
                  objects: Sequence[Mapping[str, Any]], max_objects: int | None,
                  expires_at: datetime | None, out_dir: Path | None) -> list[TraineeResult]:
        """Create the trainees' workspaces and set each up as soon as it is Ready.

        With ``out_dir``, also mint a kubeconfig per trainee (valid until ``expires_at``).
        """
        resources = self.discover(class_name, objects)
        waves = template.apply_waves([dict(obj) for obj in objects], resources)
        parent = class_path(class_name)
        progress = self.progress or Progress(total=len(trainees), stream=None)
        creations = [self.pool.submit(self._create_trainee_workspace, class_name, trainee)
                     for trainee in trainees]
        for creation in concurrent.futures.as_completed(creations):
            creation.result()
            progress.advance("created")
        setups: list[concurrent.futures.Future[TraineeResult]] = []

        def set_up(trainee: str) -> None:
            progress.advance("ready")
            setups.append(self.pool.submit(
                self._set_up_trainee, class_name=class_name, trainee=trainee, waves=waves,
                max_objects=max_objects, expires_at=expires_at, out_dir=out_dir,
                progress=progress))

        self.wait_ready(parent=parent, names=trainees, on_ready=set_up)
        results = [setup.result() for setup in setups]
        return sorted(results, key=lambda result: trainees.index(result.trainee))

    def _create_trainee_workspace(self, class_name: str, trainee: str) -> None:
        body = trainee_workspace_body(class_name=class_name, trainee=trainee)
        try:
            self.client.post(f"/clusters/{class_path(class_name)}{WORKSPACES_API}", body)
        except ApiError as error:
            if error.code == 409:
                raise CliError(f'trainee "{trainee}" already exists in class '
                               f'"{class_name}"') from None
            raise

    def _set_up_trainee(self, *, class_name: str, trainee: str,
                        waves: list[list[tuple[dict[str, Any], template.ResourceInfo]]],
                        max_objects: int | None, expires_at: datetime | None,
                        out_dir: Path | None, progress: Progress) -> TraineeResult:
        path = trainee_path(class_name, trainee)
        user = user_name(class_name, trainee)
        self.client.post(f"/clusters/{path}/apis/rbac.authorization.k8s.io/v1/"
                         "clusterrolebindings", binding_body(user))
        for wave in waves:
            for obj, info in wave:
                self.client.patch(template.apply_path(path, obj, info), obj,
                                  content_type=APPLY_PATCH)
        if max_objects is not None:
            self.set_quota(path, max_objects)
        result = TraineeResult(trainee=trainee, path=path)
        if out_dir is not None and expires_at is not None:
            result.kubeconfig = self.write_kubeconfig(class_name=class_name, trainee=trainee,
                                                      expires_at=expires_at, out_dir=out_dir)
        progress.advance("set up")
        return result

    def set_quota(self, path: str, max_objects: int) -> None:
        self.client.patch(f"/clusters/{path}/apis/core.kcp.io/v1alpha1/logicalclusters/cluster",
                          {"metadata": {"annotations": {QUOTA_ANNOTATION: str(max_objects)}}})

    def write_kubeconfig(self, *, class_name: str, trainee: str, expires_at: datetime,
                         out_dir: Path) -> Path:
        lifetime = expires_at - datetime.now(UTC)
        if lifetime <= timedelta(0):
            raise CliError(f'class "{class_name}" has expired')
        credentials = minted_credentials(data_dir=self.data_dir,
                                         user=user_name(class_name, trainee), groups=[],
                                         expires=lifetime)
        path = trainee_path(class_name, trainee)
        config = workspace_kubeconfig(cluster=self.cluster,
                                      server=f"{self.api_root}/clusters/{path}",
                                      context=path, credentials=credentials)
        target = out_dir / f"{trainee}.kubeconfig"
        save_kubeconfig(target, config)
        return target

    def wait_ready(self, *, parent: str, names: Sequence[str],
                   on_ready: Callable[[str], None],
                   timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Call ``on_ready(name)`` once for each of ``names`` as a listing shows it Ready.

        One LIST of the parent per round serves every workspace being waited for.
        """
        waiting = set(names)
        deadline = time.monotonic() + timeout
        while waiting:
            phases = {str(item["metadata"]["name"]): str((item.get("status") or {}).get(
                "phase", "")) for item in self.client.get(
                f"/clusters/{parent}{WORKSPACES_API}").get("items") or []}
            for name in [n for n in names if n in waiting and phases.get(n) == _READY]:
                waiting.discard(name)
                on_ready(name)
            if not waiting:
                return
            if time.monotonic() >= deadline:
                stuck = sorted(waiting)
                raise CliError(f"timed out after {timeout:g}s waiting for {len(stuck)} "
                               f"workspace(s) in {parent} to be ready: {', '.join(stuck[:5])}")
            time.sleep(_POLL_SECONDS)

    # -- removing -------------------------------------------------------------------------

    def delete_workspace(self, *, parent: str, name: str, wait: bool,
                         timeout: float = READY_TIMEOUT_SECONDS) -> None:
        url = f"/clusters/{parent}{WORKSPACES_API}/{name}"
        try:
            self.client.delete(url)
        except ApiError as error:
            if error.code != 404:
                raise
        deadline = time.monotonic() + timeout
        while wait:
            try:
                self.client.get(url)
            except ApiError as error:
                if error.code == 404:
                    return
                raise
            if time.monotonic() >= deadline:
                raise CliError(f'timed out after {timeout:g}s waiting for workspace '
                               f'"{parent}:{name}" to be deleted')
            time.sleep(_POLL_SECONDS)

    # -- status -----------------------------------------------------------------------------

    def usage(self, path: str,
              list_paths: Sequence[str]) -> tuple[int, datetime | None, int | None]:
        """Objects in the workspace at ``path``, the time of the newest change, its quota."""
        seen: set[str] = set()
        newest: datetime | None = None
        quota: int | None = None
        for list_path in list_paths:
            try:
                listed = self.client.get(f"/clusters/{path}{list_path}")
            except ApiError as error:
                if error.code in (403, 404, 405):
                    continue
                raise
            for item in listed.get("items") or []:
                metadata = item.get("metadata") or {}
                # The same object may be served under two groups (events): count it once.
                seen.add(str(metadata.get("uid") or id(item)))
                newest = _later(newest, last_change(metadata))
                if list_path.endswith("/logicalclusters"):
                    quota = _quota_of(metadata)
        return len(seen), newest, quota

    def list_paths(self, path: str) -> list[str]:
        """Every listable resource in the workspace at ``path``, from discovery."""
        paths = template.listable_resources(self.client.get(f"/clusters/{path}/api/v1"),
                                            api_version="v1")
        groups = self.client.get(f"/clusters/{path}/apis").get("groups") or []
        for group in groups:
            version = str((group.get("preferredVersion") or {}).get("groupVersion", ""))
            if version:
                listing = self.client.get(f"/clusters/{path}/apis/{version}")
                paths += template.listable_resources(listing, api_version=version)
        return paths


def last_change(metadata: Mapping[str, Any]) -> datetime | None:
    """The newest of an object's creation time and its managed fields' times."""
    newest = parse_time(str(metadata.get("creationTimestamp") or ""))
    for entry in metadata.get("managedFields") or []:
        newest = _later(newest, parse_time(str(entry.get("time") or "")))
    return newest


def _later(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None:
        return second
    if second is None:
        return first
    return max(first, second)


def _quota_of(metadata: Mapping[str, Any]) -> int | None:
    text = str((metadata.get("annotations") or {}).get(QUOTA_ANNOTATION, ""))
    return int(text) if text.isdigit() else None


# --- output ---------------------------------------------------------------------------------


class Progress:
    """Counts of trainees per stage, redrawn on one line when writing to a terminal."""

    def __init__(self, *, total: int, stream: TextIO | None) -> None:
        self.total = total
        self.counts: dict[str, int] = {}
        self._stream = stream if stream is not None and stream.isatty() else None
        self._last_draw = 0.0

    def advance(self, stage: str) -> None:
        # Trainee threads call this concurrently; a lost redraw is harmless, a lost count
        # is not, and dict item assignment of an int is atomic under the GIL.
        self.counts[stage] = self.counts.get(stage, 0) + 1
        now = time.monotonic()
        if self._stream is not None and (now - self._last_draw > 0.05
                                         or self.counts[stage] == self.total):
            self._last_draw = now
            self._stream.write("\r" + self.line())
            self._stream.flush()

    def line(self) -> str:
        return ", ".join(f"{stage} {count}/{self.total}" for stage, count in self.counts.items())

    def finish(self) -> None:
        if self._stream is not None:
            self._stream.write("\n")
            self._stream.flush()


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded like kubectl's: three spaces apart, the last one unpadded."""
    table = [list(headers), *[list(row) for row in rows]]
    widths = [max(len(row[column]) for row in table) for column in range(len(headers))]
    lines = []
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("   ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def describe_age(moment: datetime | None, *, now: datetime) -> str:
    """``2026-11-28T18:00:00Z (in 7h59m)`` or ``(3m ago)``."""
    if moment is None:
        return "<none>"
    delta = moment - now
    span = _short_duration(abs(delta))
    return f"{format_time(moment)} ({'in ' + span if delta >= timedelta(0) else span + ' ago'})"


def _short_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def write_zip(out_dir: Path, *, class_name: str, files: Iterable[Path]) -> Path:
    """All kubeconfigs in one archive, to hand out in one go."""
    target = out_dir / f"{class_name}-kubeconfigs.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            archive.write(file, arcname=file.name)
    target.chmod(0o600)
    return target


# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateOptions:
    class_name: str
    trainees: list[str]
    objects: list[dict[str, Any]]
    expires_in: timedelta
    max_objects: int
    out_dir: Path


@dataclass(frozen=True, slots=True)
class CreateReport:
    results: list[TraineeResult]
    archive: Path
    expires_at: datetime
    seconds: float


def create_class(trainer: Trainer, options: CreateOptions) -> CreateReport:
    """The whole of ``kplane class create``, without the printing."""
    started = time.monotonic()
    validate_workspace_name(options.class_name)
    check_user_names(options.class_name, options.trainees)
    check_quota_fits(objects=len(options.objects), max_objects=options.max_objects)
    if not (trainer.data_dir / "pki" / "ca.key").exists():
        raise CliError(f"no kplane CA in {trainer.data_dir}/pki: pass the server's --data-dir")
    expires_at = datetime.now(UTC) + options.expires_in
    options.out_dir.mkdir(parents=True, exist_ok=True)
    trainer.create_class_workspace(class_name=options.class_name, expires_at=expires_at,
                                   max_objects=options.max_objects, objects=options.objects)
    results = trainer.provision(class_name=options.class_name, trainees=options.trainees,
                                objects=options.objects, max_objects=options.max_objects,
                                expires_at=expires_at, out_dir=options.out_dir)
    archive = write_zip(options.out_dir, class_name=options.class_name,
                        files=[r.kubeconfig for r in results if r.kubeconfig is not None])
    return CreateReport(results=results, archive=archive, expires_at=expires_at,
                        seconds=time.monotonic() - started)


def reset_trainees(trainer: Trainer, *, class_name: str, trainees: Sequence[str] | None) -> \
        list[str]:
    """Rebuild trainees' workspaces from the stored template; their kubeconfigs stay valid.

    The workspace is deleted and created again under the same path, so nothing a trainee
    did survives; the identity in their certificate is bound again in the new workspace.
    """
    info = trainer.class_info(class_name)
    existing = [str(item["metadata"]["name"]) for item in trainer.trainee_workspaces(class_name)]
    chosen = list(existing if trainees is None else trainees)
    unknown = [name for name in chosen if name not in existing]
    if unknown:
        raise CliError(f'trainee "{unknown[0]}" not found in class "{class_name}"')
    objects = trainer.stored_template(class_name)
    parent = class_path(class_name)
    deletions = [trainer.pool.submit(trainer.delete_workspace, parent=parent, name=name,
                                     wait=True) for name in chosen]
    for deletion in deletions:
        deletion.result()
    trainer.provision(class_name=class_name, trainees=chosen, objects=objects,
                      max_objects=info.max_objects, expires_at=None, out_dir=None)
    return chosen


@dataclass(frozen=True, slots=True)
class TraineeStatus:
    trainee: str
    phase: str
    objects: int | None
    quota: int | None
    last_change: datetime | None


def class_status(trainer: Trainer, class_name: str) -> tuple[ClassInfo, list[TraineeStatus]]:
    info = trainer.class_info(class_name)
    workspaces = trainer.trainee_workspaces(class_name)
    ready = [str(ws["metadata"]["name"]) for ws in workspaces
             if (ws.get("status") or {}).get("phase") == _READY]
    list_paths = trainer.list_paths(trainee_path(class_name, ready[0])) if ready else []
    usages = dict(zip(ready, trainer.pool.map(
        lambda name: trainer.usage(trainee_path(class_name, name), list_paths), ready),
        strict=True))
    statuses = []
    for workspace in workspaces:
        name = str(workspace["metadata"]["name"])
        count, newest, quota = usages.get(name, (None, None, None))
        statuses.append(TraineeStatus(
            trainee=name, phase=str((workspace.get("status") or {}).get("phase", "")),
            objects=count, quota=quota, last_change=newest))
    return info, statuses


def extend_class(trainer: Trainer, *, class_name: str, by: timedelta,
                 out_dir: Path | None) -> tuple[datetime, list[Path]]:
    """Move the class's expiry later; re-mint the kubeconfigs in ``out_dir`` to match."""
    info = trainer.class_info(class_name)
    now = datetime.now(UTC)
    base = info.expires_at if info.expires_at is not None and info.expires_at > now else now
    expires_at = base + by
    trainer.client.patch(f"/clusters/{ROOT}{WORKSPACES_API}/{class_name}",
                         {"metadata": {"annotations": {
                             EXPIRES_ANNOTATION: format_time(expires_at)}}})
    written: list[Path] = []
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        names = [str(ws["metadata"]["name"]) for ws in trainer.trainee_workspaces(class_name)]
        written = list(trainer.pool.map(
            lambda name: trainer.write_kubeconfig(class_name=class_name, trainee=name,
                                                  expires_at=expires_at, out_dir=out_dir),
            names))
        write_zip(out_dir, class_name=class_name, files=written)
    return expires_at, written


def delete_class(trainer: Trainer, *, class_name: str, wait: bool) -> None:
    trainer.class_info(class_name)  # refuse to delete a workspace that is not a class
    trainer.delete_workspace(parent=ROOT, name=class_name, wait=wait)


# --- argument parsing and printing ---------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``class`` to the ``kplane`` command."""
    parser = subparsers.add_parser(
        "class", help="a workspace and a kubeconfig for every trainee of a class",
        description="Create, inspect, reset, extend and delete training classes: one "
                    "workspace per trainee, set up from a template, with a kubeconfig each.")
    commands = parser.add_subparsers(dest="class_command", required=True, metavar="COMMAND")

    create = commands.add_parser("create", help="create a class and its trainees' workspaces")
    create.add_argument("name", metavar="NAME")
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument("--trainees", type=int, metavar="N",
                     help="N trainees named trainee-01, trainee-02, ...")
    who.add_argument("--trainees-file", type=Path, metavar="FILE",
                     help="one trainee name per line")
    create.add_argument("--template", type=Path, metavar="PATH",
                        help="a manifest file or a folder of them, applied in each workspace")
    create.add_argument("--expires", default=DEFAULT_EXPIRES,
                        help=f"lifetime of the class, e.g. 90m, 8h, 2d (default "
                             f"{DEFAULT_EXPIRES})")
    create.add_argument("--max-objects", type=int, default=DEFAULT_MAX_OBJECTS,
                        help=f"objects each workspace may hold (default {DEFAULT_MAX_OBJECTS})")
    create.add_argument("--out", type=Path, metavar="DIR",
                        help="where to write the kubeconfigs (default ./NAME)")
    create.set_defaults(class_handler=_run_create)

    status = commands.add_parser("status", help="a table of the class's trainees")
    status.add_argument("name", metavar="NAME")
    status.set_defaults(class_handler=_run_status)

    reset = commands.add_parser("reset", help="put trainees' workspaces back to the template")
    reset.add_argument("name", metavar="NAME")
    reset.add_argument("trainee", nargs="?", metavar="TRAINEE")
    reset.add_argument("--all", action="store_true", help="reset every trainee")
    reset.set_defaults(class_handler=_run_reset)

    extend = commands.add_parser("extend", help="make the class last longer")
    extend.add_argument("name", metavar="NAME")
    extend.add_argument("--by", required=True, help="how much longer, e.g. 2h")
    extend.add_argument("--out", type=Path, metavar="DIR",
                        help="re-mint the kubeconfigs into DIR (default ./NAME when it exists)")
    extend.set_defaults(class_handler=_run_extend)

    delete = commands.add_parser("delete", help="delete the class and all its workspaces")
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("--no-wait", action="store_true",
                        help="return without waiting until everything is deleted")
    delete.set_defaults(class_handler=_run_delete)

    for command in (create, status, reset, extend, delete):
        command.add_argument("--kubeconfig", help="the admin kubeconfig (default: "
                             "<data-dir>/admin.kubeconfig)")
        command.add_argument("--data-dir", type=Path, default=Path(DEFAULT_DATA_DIR),
                             help="the server's data directory, holding its CA "
                                  f"(default {DEFAULT_DATA_DIR})")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run a ``class`` command; errors become one line on stderr and exit code 1."""
    kubeconfig = args.kubeconfig or str(args.data_dir / "admin.kubeconfig")

    def command() -> None:
        trainer = Trainer.from_kubeconfig(kubeconfig, data_dir=args.data_dir)
        try:
            handler: Callable[[Trainer, argparse.Namespace, TextIO], None] = args.class_handler
            handler(trainer, args, sys.stdout)
        finally:
            trainer.close()

    return exit_code(command)


def _run_create(trainer: Trainer, args: argparse.Namespace, out: TextIO) -> None:
    trainees = trainee_names(count=args.trainees, names_file=args.trainees_file)
    options = CreateOptions(
        class_name=args.name, trainees=trainees,
        objects=template.load_template(args.template) if args.template else [],
        expires_in=parse_duration(args.expires), max_objects=args.max_objects,
        out_dir=args.out or Path(args.name))
    trainer.progress = Progress(total=len(trainees), stream=sys.stderr)
    try:
        report = create_class(trainer, options)
    finally:
        trainer.progress.finish()
    out.write(render_table(
        ["TRAINEE", "WORKSPACE", "USER", "KUBECONFIG"],
        [[r.trainee, r.path, user_name(args.name, r.trainee), str(r.kubeconfig)]
         for r in report.results]))
    print(f'\nClass "{args.name}": {len(report.results)} workspaces ready in '
          f"{report.seconds:.1f}s, {len(options.objects)} template objects each, at most "
          f"{options.max_objects} objects per workspace.", file=out)
    print(f"Kubeconfigs: {options.out_dir}/ and {report.archive}", file=out)
    print(f"Expires at {format_time(report.expires_at)}: the server then deletes the class "
          "and its workspaces, and the certificates stop working.", file=out)


def _run_status(trainer: Trainer, args: argparse.Namespace, out: TextIO) -> None:
    info, statuses = class_status(trainer, args.name)
    now = datetime.now(UTC)
    expiry = describe_age(info.expires_at, now=now)
    out.write(render_table(
        ["TRAINEE", "PHASE", "OBJECTS", "LAST CHANGE", "EXPIRES"],
        [[s.trainee, s.phase or "<none>", _objects_cell(s), describe_age(s.last_change, now=now),
          expiry] for s in statuses]))


def _objects_cell(status: TraineeStatus) -> str:
    if status.objects is None:
        return "?"
    limit = status.quota if status.quota is not None else "-"
    return f"{status.objects}/{limit}"


def _run_reset(trainer: Trainer, args: argparse.Namespace, out: TextIO) -> None:
    if bool(args.trainee) == bool(args.all):
        raise CliError("give one TRAINEE or --all")
    started = time.monotonic()
    done = reset_trainees(trainer, class_name=args.name,
                          trainees=None if args.all else [args.trainee])
    print(f"Reset {len(done)} workspace(s) of class \"{args.name}\" to the template in "
          f"{time.monotonic() - started:.2f}s.", file=out)


def _run_extend(trainer: Trainer, args: argparse.Namespace, out: TextIO) -> None:
    out_dir: Path | None = args.out
    if out_dir is None and Path(args.name).is_dir():
        out_dir = Path(args.name)
    expires_at, written = extend_class(trainer, class_name=args.name,
                                       by=parse_duration(args.by), out_dir=out_dir)
    print(f'Class "{args.name}" now expires at {format_time(expires_at)}.', file=out)
    if written:
        print(f"Wrote {len(written)} new kubeconfigs to {out_dir}/: hand them out again, the "
              "old certificates still expire at the old time.", file=out)
    else:
        print("No kubeconfigs were re-minted (give --out DIR): the trainees' certificates "
              "still expire at the old time.", file=out)


def _run_delete(trainer: Trainer, args: argparse.Namespace, out: TextIO) -> None:
    delete_class(trainer, class_name=args.name, wait=not args.no_wait)
    print(f'Class "{args.name}" deleted.' if not args.no_wait
          else f'Class "{args.name}" is being deleted.', file=out)
