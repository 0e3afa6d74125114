"""What the tables and each index weigh per row, which indexes the workload used, and 700M."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

TABLES = ("interactions", "interaction_events")
HOT_ROWS = 700_000_000  # a million interactions a day, 24 months hot

SIZES = """
SELECT c.relname, c.reltuples::bigint, pg_relation_size(c.oid), pg_table_size(c.oid)
FROM pg_class c WHERE c.relname = ANY(:tables) ORDER BY c.relname
"""
INDEXES = """
SELECT s.relname, s.indexrelname, pg_relation_size(s.indexrelid), s.idx_scan
FROM pg_stat_user_indexes s WHERE s.relname = ANY(:tables) ORDER BY s.relname, s.indexrelname
"""


def reset_usage(url: str) -> None:
    """Zero the database's statistics counters, so idx_scan counts this workload only."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(sa.text("SELECT pg_stat_reset()"))
    engine.dispose()


def measure(url: str) -> dict[str, Any]:
    """Bytes per row of each table (heap, TOAST) and of each index, with its scans."""
    time.sleep(1.5)  # backends flush their counters about once a second
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        tables = connection.execute(sa.text(SIZES), {"tables": list(TABLES)}).all()
        indexes = connection.execute(sa.text(INDEXES), {"tables": list(TABLES)}).all()
    engine.dispose()
    rows = {name: max(1, int(n)) for name, n, _, _ in tables}
    out: dict[str, Any] = {"interactions": rows.get("interactions", 0), "tables": {}}
    for name, n, heap, total in tables:
        out["tables"][name] = {
            "rows": int(n),
            "heap_bytes": int(heap),
            "toast_bytes": int(total) - int(heap),
            "heap_bytes_per_row": int(total) / rows[name],
            "indexes": {
                index: {
                    "bytes": int(size),
                    "bytes_per_row": int(size) / rows[name],
                    "scans": int(scans),
                }
                for table, index, size, scans in indexes
                if table == name
            },
        }
    return out


def projection(figures: dict[str, Any], hot: int = HOT_ROWS) -> dict[str, float]:
    """Gigabytes each table and its indexes would take at ``hot`` interactions."""
    scale = hot / max(1, figures["interactions"])
    out = {}
    for name, table in figures["tables"].items():
        out[f"{name} heap"] = (table["heap_bytes"] + table["toast_bytes"]) * scale / 1e9
        out[f"{name} indexes"] = sum(i["bytes"] for i in table["indexes"].values()) * scale / 1e9
    return out


def report(figures: dict[str, Any]) -> None:
    """Print bytes per row, index use and the 700M projection."""
    print(f"\n{'relation':<52}{'bytes/row':>10}{'MB':>10}{'scans':>10}")
    for name, table in figures["tables"].items():
        size = (table["heap_bytes"] + table["toast_bytes"]) / 1e6
        print(
            f"{name + ' (' + format(table['rows'], ',') + ' rows)':<52}"
            f"{table['heap_bytes_per_row']:>10.0f}{size:>10.0f}{'':>10}"
        )
        for index, stats in table["indexes"].items():
            print(
                f"  {index:<50}{stats['bytes_per_row']:>10.1f}{stats['bytes'] / 1e6:>10.0f}"
                f"{stats['scans']:>10,}"
            )
    print(f"\nat {HOT_ROWS / 1e6:,.0f}M interactions (same events per interaction):")
    for name, gb in projection(figures).items():
        print(f"  {name:<40}{gb:>10,.0f} GB")
