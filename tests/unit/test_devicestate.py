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


def test_reach_from_device_states():
    from vaihde.company.dials import Reach

    states = DeviceStates()
    heard = []
    states.add_reach_listener(lambda d, r: heard.append((d, r)))
    assert states.reach("PJSIP/anna") is Reach.UNKNOWN
    for state, want in [("UNAVAILABLE", Reach.UNREACHABLE), ("NOT_INUSE", Reach.REACHABLE),
                        ("RINGING", Reach.REACHABLE), ("INUSE", Reach.IN_USE),
                        ("INVALID", Reach.UNREACHABLE), ("UNKNOWN", Reach.UNKNOWN)]:
        states.apply({"Event": "DeviceStateChange", "Device": "PJSIP/anna", "State": state})
        assert states.reach("PJSIP/anna") is want
    # RINGING after NOT_INUSE is still reachable: listeners hear only changes of reach.
    assert [r for _, r in heard] == [Reach.UNREACHABLE, Reach.REACHABLE, Reach.IN_USE,
                                     Reach.UNREACHABLE, Reach.UNKNOWN]


def test_contact_status_marks_a_pjsip_phone_before_its_device_state_says_so():
    from vaihde.company.dials import Reach

    states = DeviceStates()
    contact = {"Event": "ContactStatus", "EndpointName": "anna-soft", "AOR": "anna-soft",
               "URI": "sip:anna@10.0.0.5:5060"}
    states.apply({**contact, "ContactStatus": "Created"})
    assert states.reach("PJSIP/anna-soft") is Reach.REACHABLE
    assert states.contacts("PJSIP/anna-soft") == {"sip:anna@10.0.0.5:5060": "created"}
    states.apply({**contact, "ContactStatus": "Unreachable"})
    assert states.reach("PJSIP/anna-soft") is Reach.UNREACHABLE
    states.apply({**contact, "ContactStatus": "Reachable"})
    assert states.reach("PJSIP/anna-soft") is Reach.REACHABLE
    # In a call: a registration refresh does not make it look idle, nor does losing it.
    states.apply({"Event": "DeviceStateChange", "Device": "PJSIP/anna-soft", "State": "INUSE"})
    states.apply({**contact, "ContactStatus": "Updated"})
    assert states.reach("PJSIP/anna-soft") is Reach.IN_USE
    states.apply({"Event": "DeviceStateChange", "Device": "PJSIP/anna-soft",
                  "State": "NOT_INUSE"})
    states.apply({**contact, "ContactStatus": "Removed"})
    assert states.reach("PJSIP/anna-soft") is Reach.UNREACHABLE
    assert states.contacts("PJSIP/anna-soft") == {}
    # Garbage is ignored.
    states.apply({"Event": "ContactStatus", "ContactStatus": "Reachable"})
    assert set(states.states) == {"PJSIP/anna-soft"}


async def test_resync_looks_at_configured_phones_asterisk_has_no_state_for():
    from vaihde.company.dials import Reach

    asked = []

    class Client:
        async def action(self, action, timeout=None):
            if action["Action"] == "DeviceStateList":
                return SimpleNamespace(events=[{"Device": "PJSIP/anna", "State": "NOT_INUSE"}])
            asked.append(action["Variable"])
            return {"Value": "UNAVAILABLE" if "soft" in action["Variable"] else "NOT_INUSE"}

    states = DeviceStates(watch=lambda: ["PJSIP/anna", "PJSIP/anna-soft", "Local/x@ctx"])
    await states.resync(Client())
    # Listed devices are not asked again.
    assert asked == ["DEVICE_STATE(PJSIP/anna-soft)", "DEVICE_STATE(Local/x@ctx)"]
    assert states.reach("PJSIP/anna-soft") is Reach.UNREACHABLE
    assert states.reach("Local/x@ctx") is Reach.REACHABLE
