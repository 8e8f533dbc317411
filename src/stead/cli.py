"""The ``stead`` command: a thin Typer + rich shell over the core (layer: cli, the top; nothing imports it).

Errors print ``error: …`` and at most one ``hint: …`` line and exit 1 (2 for usage), with no traceback
unless ``stead --debug …`` is given. Every listing and report takes ``--json``. Heavy modules are
imported inside the commands so that ``stead --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from stead.client import Client

app = typer.Typer(
    name="stead",
    help="Keep machine-learning models working in production: track, register, serve, monitor, retrain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
runs_app = typer.Typer(help="Tracked runs: list, show, compare.", no_args_is_help=True)
datasets_app = typer.Typer(help="Dataset versions with schema and profile.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry: versions, aliases, gate results.", no_args_is_help=True)
deployments_app = typer.Typer(help="Deployments: routes, traffic shares, history.", no_args_is_help=True)
alerts_app = typer.Typer(help="Monitoring alerts: list and acknowledge.", no_args_is_help=True)
import_app = typer.Typer(help="Bring history from other tools.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(datasets_app, name="datasets")
app.add_typer(models_app, name="models")
app.add_typer(deployments_app, name="deployments")
app.add_typer(alerts_app, name="alerts")
app.add_typer(import_app, name="import")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class _State:
    debug = False


def _console() -> Any:
    from rich.console import Console

    return Console()


def _client() -> Client:
    from stead.client import Client

    return Client()


def _print_json(data: Any) -> None:
    from stead.entities import encode_float

    def default(obj: Any) -> Any:
        if hasattr(obj, "model_dump"):
            return obj.model_dump(mode="json", by_alias=True)
        if hasattr(obj, "isoformat"):
            return obj.isoformat()
        if hasattr(obj, "to_dict"):
            return obj.to_dict()
        return str(obj)

    def clean(obj: Any) -> Any:
        if isinstance(obj, float):
            return encode_float(obj)
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [clean(v) for v in obj]
        if hasattr(obj, "model_dump"):
            return clean(obj.model_dump(mode="python", by_alias=True))
        return obj

    sys.stdout.write(json.dumps(clean(data), default=default, indent=2) + "\n")


@app.callback(invoke_without_command=True)
def _main(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _State.debug = debug
    if version:
        from stead._version import __version__

        typer.echo(f"stead {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


# ---------------------------------------------------------------- project
@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Project folder (default: the current one).")] = Path("."),
) -> None:
    """Write a commented stead.yaml and create the .stead/ store; run again, it changes nothing."""
    from stead.project import write_template
    from stead.settings import Settings
    from stead.store import open_store

    folder.mkdir(parents=True, exist_ok=True)
    wrote = write_template(folder)
    store_dir = folder / ".stead"
    existed = (store_dir / "stead.db").exists()
    settings = Settings.from_env(uri=str(store_dir))
    store = open_store(settings)
    store.close()
    if not wrote and existed:
        typer.echo(f"nothing to do: {folder / 'stead.yaml'} and {store_dir}/ already exist (left unchanged)")
        return
    if wrote:
        typer.echo(f"wrote {folder / 'stead.yaml'}")
    else:
        typer.echo(f"kept the existing {folder / 'stead.yaml'}")
    typer.echo(f"{'created' if not existed else 'kept'} the store {store_dir}/")
    typer.echo("next: edit stead.yaml, then run: stead validate")


@app.command()
def validate(
    file: Annotated[Path, typer.Option("--file", "-f", help="The project file.")] = Path("stead.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """Check stead.yaml and report every problem with its field path."""
    from stead.project import validate_file

    problems = validate_file(file)
    if as_json:
        _print_json({"file": str(file), "valid": not problems, "problems": problems})
    elif problems:
        for line in problems:
            typer.echo(f"error: {line}", err=True)
    else:
        typer.echo(f"{file}: valid")
    if problems:
        raise typer.Exit(1)


# ---------------------------------------------------------------- runs
@runs_app.command("list")
def runs_list(
    experiment: Annotated[str | None, typer.Option("--experiment", "-e", help="Only this experiment.")] = None,
    filter: Annotated[str | None, typer.Option("--filter", help='e.g. "metrics.auc > 0.8"')] = None,
    order_by: Annotated[str | None, typer.Option("--order-by", help='e.g. "metrics.auc DESC"')] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many runs.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Runs, newest first, with their status and latest metrics."""
    runs = _client().search_runs(experiment, filter=filter, order_by=order_by, max_results=limit)
    if as_json:
        _print_json([r.model_dump(mode="python") for r in runs])
        return
    from rich.table import Table

    table = Table("run", "experiment", "status", "started", "params", "metrics", box=None)
    for r in runs:
        table.add_row(
            r.id[:12],
            r.experiment,
            r.status,
            r.start_time.strftime("%Y-%m-%d %H:%M:%S"),
            ", ".join(f"{k}={v}" for k, v in sorted(r.params.items()))[:60],
            ", ".join(f"{k}={v:.4g}" for k, v in sorted(r.metrics.items()))[:60],
        )
    _console().print(table if runs else "no runs yet")


def _resolve_run(client: Client, run_id: str) -> str:
    from stead.errors import NotFoundError

    try:
        return client.get_run(run_id).id
    except NotFoundError:
        matches = [r.id for r in client.search_runs(filter=f"attributes.run_id LIKE '{run_id}%'", max_results=2)]
        if len(run_id) >= 4 and len(matches) == 1:
            return matches[0]
        raise


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="A run id (or a unique prefix).")], as_json: JsonOpt = False
) -> None:
    """One run: params, metrics, tags, environment, inputs and outputs."""
    client = _client()
    run = client.get_run(_resolve_run(client, run_id))
    if as_json:
        _print_json(run)
        return
    con = _console()
    con.print(f"[bold]run {run.id}[/]  experiment {run.experiment}  [bold]{run.status}[/]")
    con.print(
        f"started {run.start_time:%Y-%m-%d %H:%M:%S}" + (f", ended {run.end_time:%H:%M:%S}" if run.end_time else "")
    )
    if run.error:
        con.print(f"error: {run.error}")
    for title, values in (("params", run.params), ("metrics", run.metrics), ("tags", run.tags)):
        if values:
            con.print(f"[bold]{title}[/]")
            for k, v in sorted(values.items()):
                con.print(f"  {k} = {v}")
    if run.inputs:
        con.print("[bold]inputs[/]")
        for use in run.inputs:
            con.print(f"  {use.role}: dataset {use.dataset_id[:16]} ({use.name})")
    if run.outputs:
        con.print("[bold]outputs[/]")
        for out in run.outputs:
            con.print(f"  model {out.name}/{out.version}")
    if run.artifacts:
        con.print("[bold]artifacts[/]")
        for name, digest in sorted(run.artifacts.items()):
            con.print(f"  {name}  sha256:{digest[:12]}")
    env = run.env
    if env:
        py = env.get("python", {})
        git = env.get("git") or {}
        con.print("[bold]environment[/]")
        con.print(f"  python {py.get('version', '?')} on {env.get('platform', {}).get('platform', '?')}")
        con.print(f"  {len(env.get('packages', []))} packages, set hash {str(env.get('packages_hash', ''))[:12]}")
        if git:
            dirty = " (dirty)" if git.get("dirty") else ""
            con.print(f"  git {str(git.get('commit', ''))[:12]} on {git.get('branch')}{dirty}")
        if run.seed is not None:
            con.print(f"  seed {run.seed}")


@runs_app.command("compare")
def runs_compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")], as_json: JsonOpt = False
) -> None:
    """Runs side by side: params and metrics, with differences marked."""
    from stead.errors import ValidationError

    if len(run_ids) < 2:
        raise ValidationError("compare needs at least two run ids", hint="stead runs compare ID1 ID2")
    client = _client()
    runs = [client.get_run(_resolve_run(client, r)) for r in run_ids]
    rows: list[dict[str, Any]] = []
    for section in ("params", "metrics"):
        keys = sorted({k for r in runs for k in getattr(r, section)})
        for key in keys:
            values = [getattr(r, section).get(key) for r in runs]
            rows.append(
                {"section": section, "key": key, "values": values, "differs": len({repr(v) for v in values}) > 1}
            )
    if as_json:
        _print_json({"runs": [r.id for r in runs], "rows": rows})
        return
    from rich.table import Table

    table = Table("", "key", *[r.id[:12] for r in runs], box=None)
    for row in rows:
        mark = "*" if row["differs"] else ""
        shown = ["-" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v)) for v in row["values"]]
        table.add_row(mark, f"{row['section']}.{row['key']}", *shown)
    _console().print(table)
    _console().print("* differs")


@app.command()
def reproduce(
    run_id: Annotated[str, typer.Argument(help="The run to re-run.")],
    tolerance: Annotated[float | None, typer.Option("--tolerance", help="Allowed |difference| per metric.")] = None,
    checkout: Annotated[bool, typer.Option("--checkout", help="Run the recorded git commit in a worktree.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-run a run with its recorded data, params and seed; exit 4 when a metric differs beyond tolerance."""
    from stead.reproduce import reproduce as do_reproduce

    client = _client()
    report = do_reproduce(client.store, _resolve_run(client, run_id), tolerance=tolerance, checkout=checkout)
    if as_json:
        _print_json(report.to_dict())
        raise typer.Exit(report.exit_code)
    con = _console()
    for warning in report.warnings:
        con.print(f"warning: {warning}")
    if report.packages:
        con.print(f"{len(report.packages)} package(s) differ from the recorded environment:")
        for name, old, new in report.packages[:20]:
            con.print(f"  {name}: {old or '-'} -> {new or '-'}")
    from rich.table import Table

    table = Table("metric", "recorded", "reproduced", "difference", "", box=None)
    for m in report.metrics:
        diff = m.difference
        table.add_row(
            m.key,
            f"{m.recorded:.6g}",
            "-" if m.reproduced is None else f"{m.reproduced:.6g}",
            "-" if diff is None else f"{diff:+.3g}",
            "ok" if m.within else "OUTSIDE",
        )
    con.print(table)
    verdict = "reproduced" if report.ok else "NOT reproduced"
    con.print(f"{verdict}: run {report.reproduced.id} vs {report.original.id} (tolerance {report.tolerance:g})")
    raise typer.Exit(report.exit_code)


# ---------------------------------------------------------------- datasets
@datasets_app.command("list")
def datasets_list(
    name: Annotated[str | None, typer.Option("--name", help="Only versions of this dataset name.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Dataset versions, newest first."""
    items = _client().list_datasets(name)
    if as_json:
        _print_json(items)
        return
    from rich.table import Table

    table = Table("id", "name", "rows", "columns", "created", box=None)
    for d in items:
        table.add_row(d.id[:16], d.name, str(d.rows), str(d.columns), f"{d.created_at:%Y-%m-%d %H:%M:%S}")
    _console().print(table if items else "no dataset versions yet")


@datasets_app.command("show")
def datasets_show(
    dataset_id: Annotated[str, typer.Argument(help="A dataset id (or a unique prefix).")], as_json: JsonOpt = False
) -> None:
    """One dataset version: schema, row count and per-column profile."""
    client = _client()
    d = client.get_dataset(dataset_id)
    usage = client.store.dataset_usage(d.id)
    if as_json:
        _print_json({**d.model_dump(mode="python", by_alias=True), "used_by": usage})
        return
    con = _console()
    con.print(f"[bold]dataset {d.name}[/]  id {d.id}")
    con.print(f"{d.rows} rows x {d.columns} columns" + ("" if d.data_digest else "  (data not stored)"))
    from rich.table import Table

    table = Table("column", "dtype", "nulls", "summary", box=None)
    columns = d.profile.get("columns", {})
    for col in d.schema:
        prof = columns.get(col["name"], {})
        if "mean" in prof:
            summary = " ".join(f"{k} {prof.get(k)!s:.8}" for k in ("mean", "std", "min", "max"))
        else:
            top = prof.get("top") or []
            summary = ", ".join(f"{item['value']}: {item['count']}" for item in top[:4])
        table.add_row(col["name"], col.get("dtype", "?"), str(prof.get("nulls", "")), summary)
    con.print(table)
    if usage:
        con.print("[bold]used by[/]")
        for u in usage:
            con.print(f"  run {u['run_id'][:12]} as {u['role']}")


# ---------------------------------------------------------------- lineage
@app.command()
def lineage(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS, NAME/VERSION, run:ID, dataset:ID or deployment:NAME")],
    direction: Annotated[str, typer.Option("--direction", help="up, down or both")] = "both",
    depth: Annotated[int, typer.Option("--depth", help="How many hops to follow.")] = 10,
    as_json: JsonOpt = False,
    dot: Annotated[bool, typer.Option("--dot", help="Print Graphviz DOT.")] = False,
) -> None:
    """The lineage graph around REF, up (where it came from) and down (what it fed)."""
    from stead.lineage import render_dot, render_tree

    graph = _client().lineage(ref, direction=direction, depth=depth)
    if as_json:
        _print_json(graph.to_dict())
    elif dot:
        typer.echo(render_dot(graph))
    else:
        typer.echo(render_tree(graph, ref))


# ---------------------------------------------------------------- registry (issue 4)
@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Registered models with their latest version and aliases."""
    items = _client().list_models()
    if as_json:
        _print_json(items)
        return
    from rich.table import Table

    table = Table("model", "latest", "state", "versions", "aliases", box=None)
    for m in items:
        aliases = ", ".join(f"{a}->{v}" for a, v in sorted(m["aliases"].items()))
        table.add_row(m["name"], str(m["latest_version"] or "-"), m["state"] or "-", str(m["versions"]), aliases)
    _console().print(table if items else "no models yet")


@models_app.command("show")
def models_show(name: str, as_json: JsonOpt = False) -> None:
    """One model: versions, states, aliases, gate results and where each serves."""
    client = _client()
    versions = client.list_model_versions(name)
    moves = client.alias_history(name)
    audit = client.audit_log(f"model:{name}/")
    if as_json:
        _print_json({"name": name, "versions": versions, "alias_history": moves, "audit": audit})
        return
    con = _console()
    con.print(f"[bold]model {name}[/]  {len(versions)} version(s)")
    for v in versions:
        aliases = f"  aliases: {', '.join(v.aliases)}" if v.aliases else ""
        run = f"  run {v.run_id[:12]}" if v.run_id else ""
        pickle = "  (pickle, trusted)" if v.allow_pickle else ""
        con.print(
            f"  [bold]{v.version}[/]  {v.state}  {v.flavor}{pickle}  {v.created_at:%Y-%m-%d %H:%M:%S}{run}{aliases}"
        )
        if v.state_reason:
            con.print(f"      reason: {v.state_reason}")
        for gate in v.gate_results:
            mark = "pass" if gate.get("passed") else "FAIL"
            con.print(
                f"      gate {mark}: {gate.get('gate', gate.get('metric', '?'))} {gate.get('reason', '')}".rstrip()
            )
        columns = [c.get("name", "?") for c in v.signature.get("inputs", [])]
        if columns:
            shown = ", ".join(columns[:8]) + (f", … ({len(columns)})" if len(columns) > 8 else "")
            con.print(f"      inputs: {shown}")
    if moves:
        con.print("[bold]alias moves[/]")
        for m in moves[-10:]:
            con.print(f"  {_move_line(m)}")
    if audit:
        con.print("[bold]audit[/]")
        for row in audit[-10:]:
            reason = f" ({row['reason']})" if row.get("reason") else ""
            con.print(f"  {row['at'][:19]}  {row['actor']}  {row['action']} {row['target']}{reason}")


def _move_line(m: Any) -> str:
    def v(x: int | None) -> str:
        return "-" if x is None else str(x)

    reason = f"  ({m.reason})" if m.reason else ""
    moved = f"{m.alias}: {v(m.from_version)} -> {v(m.to_version)}"
    return f"{m.at:%Y-%m-%d %H:%M:%S}  {moved}  {m.outcome}  by {m.actor}{reason}"


@models_app.command("trust")
def models_trust(
    ref: Annotated[str, typer.Argument(help="NAME/VERSION")],
    reason: Annotated[str, typer.Option("--reason", help="Why this pickle-based version may load.")],
    as_json: JsonOpt = False,
) -> None:
    """An admin's audited opt-in to load a pickle-based version."""
    from stead.registry import parse_version

    name, number = parse_version(ref)
    version = _client().trust(name, number, reason)
    if as_json:
        _print_json(version)
        return
    typer.echo(f"trusted {name}/{number}: it may now be loaded with pickle (recorded in the audit log)")


@app.command()
def alias(
    name: str,
    alias: Annotated[str | None, typer.Argument(help="The alias, e.g. champion.")] = None,
    version: Annotated[int | None, typer.Argument(help="The version it should point at.")] = None,
    history: Annotated[bool, typer.Option("--history", help="Show every move of this model's aliases.")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in the audit log).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Move an alias (NAME ALIAS VERSION), or show the audit log of moves (NAME --history)."""
    from stead.errors import ValidationError

    client = _client()
    if history:
        moves = client.alias_history(name, alias)
        if as_json:
            _print_json(moves)
            return
        for m in moves:
            typer.echo(_move_line(m))
        if not moves:
            typer.echo(f"no alias moves for {name} yet")
        return
    if alias is None or version is None:
        raise ValidationError(
            "stead alias needs NAME ALIAS VERSION (or NAME --history)", hint=f"stead alias {name} champion 3"
        )
    move = client.set_alias(name, alias, version, reason=reason)
    if as_json:
        _print_json(move)
        return
    was = "nothing" if move.from_version is None else f"version {move.from_version}"
    typer.echo(f"{name}@{alias} -> version {version} (was {was})")


# ---------------------------------------------------------------- serving (issue 5)
@app.command()
def deploy(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS or NAME/VERSION")],
    to: Annotated[str, typer.Option("--to", help="The deployment name.")],
    canary: Annotated[float | None, typer.Option("--canary", help="Canary share in percent.")] = None,
    ab: Annotated[float | None, typer.Option("--ab", help="Sticky A/B share in percent.")] = None,
    shadow: Annotated[bool, typer.Option("--shadow", help="Mirror traffic to this version.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Deploy a rejected version (admin).")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (audited).")] = None,
) -> None:
    """Route a deployment's traffic to a model version."""
    d = _client().deploy(ref, to, canary=canary, ab=ab, shadow=shadow, force=force, reason=reason)
    typer.echo(f"{d.name} revision {d.revision}: {_routes_line(d.routes)}")


def _routes_line(routes: Any) -> str:
    parts = []
    for r in routes:
        share = "copy of all" if r.kind == "shadow" else f"{r.weight * 100:g}%"
        parts.append(f"{r.model}/{r.version} {r.kind} {share}")
    return ", ".join(parts)


@app.command()
def promote(
    deployment: str,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in the history).")] = None,
) -> None:
    """Make the canary the sole route and move the champion alias to it."""
    d = _client().promote(deployment, reason)
    r = d.routes[0]
    typer.echo(f"{d.name} revision {d.revision}: {r.model}/{r.version} serves alone; {r.model}@champion -> {r.version}")


@app.command()
def rollback(
    deployment: str,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in the history).")] = None,
) -> None:
    """Return a deployment to its previous routes at once."""
    d = _client().rollback(deployment, reason)
    typer.echo(f"{d.name} revision {d.revision}: back to {_routes_line(d.routes)}")


@deployments_app.command("list")
def deployments_list(as_json: JsonOpt = False) -> None:
    """Deployments with their routes and traffic shares."""
    items = _client().list_deployments()
    if as_json:
        _print_json(items)
        return
    from rich.table import Table

    table = Table("deployment", "model", "revision", "routes", "updated", box=None)
    for d in items:
        table.add_row(d.name, d.model, str(d.revision), _routes_line(d.routes), f"{d.updated_at:%Y-%m-%d %H:%M:%S}")
    _console().print(table if items else "no deployments yet")


@deployments_app.command("show")
def deployments_show(
    name: str,
    history: Annotated[int, typer.Option("--history", help="How many revisions to show.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """One deployment: routes, history and canary-analysis decisions."""
    client = _client()
    d = client.get_deployment(name, history)
    decisions = client.store.canary_decisions(deployment=name)
    if as_json:
        _print_json({**d.model_dump(mode="json", by_alias=True), "canary_decisions": decisions})
        return
    con = _console()
    con.print(f"[bold]deployment {d.name}[/]  model {d.model}  revision {d.revision}")
    for r in d.routes:
        share = "copy of every request" if r.kind == "shadow" else f"{r.weight * 100:g}% of requests"
        con.print(f"  {r.kind:8} {r.model}/{r.version}  {share}")
    con.print("[bold]history[/]")
    for rev in d.history:
        why = f"  ({rev.reason})" if rev.reason else ""
        when = f"{rev.at:%Y-%m-%d %H:%M:%S}"
        con.print(f"  {rev.revision:>3}  {when}  {rev.source:8} by {rev.actor}: {_routes_line(rev.routes)}{why}")
    if d.events:
        con.print("[bold]events[/]")
        for e in d.events[-10:]:
            detail = e["details"].get("error") or e["details"].get("version") or ""
            con.print(f"  {e['at'][:19]}  {e['action']}  {detail}")
    if decisions:
        from datetime import UTC, datetime

        con.print("[bold]canary analysis[/]")
        for c in decisions[-20:]:
            evidence = c.get("evidence") or {}
            reasons = "; ".join(str(r) for r in evidence.get("reasons") or []) or "within every limit"
            when = datetime.fromtimestamp(float(c["at"]), tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
            con.print(f"  {when}  step {c['step']}  {c['decision']:8} {reasons}", markup=False)


@app.command()
def predictions(
    deployment: str,
    since: Annotated[str | None, typer.Option("--since", help="ISO-8601 time.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many rows (the newest).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The prediction log of a deployment, with labels where feedback arrived."""
    frame = _client().get_predictions(deployment, since=since, limit=limit)
    if as_json:
        out = frame.copy()
        if len(out):
            out["time"] = out["time"].map(lambda t: t.isoformat())
        _print_json(json.loads(out.to_json(orient="records", date_format="iso")))
        return
    if not len(frame):
        typer.echo(f"no predictions logged for {deployment} yet")
        return
    from rich.table import Table

    shown = [c for c in frame.columns if c not in ("row", "model")]
    table = Table(*shown, box=None)
    for rec in frame[shown].itertuples(index=False):
        table.add_row(*[str(v)[:24] for v in rec])
    _console().print(table)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = 1,
    no_controller: Annotated[bool, typer.Option("--no-controller", help="Do not run the controller.")] = False,
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow a non-loopback bind without tokens.")] = False,
) -> None:
    """The HTTP server: REST API, prediction, feedback, metrics and UI."""
    import os
    import threading

    from stead.serving.app import run_server
    from stead.settings import Settings

    baked = os.environ.get("STEAD_BAKED_MODEL")
    if baked:  # an image written by stead build (issue 9): serve its baked model unless STEAD_URI is set
        from stead.export import boot_baked

        boot_baked(baked)
    settings = Settings.from_env()
    stop = threading.Event()
    thread: threading.Thread | None = None
    project_file = Path("stead.yaml")
    if not no_controller and project_file.exists() and settings.backend != "http":
        # The controller runs beside the server (the laptop experience is one command); it takes the store's
        # lease, so with several servers on one store exactly one of them drives the loop.
        from stead.retraining.controller import Controller
        from stead.store import open_store

        ctl = Controller(open_store(settings), project_file, echo=lambda line: typer.echo(f"controller: {line}"))
        thread = threading.Thread(target=ctl.run, kwargs={"stop": stop}, name="stead-controller", daemon=True)
        thread.start()
    try:
        from stead.ui.app import FACTORY as UI_FACTORY
        from stead.ui.app import ui_routes

        run_server(
            settings,
            host=host,
            port=port,
            workers=workers,
            controller=thread is not None,
            insecure=insecure,
            extra_routes=ui_routes(settings),  # the web UI at /ui/ (issue 8)
            factory=UI_FACTORY,
        )
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=30)
    from stead.serving.app import exit_now

    exit_now(0)  # drained, flushed and closed: skip CPython's slow finalization (see exit_now)


# ---------------------------------------------------------------- monitoring (issue 6)
def _monitor_num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_monitor(report: dict[str, Any]) -> None:
    from rich.table import Table

    con = _console()
    win, drift = report["window"], report["drift"]
    con.print(
        f"[bold]{report.get('deployment', '')}[/] {report.get('model', '')}/{report.get('version', '')}: "
        f"{win['rows']} predictions from {(win['start'] or '-')[:19]} to {(win['end'] or '-')[:19]} "
        f"against {report['reference']['sample_rows']} reference rows"
    )
    table = Table("feature", "method", "statistic", "p-value", "threshold", "drifted", box=None)
    for name, col in drift["columns"].items():
        mark = "[red]yes[/]" if col["drifted"] else "no"
        numbers = [_monitor_num(col[k]) for k in ("statistic", "p_value", "threshold")]
        table.add_row(name, col["method"], *numbers, mark)
    for name, problem in drift["problems"].items():
        table.add_row(name, "-", "-", "-", "-", f"[yellow]{problem}[/]")
    con.print(table)
    pred = report.get("prediction_drift")
    if pred:
        moved = "drifted" if pred["drifted"] else "steady"
        con.print(f"prediction drift: {pred['method']} {_monitor_num(pred['statistic'])} ({moved})")
    perf, est = report["performance"], report["estimated"]
    shown = [k for k in perf if k not in ("labeled", "label_coverage") and perf[k] is not None]
    con.print(
        f"performance on {perf['labeled']} labelled rows ({perf['label_coverage']:.1%} of the window): "
        + (", ".join(f"{k} {_monitor_num(perf[k])}" for k in shown) or "no labels yet")
    )
    if est:
        con.print("estimated (no labels needed): " + ", ".join(f"{k} {_monitor_num(v)}" for k, v in est.items()))
    for note in report.get("notes", []):
        con.print(f"[dim]note: {note}[/]")
    for alert in report["alerts"]:
        con.print(f"[red]alert[/] {alert['rule']}: {alert['message']}")
    drifted = [n for n, c in drift["columns"].items() if c["drifted"]]
    judged = len(drift["columns"])
    verdict = "[red]DRIFT[/]" if drift["drifted"] else "[green]OK[/]"
    con.print(
        f"verdict: {verdict} — {len(drifted)} of {judged} features drifted ({drift['share']:.0%}, "
        f"threshold {drift['threshold']:.0%})" + (f": {', '.join(drifted)}" if drifted else "")
    )


@app.command()
def monitor(
    deployment: str,
    window: Annotated[int | None, typer.Option("--window", help="The last N predictions.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Drift and performance report for the last N predictions of a deployment."""
    client = _client()
    report = client.monitor(deployment, window)
    if html is not None:
        from stead.monitoring.html import render_html

        html.write_text(
            render_html(
                report,
                drift_history=client.drift_history(deployment),
                reports=client.store.list_monitor_reports(deployment, 200, False),
                alerts=[a.model_dump(mode="json") for a in client.list_alerts(False, deployment)],
            ),
            encoding="utf-8",
        )
    if as_json:
        _print_json(report)
        return
    _print_monitor(report)
    if html is not None:
        _console().print(f"wrote {html}")


@alerts_app.command("list")
def alerts_list(
    all_: Annotated[bool, typer.Option("--all", help="Include resolved alerts.")] = False, as_json: JsonOpt = False
) -> None:
    """Open (and with --all, past) alerts."""
    items = _client().list_alerts(open_only=not all_)
    if as_json:
        _print_json(items)
        return
    from rich.table import Table

    table = Table("id", "deployment", "rule", "opened", "resolved", "ack", "message", box=None)
    for a in items:
        resolved = f"{a.resolved_at:%Y-%m-%d %H:%M:%S}" if a.resolved_at else "open"
        table.add_row(
            str(a.id),
            a.deployment,
            a.rule,
            f"{a.opened_at:%Y-%m-%d %H:%M:%S}",
            resolved,
            "yes" if a.acknowledged else "no",
            str(a.details.get("message", "")),
        )
    _console().print(table if items else ("no alerts yet" if all_ else "no open alerts"))


@alerts_app.command("ack")
def alerts_ack(alert_id: int) -> None:
    """Acknowledge an alert: it stays open until its condition clears."""
    alert = _client().ack_alert(alert_id)
    state = "resolved" if alert.resolved_at else "it stays open until its condition clears"
    typer.echo(f"alert {alert.id} ({alert.rule} on {alert.deployment}) acknowledged; {state}")


# ---------------------------------------------------------------- the closed loop (issue 7)
@app.command("run")
def run_pipeline(
    model: str,
    param: Annotated[list[str] | None, typer.Option("--param", help="k=v, repeatable.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why this run (recorded).")] = None,
    file: Annotated[Path, typer.Option("--file", "-f", help="The project file.")] = Path("stead.yaml"),
    as_json: JsonOpt = False,
    pipeline_id: Annotated[str | None, typer.Option("--pipeline-id", hidden=True)] = None,
) -> None:
    """Run MODEL's training pipeline from stead.yaml: tracked run, gates, registration, rollout.

    Exits 0 when the new version is approved, 3 when a gate rejected it.
    """
    from stead.project import load_project
    from stead.retraining.pipeline import parse_params, run_pipeline

    params = parse_params(param or [])
    project = load_project(file)
    client = _client()
    con = _console()
    executor = project.model(model).executor
    if executor.type != "local":  # issue 9: the pipeline runs where stead.yaml says (e.g. a Ray task)
        from stead.errors import SteadError
        from stead.retraining.executors import executor_for

        outcome = executor_for(executor).launch(
            client.store.settings, file, model, pipeline_id=pipeline_id, reason=reason, params=params
        )
        if not outcome.ok:
            raise SteadError(f"the pipeline of {model} failed on {outcome.where}: {outcome.error}")
        if as_json:
            _print_json(outcome.result)
        else:
            verdict = "approved" if outcome.approved else "rejected"
            pid = outcome.result.get("pipeline_id")
            con.print(f"{model}/{outcome.version} {verdict} (on {outcome.where}, pipeline {pid})")
        raise typer.Exit(0 if outcome.approved else 3)
    from rich.console import Console

    # With --json, stdout carries only the JSON document: progress goes to stderr.
    steps = Console(stderr=True) if as_json else con
    with steps.status(f"running the pipeline of {model}...") as status:

        def progress(message: str) -> None:
            status.update(f"{model}: {message}")
            steps.print(f"  {message}")

        result = run_pipeline(
            client.store, project, model, params=params, reason=reason, progress=progress, pipeline_id=pipeline_id
        )
    if as_json:
        _print_json(result.to_dict())
    else:
        for gate in result.gate_results:
            mark = "pass" if gate["passed"] else "FAIL"
            con.print(f"  [{mark}] {gate['gate']}: {gate['reasons']}")
        verdict = "approved" if result.approved else "rejected"
        con.print(
            f"{model}/{result.version} {verdict} (run {str(result.run_id)[:12]}, pipeline {result.pipeline_id[:12]})"
        )
    raise typer.Exit(result.exit_code)


@app.command()
def controller(
    once: Annotated[bool, typer.Option("--once", help="One tick, then exit.")] = False,
    file: Annotated[Path, typer.Option("--file", "-f", help="The project file.")] = Path("stead.yaml"),
    interval: Annotated[float, typer.Option("--interval", help="Seconds between ticks.")] = 5.0,
) -> None:
    """Watch triggers, retrain, apply gates, and advance or roll back rollouts."""
    from stead.errors import ConfigError
    from stead.retraining.controller import Controller

    if not file.exists():
        raise ConfigError(f"{file}: no such file: the controller follows the models of a stead.yaml", hint="stead init")
    con = _console()
    ctl = Controller(_client().store, file, echo=lambda line: con.print(line, highlight=False))
    if once:
        report = ctl.tick()
        finished = ctl.wait_pipelines()  # one tick includes the pipelines it started
        report.actions += finished.actions
        report.errors += finished.errors
        if not report.held:
            con.print(f"another controller holds the lease ({report.holder}); nothing done")
        elif not report.actions and not report.errors:
            con.print("nothing to do")
        ctl.store.release_lease("controller", ctl.holder)
        raise typer.Exit(1 if report.errors else 0)
    con.print(f"controller {ctl.holder} watching {file} every {interval:g} s (Ctrl-C to stop)")
    try:
        ctl.run(interval)
    except KeyboardInterrupt:
        con.print("controller stopped")


@app.command()
def demo(
    folder: Annotated[Path, typer.Option("--folder", help="Where to put the demo project.")] = Path("stead-demo"),
) -> None:
    """The whole loop on bundled data, start to finish, on the embedded default."""
    from stead.demo import run_demo

    raise typer.Exit(run_demo(folder))


# ---------------------------------------------------------------- containers (issue 9) and MLflow (issue 10)
@app.command()
def build(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS or NAME/VERSION")],
    out: Annotated[Path, typer.Option("--out", help="The build context folder.")] = Path("build"),
    for_: Annotated[str, typer.Option("--for", help="serve or train")] = "serve",
    k8s: Annotated[bool, typer.Option("--k8s", help="Also write Kubernetes manifests.")] = False,
    deployment: Annotated[
        str | None, typer.Option("--deployment", help="The deployment the image serves (default: where it serves).")
    ] = None,
    image: Annotated[str | None, typer.Option("--image", help="Image reference for the manifests.")] = None,
    file: Annotated[Path, typer.Option("--file", "-f", help="The project file (--for train).")] = Path("stead.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """Write a container build context (and Kubernetes manifests) for a model version."""
    from stead.export import build_context

    result = build_context(
        _client().store, ref, out, for_, k8s=k8s, deployment=deployment, image=image, project_file=file
    )
    if as_json:
        _print_json(result.to_dict())
        return
    typer.echo(
        f"wrote {result.out}: {result.name}/{result.version} for {result.purpose}, Python {result.python}, "
        f"{len(result.requirements)} pinned packages, {len(result.files)} files"
    )
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"next: docker build -t IMAGE {result.out}  (see {result.out}/README.md)")


@import_app.command("mlflow")
def import_mlflow(
    source: Annotated[str, typer.Option("--from", help="sqlite:///mlflow.db or a file: folder")],
    as_json: JsonOpt = False,
) -> None:
    """Copy an MLflow tracking store into stead; run again, it copies only what is new."""
    # ---- MLflow import (issue 10)
    from rich.progress import Progress

    from stead.mlflow_import import import_mlflow as run_import
    from stead.settings import Settings
    from stead.store import open_store

    settings = Settings.from_env()
    store = open_store(settings)
    try:
        with Progress(console=_console(), transient=True, disable=as_json) as bar:
            tasks: dict[str, Any] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(f"copying {stage}", total=total)
                bar.update(tasks[stage], completed=done)

            report = run_import(store, source, progress=progress, actor=settings.user)
    finally:
        store.close()
    if as_json:
        _print_json(report.to_dict())
        return
    con = _console()
    copied = ", ".join(f"{n} {what}" for what, n in report.copied.items()) or "nothing new"
    con.print(f"imported from {source}: {copied}")
    if report.skipped:
        con.print("already there: " + ", ".join(f"{n} {what}" for what, n in report.skipped.items()))
    if report.unmapped:
        con.print(f"not mapped ({len(report.unmapped)}):")
        for line in report.unmapped:
            con.print(f"  - {line}", markup=False)


# ---------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status (used by the console script and tests)."""
    from typer.exceptions import TyperException

    from stead.errors import SteadError

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args[: args.index("--") if "--" in args else len(args)]
    try:
        # Without standalone mode, click returns an Exit's code instead of raising it.
        code = app(args=args, prog_name="stead", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        return 1
    except TyperException as exc:  # usage errors: a missing argument, an unknown option or command
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(message, err=True)
            return 2
        typer.echo(f"error: {message}", err=True)
        typer.echo("hint: see stead --help, or stead COMMAND --help", err=True)
        return int(getattr(exc, "exit_code", 2))
    except SteadError as exc:
        if debug:
            raise
        first, *rest = exc.message.splitlines() or [""]
        typer.echo(f"error: {first}", err=True)
        for line in rest:
            typer.echo(f"  {line}", err=True)
        if exc.details and isinstance(exc.details, list) and len(exc.details) > 1:
            for line in exc.details[1:]:
                typer.echo(f"error: {line}", err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        return 130
    except Exception as exc:
        if debug:
            raise
        typer.echo(f"error: internal error: {type(exc).__name__}: {exc}", err=True)
        typer.echo("hint: run again as `stead --debug …` for the traceback, and report it", err=True)
        return 1
    return code if isinstance(code, int) else 0
