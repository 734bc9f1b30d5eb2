"""The ``kairos`` command. The only module that imports every layer."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kairos import __version__


def build_parser() -> argparse.ArgumentParser:
    from kairos.commands import bench as bench_cmd
    from kairos.commands import experiment as experiment_cmd
    from kairos.commands import profile as profile_cmd
    from kairos.commands import serve as serve_cmd
    from kairos.commands import sim as sim_cmd

    parser = argparse.ArgumentParser(
        prog="kairos",
        description="SLO-aware scheduling for prefill/decode disaggregated LLM serving.",
    )
    parser.add_argument("--version", action="version", version=f"kairos {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sim_cmd.add_parser(sub)
    experiment_cmd.add_parser(sub)
    serve_cmd.add_parser(sub)
    bench_cmd.add_parser(sub)
    profile_cmd.add_parser(sub)
    lists = sub.add_parser("list", help="list bundled traces, profiles and policies")
    lists.set_defaults(func=_list)
    return parser


def _list(args: argparse.Namespace) -> int:
    from kairos.core.policies import DECODE_POLICIES, PREFILL_POLICIES
    from kairos.profiles import available_profiles
    from kairos.traces import available_traces

    print("traces:          " + ", ".join(available_traces()))
    print("profiles:        " + ", ".join(available_profiles()))
    print("prefill policies: " + ", ".join(PREFILL_POLICIES.names()))
    print("decode policies:  " + ", ".join(DECODE_POLICIES.names()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, OSError) as e:
        # Bad input (unknown trace, malformed file, impossible option): say what, not a traceback.
        print(f"kairos {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
