"""paho's MQTT 5 property tables shared between instances (a speed-up of
the platform's receive path): properties still pack, unpack, clear and
refuse what does not belong to a packet type as paho's own do."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import MQTTException, Properties

from supervision.ingest.subscriber import share_paho_property_tables


def test_shared_property_tables_behave_like_pahos() -> None:
    sent = Properties(PacketTypes.PUBLISH)
    sent.MessageExpiryInterval = 30
    sent.UserProperty = ("site", "qn1")
    wire = sent.pack()
    share_paho_property_tables()
    share_paho_property_tables()  # idempotent
    got = Properties(PacketTypes.PUBLISH)
    got.unpack(wire)
    assert (got.MessageExpiryInterval, got.UserProperty) == (30, [("site", "qn1")])
    assert got.pack() == wire
    got.unpack(Properties(PacketTypes.PUBLISH).pack())  # an empty set clears the old
    assert not hasattr(got, "MessageExpiryInterval") and str(got) == "[]"
    connect = Properties(PacketTypes.CONNECT)
    connect.ReceiveMaximum = 2000
    with pytest.raises(MQTTException, match="does not apply"):
        connect.TopicAlias = 3
    assert Properties(PacketTypes.CONNECT).names is got.names  # shared, not rebuilt
