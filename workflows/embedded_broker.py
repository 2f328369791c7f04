"""The embedded one-machine broker: kombu's filesystem transport, written atomically.

Use it with ``CELERY_BROKER_URL = "dagflowfs://"`` and the same
``broker_transport_options`` as kombu's ``filesystem://`` (data_folder_in,
data_folder_out, control_folder, polling_interval). Importing this module
registers the scheme; ``WorkflowsConfig.ready()`` does, and so should a Celery
app module that may connect before Django is set up.

Why not plain ``filesystem://``: kombu creates the message file under its final
name and only then writes it, while a consumer polling the folder moves and
reads any ``*.msg`` file it sees. Under load a worker reads an empty message
and dies on a JSONDecodeError (seen in this project's CI). Here the message is
written under a name the consumer ignores and renamed into place, which is
atomic on one filesystem.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

SCHEME = "dagflowfs"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: dict, **kwargs) -> None:
        # Same name and order as kombu's (the consumer sorts by name), written
        # to a hidden temporary first.
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        temporary = os.path.join(self.data_folder_out, f".{name}.part")
        with open(temporary, "wb") as handle:
            handle.write(str_to_bytes(dumps(payload)))
        os.replace(temporary, final)


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")
