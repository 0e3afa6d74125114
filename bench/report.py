"""The one table of ``python -m bench``: each figure, its baseline, their ratio and the goal."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

TIMELINE_GOAL_MS = 5.0


@dataclass(frozen=True)
class Row:
    """One figure beside the baseline measured in the same run."""

    name: str
    figure: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    goal: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.figure / self.baseline if self.baseline else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ratio": self.ratio}


def rows_of(results: dict[str, Any]) -> list[Row]:
    """The table's rows from each benchmark's JSON; a benchmark that failed gives one row."""
    rows: list[Row] = []
    builders = {
        "cli": _cli,
        "generate": _generate,
        "pipeline": _pipeline,
        "pace": _pace,
        "paused": _paused,
        "webhooks": _webhooks,
        "api": _api,
        "archive": _archive,
        "timeline": _timeline,
    }
    for name, result in results.items():
        if result is None:
            rows.append(Row(f"{name}: FAILED, see its log", 0, "", met=False))
        else:
            rows.extend(builders[name](result))
    return rows


def _cli(r: dict[str, Any]) -> list[Row]:
    help_ms = r["help_ms"]
    return [Row("interactions --help start-up", help_ms, "ms median", r["bare_python_ms"],
                "python -c pass", "< 300 ms", help_ms < 300, f"{r['runs']} runs each")]  # fmt: skip


def _generate(r: dict[str, Any]) -> list[Row]:
    rate = r["rows_per_second"]
    note = (
        f"{r['interactions']:,} interactions + {r['events']:,} events in {r['load_seconds']:.0f} s;"
        f" indexes after the load {r['index_seconds']:.0f} s"
    )
    return [Row("data generator: COPY load", rate, "rows/s", None, "", ">= 50,000 rows/s",
                rate >= 50_000, note)]  # fmt: skip


def _pipeline(r: dict[str, Any]) -> list[Row]:
    producer, loop = r["producer_per_s"], r["apply_async_per_s"]
    reference = f"Celery no-op {r['noop_tasks_per_s']:,.0f} tasks/s"
    rows = [Row("enqueue: batch producer", producer, "recipients/s", loop, "apply_async loop",
                ">= 5x", producer >= 5 * loop)]  # fmt: skip
    for label, tail in (("0 ms", ""), (f"{r['slow_latency_ms']:g} ms", "_slow")):
        rate, floor = r[f"dispatches_per_s{tail}"], r[f"floor_per_s{tail}"]
        cpu, floor_cpu = r[f"cpu_ms{tail}"], r[f"floor_cpu_ms{tail}"]
        rows += [
            Row(f"dispatch end to end, stub {label}", rate, "dispatches/s", floor,
                "bare pipeline", ">= 0.8x", rate >= 0.8 * floor, reference),
            Row(f"worker CPU per message, stub {label}", cpu, "ms", floor_cpu,
                "bare pipeline", "<= 1.25x", cpu <= 1.25 * floor_cpu),
        ]  # fmt: skip
    return rows


def _pace(r: dict[str, Any]) -> list[Row]:
    limit, free = r["rate_limit"], r["unlimited"]["per_second"]
    rows = []
    for key, workers in (("paced", r["workers"]), ("paced_more_workers", r["more_workers"])):
        run = r[key]
        share = run["refused_share"]
        met = run["per_second"] >= 0.95 * limit and share <= 0.01
        note = (
            f"{run['per_second'] / limit:.3f} of the {limit}/s limit; {run['refused']} x 429 "
            f"of {run['requests']} requests ({share:.2%}); {r['recipients']:,} recipients"
        )
        rows.append(Row(f"send at the provider's limit, {workers} workers", run["per_second"],
                        "sends/s", free, "the same, no limit", ">= 0.95 of the limit, <= 1% 429",
                        met, note))  # fmt: skip
    return rows


def _paused(r: dict[str, Any]) -> list[Row]:
    paused, idle, resume = r["paused_core_share"], r["idle_core_share"], r["resume_to_first_send_s"]
    note = f"{r['recipients']:,} recipients parked in {r['parking_seconds']:.0f} s"
    return [
        Row("workers while a batch is paused", paused, "of a core", idle or None,
            "the same workers, nothing queued", "< 0.05 of a core", paused < 0.05, note),
        Row("resume to first send", resume, "s", None, "", "< 2 s", resume < 2.0, note),
    ]  # fmt: skip


def _webhooks(r: dict[str, Any]) -> list[Row]:
    rate, p99 = r["callbacks_per_s"], r["p99_ms"]
    met = rate >= 1000 and p99 < 50 and r["not_2xx"] == 0 and r["stored"] == r["answered_202"]
    note = f"p50 {r['p50_ms']:.1f} ms, p99 {p99:.1f} ms; gunicorn {r['setting']}"
    return [Row("callbacks stored and queued", rate, "callbacks/s", r["bare_per_s"],
                "bare Flask route", ">= 1,000/s, p99 < 50 ms", met, note)]  # fmt: skip


def _api(r: dict[str, Any]) -> list[Row]:
    rate, p99 = r["messages_per_s"], r["p99_ms"]
    met = rate >= 1000 and p99 < 50 and r["not_2xx"] == 0 and r["stored"] == r["answered_202"]
    note = (
        f"p50 {r['p50_ms']:.1f} ms, p99 {p99:.1f} ms (bare p99 {r['bare_p99_ms']:.1f}); "
        f"{r['stored']:,} rows for {r['answered_202']:,} x 202; gunicorn {r['setting']}"
    )
    rows, upload, cli = r["upload_rows"], r["upload_rows_per_s"], r["cli_rows_per_s"]
    memory = f"API RSS {r['upload_rss_before_mib']:.0f} -> {r['upload_rss_peak_mib']:.0f} MiB"
    return [
        Row("API: POST /v1/messages accepted", rate, "messages/s", r["bare_per_s"],
            "bare /v1/messages route", ">= 1,000/s, p99 < 50 ms", met, note),
        Row("API: POST /v1/batches upload", upload, "rows/s", cli, "send-batch producer",
            ">= 20,000 rows/s", upload >= 20_000, f"{rows:,} JSON Lines rows streamed; {memory}"),
    ]  # fmt: skip


def _archive(r: dict[str, Any]) -> list[Row]:
    rate, copy = r["janitor_rows_per_s"], r["copy_rows_per_s"]
    met = rate >= 50_000 and rate >= copy / 3 and not r["expired_left"] and not r["verify_failed"]
    note = f"{r['rows']:,} rows moved; peak RSS {r['peak_rss_mib']:.0f} MiB"
    return [Row("archive janitor", rate, "rows/s", copy, "COPY ... TO",
                ">= 50,000 rows/s, >= 1/3 COPY", met, note)]  # fmt: skip


def _timeline(r: dict[str, Any]) -> list[Row]:
    rows = []
    for size, result in r.items():
        figures = result["figures"]
        base = next((f for f in figures if f["name"].startswith("baseline")), None)
        for f in figures:
            if f is base:
                continue
            goal = f"p99 < {TIMELINE_GOAL_MS:g} ms, no seq scan" if f["goal"] else ""
            note = f"p50 {f['p50_ms']:.2f} ms, n={f['samples']}"
            note += f"; first pass p99 {f['first_pass_p99_ms']:.1f} ms"
            if f["seq_scan"]:
                note += ", SEQ SCAN"
            rows.append(
                Row(f"{size}: {f['name']}", f["p99_ms"], "ms p99",
                    base["p99_ms"] if base else None, "primary-key read p99", goal,
                    f["met"] if f["goal"] else None, note)
            )  # fmt: skip
    return rows


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def table(rows: list[Row]) -> str:
    """The rows as a fixed-width table."""
    header = ("benchmark", "figure", "unit", "baseline", "ratio", "goal", "met", "")
    lines = [header]
    for row in rows:
        baseline = f"{_number(row.baseline)} ({row.baseline_name})" if row.baseline else "-"
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
        met = "-" if row.met is None else "yes" if row.met else "NO"
        lines.append((row.name, _number(row.figure), row.unit, baseline, ratio, row.goal or "-",
                      met, row.note))  # fmt: skip
    widths = [max(len(line[n]) for line in lines) for n in range(len(header))]
    out = []
    for line in lines:
        cells = [
            cell.rjust(width) if n in (1, 4) else cell.ljust(width)
            for n, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)
