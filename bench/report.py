"""Turn a bench/compare.py result (JSON) into the table, bench/RESULTS.md and bench/results.png.

    .venv/bin/python bench/report.py [bench/out/compare-latest.json]

RESULTS.md is regenerated whole except the text between the reading markers, which is written by
whoever ran the bench and read the figures, and is kept as it is.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS_MD = BENCH / "RESULTS.md"
RESULTS_PNG = BENCH / "results.png"
LATEST = BENCH / "out" / "compare-latest.json"
RECEIVERS = ("service", "hello", "webhook")
READING_START = "<!-- reading: kept when RESULTS.md is regenerated -->"
READING_END = "<!-- end of reading -->"

# The targets, reported against (not enforced).
MIN_HELLO_RATIO = 0.70
MAX_P99_MS = 25.0
MAX_WORKER_RSS_MB = 80.0

COMMANDS = """\
```sh
sudo apt-get update && sudo apt-get install -y webhook wrk   # once; pgbench comes with PostgreSQL
.venv/bin/pip install -e '.[dev,bench]'
psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE jobhooks_bench_d'  # optional
.venv/bin/python bench/compare.py         # ~5 min: ceilings, then SQLite, then PostgreSQL
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
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    worker_rss_mb: float
    workers: int
    cpu_ms_per_request: float
    non2xx: int
    socket_errors: int
    rounds: list[float]


def summarize(section: dict[str, Any], receiver: str) -> Summary:
    runs = [run for run in section["runs"] if run["receiver"] == receiver]
    return Summary(
        database=section["database"],
        receiver=receiver,
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
        summarize(section, receiver) for section in results["sections"] for receiver in RECEIVERS
    ]


def round_ratios(section: dict[str, Any], floor: str) -> list[float]:
    """service/floor within each round: the two ran back to back, under the same machine load."""
    by_round: dict[int, dict[str, float]] = {}
    for run in section["runs"]:
        by_round.setdefault(run["round"], {})[run["receiver"]] = run["requests_per_second"]
    return [rates["service"] / rates[floor] for _, rates in sorted(by_round.items())]


def table(results: dict[str, Any]) -> str:
    """The markdown table of medians, also what compare.py prints."""
    lines = [
        "| database | receiver | req/s | p50 ms | p99 ms | peak worker RSS MB | workers | "
        "worker CPU ms/req | non-2xx | socket errors | req/s per round |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in summaries(results):
        rounds = " / ".join(f"{rate:.0f}" for rate in s.rounds)
        lines.append(
            f"| {s.database} | {s.receiver} | {s.requests_per_second:.0f} | {s.p50_ms:.1f} | "
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
        rates = {s.receiver: s for s in summaries(results) if s.database == section["database"]}
        service = rates["service"].requests_per_second
        cells = []
        for floor in ("hello", "webhook"):
            per_round = ", ".join(f"{ratio:.2f}" for ratio in round_ratios(section, floor))
            cells += [f"{service / rates[floor].requests_per_second:.2f}", per_round]
        lines.append(f"| {section['database']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(results: dict[str, Any]) -> str:
    by_key = {(s.database, s.receiver): s for s in summaries(results)}
    rows: dict[str, list[str]] = {
        f"ingest ≥ {MIN_HELLO_RATIO:.2f} × hello-world req/s": [],
        f"p99 ≤ {MAX_P99_MS:.0f} ms at 32 connections": [],
        "no non-2xx": [],
        f"each web worker ≤ {MAX_WORKER_RSS_MB:.0f} MB RSS": [],
    }
    for database in ("SQLite", "PostgreSQL"):
        service, hello = by_key[database, "service"], by_key[database, "hello"]
        ratio = service.requests_per_second / hello.requests_per_second
        figures = [
            (ratio >= MIN_HELLO_RATIO, f"{ratio:.2f}"),
            (service.p99_ms <= MAX_P99_MS, f"{service.p99_ms:.1f} ms"),
            (service.non2xx == 0, str(service.non2xx)),
            (service.worker_rss_mb <= MAX_WORKER_RSS_MB, f"peak {service.worker_rss_mb:.1f} MB"),
        ]
        for cells, (met, figure) in zip(rows.values(), figures, strict=True):
            cells.append(f"{'met' if met else '**missed**'} ({figure})")
    lines = ["| target | SQLite | PostgreSQL |", "|---|---|---|"]
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
            f"{m['web_concurrency']}, WEB_THREADS {m.get('web_threads', 'default')}), "
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
        accepted = sum(
            run["statuses"].get("204", 0) for run in section["runs"] if run["receiver"] == "service"
        )
        parts.append(
            f"{section['database']}: {rows['job_events']} events, {rows['jobs']} jobs, "
            f"{rows['handler_runs']} handler runs committed for {accepted} measured 204s "
            "(plus warm-up and start-up probes)"
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
    return f"""# Ingest benchmark: service vs. hello-world vs. `webhook`

Generated by `bench/compare.py` (run started {results["started_at"]}, took
{results["duration_seconds"]:.0f} s); regenerate with the commands below. Hand-written text lives
only between the reading markers.

{code_text(results)}

What runs: for each database, three receivers of `POST /webhooks/mx/jobs`, all on 127.0.0.1:
**service** (the Procfile's web command), **hello** (a Flask app that parses the JSON and answers
204, under the same gunicorn command line and config) and **webhook** (the Debian `webhook` Go
receiver, checking the same Basic credentials and running `/bin/true`). wrk drives each with
{load["connections"]} connections and {load["threads"]} threads for {load["seconds"]} s after a
{load["warmup_seconds"]} s warm-up, posting `{{"job": {{...}}}}` bodies with unique guids, valid
auth and a status mix in which 7 of 12 deliveries queue a handler run (CHALLENGED, HALTED, DENIED,
COMPLETED). {load["rounds"]} rounds, rotating which receiver goes first; the table shows medians
(RSS: the peak over all rounds of the largest serving process; worker CPU: user + system time of
all serving processes during the run divided by the requests completed, which a busy machine
disturbs far less than req/s and latency; the database's CPU is not in it).

## Results

{table(results)}

Rows in the database after the runs — {rows_text(results)}.

![req/s and p99 of the three receivers](results.png)

## Against the targets

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
    for axes, title in (
        (rate_axes, "requests/s (median; dots: rounds)"),
        (p99_axes, "p99 latency, ms (median)"),
    ):
        axes.set_xticks(range(len(databases)), databases)
        axes.set_title(title)
        axes.grid(axis="y", alpha=0.3)
    p99_axes.set_yscale("log")
    p99_axes.set_ylim(bottom=MAX_P99_MS / 3)
    rate_axes.legend()
    p99_axes.legend()
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
    import json

    source = Path(sys.argv[1]) if len(sys.argv) > 1 else LATEST
    results = json.loads(source.read_text())
    print(table(results))
    write(results)
    print(f"updated {RESULTS_MD} and {RESULTS_PNG}")


if __name__ == "__main__":
    main()
