"""Turn a bench/compare.py result (JSON) into the tables, bench/RESULTS.md and bench/results.png.

    .venv/bin/python bench/report.py [bench/out/compare-latest.json]

RESULTS.md is regenerated whole except the text between the reading markers, which is written by
whoever ran the bench and read the figures, and is kept as it is.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS_MD = BENCH / "RESULTS.md"
RESULTS_PNG = BENCH / "results.png"
LATEST = BENCH / "out" / "compare-latest.json"
# The receivers under the config's own worker class; the chart and the ratio table show these.
RECEIVERS = ("service", "hello", "webhook")
READING_START = "<!-- reading: kept when RESULTS.md is regenerated -->"
READING_END = "<!-- end of reading -->"

# The targets, reported against (not enforced), and its stretch goals.
MIN_HELLO_RATIO = 0.50
MAX_P99_MS = 50.0
MAX_CPU_RATIO = 2.0
MAX_WORKER_RSS_MB = 80.0
STRETCH_HELLO_RATIO = 0.70
STRETCH_P99_MS = 25.0
STRETCH_CPU_RATIO = 1.4

COMMANDS = """\
```sh
sudo apt-get update && sudo apt-get install -y webhook wrk   # once; pgbench comes with PostgreSQL
.venv/bin/pip install -e '.[dev,bench]'
psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE jobhooks_bench_d'  # optional
.venv/bin/python bench/compare.py         # ~15 min: ceilings, then SQLite, then PostgreSQL
.venv/bin/python bench/compare.py --worker-classes gevent  # the config's classes and gevent only
.venv/bin/python bench/compare.py --no-report --seconds 3 --rounds 1  # a look; RESULTS.md kept
.venv/bin/python bench/ceilings.py        # the commit ceilings alone
.venv/bin/python bench/report.py          # RESULTS.md + PNG from bench/out/compare-latest.json
.venv/bin/python bench/profile_ingest.py  # py-spy profile of a service worker under the same load
```
`BENCH_DATABASE_URL` overrides the PostgreSQL database (default
`postgresql+psycopg://postgres@127.0.0.1:5432/jobhooks_bench_d`; compare.py drops and recreates it).
"""


@dataclass(frozen=True)
class Summary:
    database: str
    receiver: str
    # The gunicorn worker class (None for webhook, and in results from before classes were kept).
    worker_class: str | None
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    worker_rss_mb: float
    workers: int
    cpu_ms_per_request: float
    non2xx: int
    socket_errors: int
    rounds: list[float]

    @property
    def app(self) -> str:
        return app_of(self.receiver)

    @property
    def label(self) -> str:
        """ "hello (gthread)" under the config's class; "hello/sync" already names its class."""
        if self.worker_class is None or "/" in self.receiver:
            return self.receiver
        return f"{self.receiver} ({self.worker_class})"


def app_of(receiver: str) -> str:
    """ "service", "hello" or "webhook": receivers under a given class are named "<app>/<class>"."""
    return receiver.split("/", 1)[0]


def section_receivers(section: dict[str, Any]) -> list[str]:
    """The receivers in round 1's order (compare.py records it; older results had only three)."""
    recorded = section.get("receivers")
    if recorded:
        return list(recorded)
    return list(dict.fromkeys(run["receiver"] for run in section["runs"]))


def default_worker_class(section: dict[str, Any]) -> str | None:
    if section.get("default_worker_class"):
        return str(section["default_worker_class"])
    classes = [run.get("worker_class") for run in section["runs"] if run["receiver"] == "service"]
    return classes[0] if classes else None


def summarize(section: dict[str, Any], receiver: str) -> Summary:
    runs = [run for run in section["runs"] if run["receiver"] == receiver]
    return Summary(
        database=section["database"],
        receiver=receiver,
        worker_class=runs[0].get("worker_class"),
        requests_per_second=statistics.median(run["requests_per_second"] for run in runs),
        p50_ms=statistics.median(run["p50_ms"] for run in runs),
        p99_ms=statistics.median(run["p99_ms"] for run in runs),
        worker_rss_mb=max(run["worker_rss_mb"] for run in runs),
        workers=max(run["workers"] for run in runs),
        cpu_ms_per_request=statistics.median(run["worker_cpu_ms_per_request"] for run in runs),
        non2xx=sum(run["non2xx"] for run in runs),
        socket_errors=sum(sum(run["socket_errors"].values()) for run in runs),
        rounds=[run["requests_per_second"] for run in sorted(runs, key=lambda r: r["round"])],
    )


def summaries(results: dict[str, Any]) -> list[Summary]:
    return [
        summarize(section, receiver)
        for section in results["sections"]
        for receiver in section_receivers(section)
    ]


def by_receiver(results: dict[str, Any], database: str) -> dict[str, Summary]:
    return {s.receiver: s for s in summaries(results) if s.database == database}


def receiver_for(app: str, worker_class: str | None, default: str | None) -> str:
    """The name compare.py gives app under worker_class: plain under the config's own class."""
    return app if worker_class == default else f"{app}/{worker_class}"


def round_ratios(section: dict[str, Any], floor: str) -> list[float]:
    """service/floor within each round: the two ran back to back, under the same machine load."""
    by_round: dict[int, dict[str, float]] = {}
    for run in section["runs"]:
        by_round.setdefault(run["round"], {})[run["receiver"]] = run["requests_per_second"]
    return [rates["service"] / rates[floor] for _, rates in sorted(by_round.items())]


def table(results: dict[str, Any]) -> str:
    """The markdown table of medians, also what compare.py prints."""
    lines = [
        "| database | receiver | worker class | req/s | p50 ms | p99 ms | peak worker RSS MB | "
        "workers | worker CPU ms/req | non-2xx | socket errors | req/s per round |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    defaults = {
        section["database"]: default_worker_class(section) for section in results["sections"]
    }
    for s in summaries(results):
        rounds = " / ".join(f"{rate:.0f}" for rate in s.rounds)
        worker_class = s.worker_class or "-"
        if s.worker_class is not None and "/" not in s.receiver:
            worker_class += " (default)" if s.worker_class == defaults[s.database] else ""
        lines.append(
            f"| {s.database} | {s.receiver} | {worker_class} | {s.requests_per_second:.0f} | "
            f"{s.p50_ms:.1f} | "
            f"{s.p99_ms:.1f} | {s.worker_rss_mb:.1f} | {s.workers} | {s.cpu_ms_per_request:.2f} | "
            f"{s.non2xx} | "
            f"{s.socket_errors} | {rounds} |"
        )
    lines += [
        "",
        "| database | service / hello req/s | per round | service / webhook req/s | per round |",
        "|---|---:|---|---:|---|",
    ]
    for section in results["sections"]:
        rates = by_receiver(results, section["database"])
        service = rates["service"].requests_per_second
        cells = []
        for floor in ("hello", "webhook"):
            per_round = ", ".join(f"{ratio:.2f}" for ratio in round_ratios(section, floor))
            cells += [f"{service / rates[floor].requests_per_second:.2f}", per_round]
        lines.append(f"| {section['database']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def worker_classes_table(results: dict[str, Any], database: str) -> str:
    """service and hello under each worker class measured on database, the default first."""
    section = next(section for section in results["sections"] if section["database"] == database)
    default = default_worker_class(section)
    rates = by_receiver(results, database)
    classes = [default] + [
        s.worker_class for s in rates.values() if s.app == "service" and s.worker_class != default
    ]
    lines = [
        "| worker class | service req/s | service p99 ms | service CPU ms/req | hello req/s | "
        "hello CPU ms/req | service ÷ hello req/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for worker_class in classes:
        service = rates.get(receiver_for("service", worker_class, default))
        hello = rates.get(receiver_for("hello", worker_class, default))
        name = f"{worker_class or 'not recorded'}{' (default)' if worker_class == default else ''}"
        cells = [name, "-", "-", "-", "-", "-", "-"]
        if service:
            cells[1:4] = [
                f"{service.requests_per_second:.0f}",
                f"{service.p99_ms:.1f}",
                f"{service.cpu_ms_per_request:.2f}",
            ]
        if hello:
            cells[4:6] = [f"{hello.requests_per_second:.0f}", f"{hello.cpu_ms_per_request:.2f}"]
        if service and hello:
            cells[6] = f"{service.requests_per_second / hello.requests_per_second:.2f}"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fastest(results: dict[str, Any], database: str, app: str) -> Summary:
    """app's receiver with the highest median req/s on database, whatever its worker class."""
    return max(
        (s for s in by_receiver(results, database).values() if s.app == app),
        key=lambda s: s.requests_per_second,
    )


def worker_classes_tables(results: dict[str, Any]) -> str:
    """A worker-class table per database, each under a line naming the default and the fastest."""
    parts = []
    for section in results["sections"]:
        database = section["database"]
        service, hello = fastest(results, database, "service"), fastest(results, database, "hello")
        default = default_worker_class(section) or "not recorded"
        parts.append(
            f"**{database}** (the config's class: {default}; "
            f"fastest service: {service.worker_class or 'not recorded'} at "
            f"{service.requests_per_second:.0f} req/s; fastest hello: "
            f"{hello.worker_class or 'not recorded'} at {hello.requests_per_second:.0f} req/s)\n\n"
            + worker_classes_table(results, database)
        )
    return "\n\n".join(parts)


def verdict(met: bool, stretch: bool | None, figure: str) -> str:
    if not met:
        return f"**missed** ({figure})"
    return f"met ({figure}{', stretch met' if stretch else ''})"


def service_accepted(section: dict[str, Any]) -> int:
    """The measured 204s of every service receiver: all classes write to the section's database."""
    return sum(
        run["statuses"].get("204", 0)
        for run in section["runs"]
        if app_of(run["receiver"]) == "service"
    )


def rows_hold(section: dict[str, Any]) -> bool:
    """Every event has its job, and at least as many events as measured 204s were committed
    (warm-up and start-up probes add a few more)."""
    rows = section["rows_written"]
    return bool(
        rows["job_events"] == rows["jobs"] and rows["job_events"] >= service_accepted(section)
    )


def targets(results: dict[str, Any]) -> str:
    """The issue's targets per database. The baseline is the fastest hello (the empty Flask app)
    under any worker class measured; the service is judged under the config's own class."""
    connections = results["load"]["connections"]
    rows: dict[str, list[str]] = {
        "baseline: the fastest empty Flask (hello)": [],
        f"ingest req/s ÷ baseline req/s ≥ {MIN_HELLO_RATIO:.2f} "
        f"(stretch {STRETCH_HELLO_RATIO:.2f})": [],
        f"p99 ≤ {MAX_P99_MS:.0f} ms at {connections} connections "
        f"(stretch {STRETCH_P99_MS:.0f} ms)": [],
        f"web-worker CPU per delivery ÷ baseline's ≤ {MAX_CPU_RATIO:.1f}× "
        f"(stretch {STRETCH_CPU_RATIO:.1f}×)": [],
        "committed rows cover the 204s of every service run": [],
        "no non-2xx (every service run)": [],
        f"each web worker ≤ {MAX_WORKER_RSS_MB:.0f} MB RSS": [],
    }
    databases = [section["database"] for section in results["sections"]]
    for section in results["sections"]:
        database = section["database"]
        rates = by_receiver(results, database)
        service, baseline = rates["service"], fastest(results, database, "hello")
        ratio = service.requests_per_second / baseline.requests_per_second
        cpu_ratio = service.cpu_ms_per_request / baseline.cpu_ms_per_request
        non2xx = sum(s.non2xx for s in rates.values() if s.app == "service")
        rows_written = section["rows_written"]
        cells = [
            f"{baseline.label}: {baseline.requests_per_second:.0f} req/s, "
            f"{baseline.cpu_ms_per_request:.2f} ms CPU/req",
            verdict(
                ratio >= MIN_HELLO_RATIO,
                ratio >= STRETCH_HELLO_RATIO,
                f"{service.requests_per_second:.0f} ÷ {baseline.requests_per_second:.0f} = "
                f"{ratio:.2f}",
            ),
            verdict(
                service.p99_ms <= MAX_P99_MS,
                service.p99_ms <= STRETCH_P99_MS,
                f"{service.p99_ms:.1f} ms",
            ),
            verdict(
                cpu_ratio <= MAX_CPU_RATIO,
                cpu_ratio <= STRETCH_CPU_RATIO,
                f"{service.cpu_ms_per_request:.2f} ÷ {baseline.cpu_ms_per_request:.2f} ms = "
                f"{cpu_ratio:.2f}×",
            ),
            verdict(
                rows_hold(section),
                None,
                f"{rows_written['job_events']} events, {rows_written['jobs']} jobs for "
                f"{service_accepted(section)} 204s",
            ),
            verdict(non2xx == 0, None, str(non2xx)),
            verdict(
                service.worker_rss_mb <= MAX_WORKER_RSS_MB,
                None,
                f"peak {service.worker_rss_mb:.1f} MB",
            ),
        ]
        for column, cell in zip(rows.values(), cells, strict=True):
            column.append(cell)
    lines = [f"| target | {' | '.join(databases)} |", "|---" * (len(databases) + 1) + "|"]
    lines += [f"| {name} | {' | '.join(cells)} |" for name, cells in rows.items()]
    return "\n".join(lines)


def ceilings_table(results: dict[str, Any]) -> str:
    service = {
        s.database: s.requests_per_second for s in summaries(results) if s.receiver == "service"
    }
    lines = [
        "| database | clients | commits/s | latency ms | service req/s as share of it | how |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for ceiling in results["ceilings"]:
        rate = ceiling["commits_per_second"]
        latency = f"{ceiling['latency_ms']:.2f}" if ceiling["latency_ms"] is not None else "-"
        share = f"{service[ceiling['database']] / rate:.0%}"
        lines.append(
            f"| {ceiling['database']} | {ceiling['clients']} | {rate:.0f} | {latency} | "
            f"{share} | {ceiling['note']} |"
        )
    return "\n".join(lines)


def machine_text(results: dict[str, Any]) -> str:
    m = results["machine"]
    pg = m["postgresql"]
    loads = [
        f"{section['database']}: {section['load_average_before'][0]:.1f} before, "
        f"{section['load_average_after'][0]:.1f} after"
        for section in results["sections"]
    ]
    return "\n".join(
        [
            f"- {m['cpus']} × {m['cpu']}, {m['memory_gb']} GB RAM, {m['os']}, kernel {m['kernel']}",
            f"- Python {m['python']}, gunicorn {m['gunicorn']} (WEB_CONCURRENCY "
            f"{m['web_concurrency']}, WEB_THREADS {m.get('web_threads', 'default')}, "
            f"WEB_CONNECTIONS {m.get('web_connections', 'default')}, WEB_WORKER_CLASS "
            f"{m.get('web_worker_class', 'default')}), "
            f"Flask {m['flask']}, SQLAlchemy {m['sqlalchemy']}",
            f"- SQLite {m['sqlite']} (file in a temp dir on the same disk); PostgreSQL "
            f"{pg['server_version']} on 127.0.0.1, fsync={pg['fsync']}, "
            f"synchronous_commit={pg['synchronous_commit']}, "
            f"wal_sync_method={pg['wal_sync_method']}",
            f"- {m['wrk']}; {m['webhook']}; wrk, the receivers and the databases share the machine",
            f"- 1-minute load average: {'; '.join(loads)}",
        ]
    )


def rows_text(results: dict[str, Any]) -> str:
    parts = []
    for section in results["sections"]:
        rows = section["rows_written"]
        services = [name for name in section_receivers(section) if app_of(name) == "service"]
        parts.append(
            f"{section['database']}: {rows['job_events']} events, {rows['jobs']} jobs, "
            f"{rows['handler_runs']} handler runs committed for {service_accepted(section)} "
            f"measured 204s of {', '.join(services)} (plus warm-up and start-up probes)"
            + ("" if rows_hold(section) else " — **fewer events than 204s, or events ≠ jobs**")
        )
    return "; ".join(parts)


def kept_reading() -> str:
    if RESULTS_MD.exists():
        text = RESULTS_MD.read_text()
        start, end = text.find(READING_START), text.find(READING_END)
        if 0 <= start < end:
            return text[start + len(READING_START) : end].strip()
    return "_Not written yet: read the table above and say what it means._"


def code_text(results: dict[str, Any]) -> str:
    fingerprint = results.get("code_fingerprint", {})
    before = fingerprint.get("before", "unknown")
    text = f"Code: commit {results.get('git_revision', 'unknown')}, service code hash {before}"
    started = {section.get("code_fingerprint") for section in results["sections"]}
    if started == {before}:
        return f"{text}; every receiver started on it."
    if None in started or "" in started:
        if fingerprint.get("after") == before:
            return f"{text}; unchanged during the run."
        return f"{text}; **the code changed during the run** (when is not recorded)."
    return f"{text}; **the code changed before a section started**: sections ran different code."


def markdown(results: dict[str, Any]) -> str:
    load = results["load"]
    classes = sorted(
        {s.worker_class for s in summaries(results) if s.worker_class is not None}, key=str
    )
    defaults = "; ".join(
        f"{section['database']}: {default_worker_class(section) or 'not recorded'}"
        for section in results["sections"]
    )
    return f"""# Ingest benchmark: service vs. hello-world vs. `webhook`

Generated by `bench/compare.py` (run started {results["started_at"]}, took
{results["duration_seconds"]:.0f} s); regenerate with the commands below. Hand-written text lives
only between the reading markers.

{code_text(results)}

What runs: for each database, receivers of `POST /webhooks/mx/jobs`, all on 127.0.0.1:
**service** (the Procfile's web command), **hello** (a Flask app that parses the JSON and answers
204, under the same gunicorn command line and config) and **webhook** (the Debian `webhook` Go
receiver, checking the same Basic credentials and running `/bin/true`). service and hello run
under the gunicorn worker class `service/gunicorn_conf.py` picks for the database ({defaults}),
and again as **service/&lt;class&gt;** and **hello/&lt;class&gt;** under each other class measured
({", ".join(classes) or "none recorded"}; `WEB_WORKER_CLASS` in their environment), so the
empty-Flask baseline and the choice of class come from the same run. wrk drives each with
{load["connections"]} connections and {load["threads"]} threads for {load["seconds"]} s after a
{load["warmup_seconds"]} s warm-up, posting `{{"job": {{...}}}}` bodies with unique guids, valid
auth and a status mix in which 7 of 12 deliveries queue a handler run (CHALLENGED, HALTED, DENIED,
COMPLETED). {load["rounds"]} rounds, rotating which receiver goes first, each run on a quiet
machine; the tables show medians
(RSS: the peak over all rounds of the largest serving process; worker CPU: user + system time of
all serving processes during the run divided by the requests completed, which a busy machine
disturbs far less than req/s and latency; the database's CPU is not in it). gunicorn's sync
worker closes every connection after its answer, so wrk reconnects per request there; socket
errors of the extra sync runs are shown but do not fail the bench.

## Results

{table(results)}

Rows in the database after the runs — {rows_text(results)}.

![req/s and p99 of the three receivers under the config's worker class](results.png)

## Worker classes

service and hello under each gunicorn worker class (medians; the default is what the config picks
for the database and what the targets judge).

{worker_classes_tables(results)}

## Against the targets

The baseline is the fastest hello of the database, under whichever worker class served it best;
the service is judged under the config's own class.

{targets(results)}

## Commit ceilings (one single-row INSERT per transaction)

{ceilings_table(results)}

## Machine

{machine_text(results)}

## Commands

{COMMANDS}
## Reading

{READING_START}
{kept_reading()}
{READING_END}
"""


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; the bench runs on machines without a display
    import matplotlib.pyplot as plt

    rows = summaries(results)
    databases = [section["database"] for section in results["sections"]]
    # The receivers under the config's class only; the worker-class tables have the others.
    ticks = [
        f"{section['database']}\n({default_worker_class(section) or 'worker class not recorded'})"
        for section in results["sections"]
    ]
    colors = {"service": "#1f77b4", "hello": "#2ca02c", "webhook": "#ff7f0e"}
    width = 0.26
    figure, (rate_axes, p99_axes) = plt.subplots(1, 2, figsize=(11, 4.5))
    for offset, receiver in enumerate(RECEIVERS):
        mine = [
            next(s for s in rows if s.database == db and s.receiver == receiver) for db in databases
        ]
        xs = [index + (offset - 1) * width for index in range(len(databases))]
        rates = rate_axes.bar(
            xs, [s.requests_per_second for s in mine], width, label=receiver, color=colors[receiver]
        )
        # The service's bars can be too short to read against the floors; print the figures.
        rate_axes.bar_label(rates, fmt="%.0f", fontsize=8, padding=2)
        for x, summary in zip(xs, mine, strict=True):
            rate_axes.scatter(
                [x] * len(summary.rounds), summary.rounds, s=8, color="black", zorder=3
            )
        p99s = p99_axes.bar(
            xs, [s.p99_ms for s in mine], width, label=receiver, color=colors[receiver]
        )
        p99_axes.bar_label(p99s, fmt="%.0f", fontsize=8, padding=2)
    p99_axes.axhline(
        MAX_P99_MS, color="red", linestyle="--", linewidth=1, label=f"target {MAX_P99_MS:.0f} ms"
    )
    p99_axes.axhline(
        STRETCH_P99_MS,
        color="red",
        linestyle=":",
        linewidth=1,
        label=f"stretch {STRETCH_P99_MS:.0f} ms",
    )
    for axes, title in (
        (rate_axes, "requests/s (median; dots: rounds)"),
        (p99_axes, "p99 latency, ms (median)"),
    ):
        axes.set_xticks(range(len(databases)), ticks)
        axes.set_title(title)
        axes.grid(axis="y", alpha=0.3)
    p99_axes.set_yscale("log")
    lowest = min(
        (s.p99_ms for s in rows if s.receiver in RECEIVERS and s.p99_ms > 0), default=MAX_P99_MS
    )
    p99_axes.set_ylim(bottom=min(STRETCH_P99_MS, lowest) / 3)
    # Headroom above the bars for the legends (the p99 axes are logarithmic).
    rate_axes.set_ylim(top=rate_axes.get_ylim()[1] * 1.3)
    p99_axes.set_ylim(top=p99_axes.get_ylim()[1] * 6)
    rate_axes.legend(loc="upper left", ncols=3, fontsize=8)
    p99_axes.legend(loc="upper left", ncols=2, fontsize=8)
    load = results["load"]
    figure.suptitle(
        f"POST /webhooks/mx/jobs, wrk {load['connections']} connections, "
        f"{load['rounds']} × {load['seconds']} s, {results['started_at'][:16]}Z"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(results: dict[str, Any]) -> None:
    RESULTS_MD.write_text(markdown(results))
    chart(results, RESULTS_PNG)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "results",
        nargs="?",
        type=Path,
        default=LATEST,
        help=f"a compare.py result (default: {LATEST.relative_to(BENCH.parent)})",
    )
    parser.add_argument(
        "--print-only", action="store_true", help="print the tables; leave RESULTS.md and the PNG"
    )
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    print(table(results))
    print()
    print(worker_classes_tables(results))
    print()
    print(targets(results))
    if args.print_only:
        return
    write(results)
    print(f"updated {RESULTS_MD} and {RESULTS_PNG}")


if __name__ == "__main__":
    main()
