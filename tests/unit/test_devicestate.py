"""Device states from AMI events: in-use detection, change-only notifications, resync."""

from types import SimpleNamespace

from vaihde.ami.devicestate import DeviceStates, device_of_channel


def test_changes_only():
    states = DeviceStates()
    heard = []
    states.add_listener(lambda d, busy: heard.append((d, busy)))
    for state in ["NOT_INUSE", "RINGING", "INUSE", "ONHOLD", "NOT_INUSE"]:
        states.apply({"Event": "DeviceStateChange", "Device": "PJSIP/anna", "State": state})
    assert heard == [("PJSIP/anna", False), ("PJSIP/anna", True), ("PJSIP/anna", False)]


def test_garbage_ignored_and_listener_errors_contained():
    states = DeviceStates()
    states.add_listener(lambda d, b: 1 / 0)
    states.apply({"Event": "DeviceStateChange"})
    states.apply({"Event": "DeviceStateChange", "Device": "PJSIP/x", "State": "INUSE"})
    assert states.in_use == {"PJSIP/x": True}


async def test_resync_clears_devices_no_longer_listed():
    states = DeviceStates()
    states.apply({"Event": "DeviceStateChange", "Device": "PJSIP/gone", "State": "INUSE"})

    class Client:
        async def action(self, action, timeout=None):
            assert action == {"Action": "DeviceStateList"}
            return SimpleNamespace(events=[{"Device": "PJSIP/anna", "State": "INUSE"}])

    await states.resync(Client())
    assert states.in_use == {"PJSIP/gone": False, "PJSIP/anna": True}


def test_device_of_channel():
    assert device_of_channel("PJSIP/anna-0000002a") == "PJSIP/anna"
    assert device_of_channel("Local/anna@vaihde-test-phones-00000001;2") == (
        "Local/anna@vaihde-test-phones"
    )
    assert device_of_channel("PJSIP/sipp-phone-0000000b") == "PJSIP/sipp-phone"
    assert device_of_channel("PJSIP/odd-name") == "PJSIP/odd-name"
