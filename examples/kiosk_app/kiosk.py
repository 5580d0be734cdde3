"""A kiosk app that embeds edgerec: top-10 for a user, one click, the list again.

It is the example of shipping edgerec inside an app: ``make kiosk-exe`` freezes it with
PyInstaller into one folder that runs on a machine with no Python. The data lives next to
the executable (``store.db`` and the bundle folder ``model/``), so updating a kiosk is
copying two things; ``--home`` points elsewhere. Run unfrozen with ``python -m kiosk``
(from this folder, or with it on PYTHONPATH), where home defaults to the current folder.

    kiosk USER [--click RANK] [-n 10] [--home DIR] [--bundle model]
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgerec import EdgerecError, Recommender


def default_home() -> Path:
    """The executable's folder when frozen (what a kiosk ships), else the current one."""
    return Path(sys.executable).parent if getattr(sys, "frozen", False) else Path.cwd()


def show(rec: Recommender, heading: str, items) -> None:
    """One numbered list with titles from the store's catalogue, flushed at once."""
    titles = rec.store.item_titles(r.item_id for r in items)
    click.echo(heading + (" (most popular: new visitor)" if items.fallback else ""))
    for rank, r in enumerate(items, 1):
        click.echo(f"{rank:4}. {r.item_id:<10} {titles.get(r.item_id, ''):<40.40} {r.score:8.4f}")
    sys.stdout.flush()


@click.command()
@click.argument("user")
@click.option("--click", "rank", type=click.IntRange(1), default=1, show_default=True,
              help="Rank of the item the user clicks.")
@click.option("-n", type=click.IntRange(1), default=10, show_default=True)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder holding store.db and the bundle [default: next to the executable].")
@click.option("--bundle", default="model", show_default=True, help="Bundle folder inside home.")
def main(user: str, rank: int, n: int, home: Path | None, bundle: str) -> None:
    """Show USER's top-n, record a click on one of them, show the changed list."""
    home = home or default_home()
    try:
        with Recommender.open(home / bundle, home / "store.db") as rec:
            before = rec.recommend(user, n)
            show(rec, f"Top {n} for {user} (provider {rec.provider}):", before)
            if rank > len(before):
                raise click.ClickException(f"--click {rank}: the list has {len(before)} items")
            clicked = before[rank - 1].item_id
            rec.record(user, clicked, "click")
            click.echo(f"Clicked {clicked}.")
            show(rec, f"Top {n} for {user} after the click:", rec.recommend(user, n))
    except EdgerecError as exc:
        raise click.ClickException(str(exc)) from exc


if __name__ == "__main__":
    main()
