"""Call stories: steps from the flow, completion from AMI events, bounded memory, clean text."""

from vaihde.story import MAX_STEPS, StoryBook


def test_dial_and_hangup_complete_the_story():
    finished = []
    book = StoryBook(on_finished=finished.append)
    story = book.open("1.1", "0401234567", "Virtanen\nAnna", "0201234567")
    story.seek("employee", "anna", "menu_option", key="1")
    book.apply({"Event": "DialEnd", "Uniqueid": "1.1", "DialStatus": "NOANSWER",
                "DestChannel": "PJSIP/anna-00000001"})
    book.apply({"Event": "DialEnd", "Uniqueid": "1.1", "DialStatus": "ANSWER",
                "DestChannel": "PJSIP/operator-00000002"})
    book.apply({"Event": "Hangup", "Uniqueid": "1.1", "Cause-txt": "Normal Clearing"})
    (done,) = finished
    assert done.outcome == "answered"
    assert [s.kind for s in done.steps] == ["sought", "dial", "dial", "hangup"]
    assert done.steps[1].detail["status"] == "noanswer"
    assert done.caller_name == "Virtanen Anna"  # control characters never reach storage
    assert book.get("1.1") is None and len(book) == 0


def test_events_of_other_channels_are_ignored():
    book = StoryBook()
    book.open("1.1", "1", "", "")
    book.apply({"Event": "Hangup", "Uniqueid": "9.9"})
    assert book.get("1.1") is not None


def test_bounded():
    book = StoryBook(limit=3)
    for i in range(5):
        book.open(str(i), "1", "", "")
    assert len(book) == 3 and book.get("0") is None
    story = book.get("4")
    for _ in range(MAX_STEPS + 50):
        story.add("menu", key="5")
    assert len(story.steps) == MAX_STEPS


def test_listener_failure_contained():
    book = StoryBook(on_finished=lambda s: 1 / 0)
    book.open("1", "1", "", "")
    book.apply({"Event": "Hangup", "Uniqueid": "1"})
    assert len(book) == 0
