"""Command line for the providers' shared pace: ``provider status`` and ``provider reset``."""

from __future__ import annotations

import click

from providers.base import Provider
from services.container import container
from services.sending.pacing import describe
from services.sending.parking import parked_for
from workers import display


def _paced() -> list[Provider]:
    return [p for p in container().providers.all() if p.credential is not None]


@click.group("provider")
def provider() -> None:
    """What holds each provider's sends (a limit, a refused key, an outage), and lifting it."""


@provider.command("status")
def status_command() -> None:
    """Each provider's pace, what holds it, and how many messages wait parked."""
    here = container()
    rows = []
    for paced in _paced():
        credential = paced.credential
        assert credential is not None
        state = here.pacer.state(credential)
        parked = here.parking
        waiting = parked_for(parked, credential)
        held = describe(paced.name, state) or "sending"
        rows.append(
            (paced.name, credential.fingerprint, f"{credential.per_minute}/min", held, str(waiting))
        )
    click.echo(display.table(("provider", "key", "limit", "state", "parked"), rows))


@provider.command("reset")
@click.argument("name", required=False)
def reset_command(name: str | None) -> None:
    """Lift every hold on a provider (all of them without NAME), e.g. once its key is fixed."""
    chosen = [p for p in _paced() if name is None or p.name == name]
    if not chosen:
        raise click.UsageError(f"no paced provider is configured as {name!r}")
    for paced in chosen:
        assert paced.credential is not None
        container().pacer.reset(paced.credential)
        click.echo(f"{paced.name}: holds lifted; parked messages go out within a minute")
