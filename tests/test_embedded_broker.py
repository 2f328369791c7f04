"""The embedded broker hands a consumer whole messages only."""

import contextlib
from queue import Empty

import pytest
from kombu import Connection

from workflows import embedded_broker


@pytest.fixture
def connection(tmp_path):
    options = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
        "control_folder": str(tmp_path / "control"),
    }
    (tmp_path / "control").mkdir()
    with Connection("dagflowfs://", transport_options=options) as conn:
        yield conn


def test_scheme_is_registered_and_round_trips(connection):
    queue = connection.SimpleQueue("q")
    queue.put({"run": 1, "key": "a"})
    assert queue.get(timeout=1).payload == {"run": 1, "key": "a"}
    queue.close()


def test_a_message_cannot_be_taken_while_it_is_written(connection, monkeypatch):
    channel = connection.default_channel
    taken_while_writing = []
    real_dumps = embedded_broker.dumps

    def dumps_then_try_to_take(payload):
        with contextlib.suppress(Empty):
            taken_while_writing.append(channel._get("q"))
        return real_dumps(payload)

    monkeypatch.setattr(embedded_broker, "dumps", dumps_then_try_to_take)
    channel._put("q", {"body": "x"})
    assert taken_while_writing == []
    assert channel._get("q") == {"body": "x"}
