"""The ``kubectl-ws`` executable, so that ``kubectl ws ...`` runs kplane's workspace commands.

kubectl runs any ``kubectl-<name>`` found on PATH for ``kubectl <name>``, passing the words
after the plugin name and nothing else: the kubeconfig comes from ``--kubeconfig`` given
after ``ws``, else ``$KUBECONFIG``, else ``~/.kube/config``, as kubectl resolves it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kplane.cli import ws


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl ws", description=ws.DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    ws.add_ws_arguments(parser)
    parser.set_defaults(ws_prog="kubectl ws")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return ws.run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
