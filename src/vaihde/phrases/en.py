"""What vaihde says to callers in English (the keys and {placeholders} of `fi.py`); also what a
caller hears in a language vaihde has no phrases for."""

PHRASES = {
    "greeting.by_name": "Hello {name}",
    "greeting.nameless": "Hello",
    "away.busy": "is busy",
    "away.meeting": "is in a meeting",
    "away.video_conference": "is in a video conference",
    "away.away": "is away",
    "away.vacation": "is on vacation",
    "away.sick": "is away",  # callers are not told someone is ill
    "away.off_work": "is not at work",
    "away.until_time": "until {time}",
    "away.until_day": "until {date}",
    "cannot_answer": "{name} cannot answer right now.",
    "team.nobody": "Nobody in {team} can answer right now.",
    "team.busy": "Everyone in {team} is on another call right now.",
    "oncall.nobody": "{rota}: nobody on call can answer right now.",
    "oncall.none": "{rota}: nobody is on call right now.",
    "offer.delegate": "To speak with {name}, press 1.",
    "offer.message": "To leave a message, press 2.",
    "offer.callback": "To be called back, press 3.",
    "offer.operator": "For the switchboard, press 0.",
    "message.intro": "Please leave your message after the tone. Press hash or hang up when you "
                     "are done.",
    "message.saved": "Your message has been taken and will be passed on. Thank you for calling.",
    "callback.taken": "Your callback request has been taken. We will call you back. Thank you.",
    "by_name.spell": "Spell the first letters of the name on your keypad, then press hash. "
                     "For the switchboard, press 0.",
    "by_name.none": "No one was found by that name.",
    "by_name.many": "Too many people match that name. Please key more letters.",
    "by_name.choice": "For {name}, press {key}.",
    "by_name.again": "To search again, press 9.",
}
