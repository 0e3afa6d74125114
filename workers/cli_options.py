"""The command line's shared choices, each spelled once."""

from __future__ import annotations

import getpass

import click

from models.enums import SENT_CHANNELS, ChannelType, InteractionStatus

SENT_CHANNEL = click.Choice([channel.value for channel in SENT_CHANNELS])
ANY_CHANNEL = click.Choice([channel.value for channel in ChannelType])
STATUS = click.Choice([status.value for status in InteractionStatus])


def operator() -> str:
    """Who runs this command, for a batch's history: the operating-system user, or unknown."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no password-file entry (some containers)
        return "unknown"
