"""The command line's shared choices, each spelled once."""

from __future__ import annotations

import click

from models.enums import SENT_CHANNELS, ChannelType, InteractionStatus

SENT_CHANNEL = click.Choice([channel.value for channel in SENT_CHANNELS])
ANY_CHANNEL = click.Choice([channel.value for channel in ChannelType])
STATUS = click.Choice([status.value for status in InteractionStatus])
