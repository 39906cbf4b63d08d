"""What vaihde says to callers in Swedish (the keys and {placeholders} of `fi.py`)."""

PHRASES = {
    "greeting.by_name": "Hej {name}",
    "greeting.nameless": "Hej",
    "away.busy": "är upptagen",
    "away.meeting": "är på möte",
    "away.video_conference": "är i ett videomöte",
    "away.away": "är borta",
    "away.vacation": "är på semester",
    "away.sick": "är borta",
    "away.off_work": "är inte på jobbet",
    "away.until_time": "till klockan {time}",
    "away.until_day": "till och med {date}",
    "cannot_answer": "{name} kan inte svara just nu.",
    "team.nobody": "{team}: ingen kan svara just nu.",
    "team.busy": "{team}: alla talar i telefon just nu.",
    "oncall.nobody": "{rota}: den jourhavande kan inte svara just nu.",
    "oncall.none": "{rota}: ingen har jour just nu.",
    "offer.delegate": "Om du vill tala med {name}, tryck 1.",
    "offer.message": "För att lämna ett meddelande, tryck 2.",
    "offer.callback": "För att bli uppringd, tryck 3.",
    "offer.operator": "Till växeln kommer du med noll.",
    "message.intro": "Lämna ditt meddelande efter tonen. Avsluta med fyrkant eller genom att "
                     "lägga på.",
    "message.saved": "Ditt meddelande har tagits emot och vidarebefordras. Tack för ditt samtal.",
    "callback.taken": "Din begäran om att bli uppringd har tagits emot. Vi ringer upp dig. Tack.",
    "by_name.spell": "Slå namnets första bokstäver på knappsatsen och tryck sedan fyrkant. "
                     "Till växeln kommer du med noll.",
    "by_name.none": "Ingen hittades med det namnet.",
    "by_name.many": "För många personer hittades. Slå fler bokstäver.",
    "by_name.choice": "{name}, tryck {key}.",
    "by_name.again": "För att söka igen, tryck 9.",
}
