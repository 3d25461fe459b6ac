"""``modera``: the operator's command line.

    modera models list                      versions, aliases and gate results
    modera models promote 3 [--force --reason "..."]
    modera models rollback --reason "..."
    modera models history
    modera models gate 3                    (re)run the evaluation gate for a version
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from modera.errors import ModeraError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="modera", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="override MODERA_DATA_DIR")
    groups = p.add_subparsers(dest="group", required=True)
    models = groups.add_parser("models", help="model versions, promotion, rollback, history")
    cmds = models.add_subparsers(dest="command", required=True)

    def cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = cmds.add_parser(name, help=help_text)
        sub.add_argument("--name", help="registered model, e.g. modera-vision (default: MODERA_TEXT_MODEL_NAME or modera-text)")
        return sub

    cmd("list", "list versions with aliases and gate results")
    promote = cmd("promote", "make a version the champion")
    promote.add_argument("version")
    promote.add_argument("--force", action="store_true", help="promote even though the gate did not pass")
    promote.add_argument("--reason", default="", help="why (required with --force)")
    rollback = cmd("rollback", "return to the previous champion")
    rollback.add_argument("--reason", default="")
    cmd("history", "every promotion and rollback, oldest first")
    gate = cmd("gate", "run the evaluation gate for a version")
    gate.add_argument("version")
    gate.add_argument("--eval-set", help="Parquet with a text (or image) column and label columns (default: the generated set)")
    return p


def _when(value: datetime | int) -> str:
    if isinstance(value, int):
        value = datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _list(name: str) -> None:
    from modera import registry

    print(f"{'version':>7}  {'aliases':<28} {'gate':<7} {'val AUC':>7}  created (UTC)        summary")
    for v in registry.list_versions(name):
        gate = {"true": "passed", "false": "FAILED"}.get(v.tags.get("gate.passed", ""), "-")
        print(f"{v.version:>7}  {','.join(v.aliases) or '-':<28} {gate:<7} {v.tags.get('val_macro_roc_auc', '-'):>7}  "
              f"{_when(v.created_ms)}  {v.tags.get('gate.summary', '')[:80]}")


def _history(events) -> None:
    if not events:
        print("no promotions or rollbacks recorded yet")
    for e in events:
        gate = {True: "gate passed", False: "gate FAILED", None: "gate not run"}[e.gate_passed]
        print(f"{_when(e.created_at)}  {e.action:<13} v{e.from_version or '-':>3} -> v{e.to_version:<3}  "
              f"by {e.actor:<12} {gate:<12} {e.reason}")


def run(args: argparse.Namespace) -> int:
    from modera.lifecycle import promotion
    from modera.runtime import init_tracking
    from modera.settings import load_settings
    from modera.store.db import open_store

    settings = load_settings(data_dir=args.data_dir)
    init_tracking(settings)
    name = args.name or settings.text_model_name
    engine = open_store(settings.resolved_store_url)
    if args.command == "list":
        _list(name)
    elif args.command == "history":
        _history(promotion.history(engine, name))
    elif args.command == "promote":
        event = promotion.promote(engine, name, args.version, reason=args.reason, force=args.force)
        print(f"{name}: champion v{event.from_version or '-'} -> v{event.to_version} ({event.action}); "
              "Serve replicas pick it up at their next poll")
    elif args.command == "rollback":
        event = promotion.rollback(engine, name, reason=args.reason)
        print(f"{name}: rolled back v{event.from_version} -> v{event.to_version}")
    elif args.command == "gate":
        from pathlib import Path

        from modera import registry
        from modera.lifecycle.gate import run_gate
        from modera.lifecycle.vision_gate import run_vision_gate

        # Vision versions are tagged kind=vision by their training; text versions predate the tag.
        vision = registry.version_info(name, args.version).tags.get("kind") == "vision"
        report = (run_vision_gate if vision else run_gate)(
            name, args.version, settings.resolved_data_dir / "model_cache", settings.resolved_data_dir,
            Path(args.eval_set) if args.eval_set else None)
        print(report.to_markdown())
        return 0 if report.passed else 3
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except ModeraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
