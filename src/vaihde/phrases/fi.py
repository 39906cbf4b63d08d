"""What vaihde says to callers in Finnish. Every language has the same keys and the same
{placeholders} (tests/unit/test_phrases.py); `vaihde phrases` and the admin page list them."""

PHRASES = {
    # A known caller, greeted by first name (or not at all when no name is left).
    "greeting.by_name": "Hei {name}",
    "greeting.nameless": "Hei",
    # "<name> <state> [until …]." for someone who cannot take calls now (flows/reach.py).
    "away.busy": "on varattu",
    "away.meeting": "on kokouksessa",
    "away.video_conference": "on videoneuvottelussa",
    "away.away": "on poissa",
    "away.vacation": "on lomalla",
    "away.sick": "on poissa",
    "away.off_work": "ei ole töissä",
    "away.until_time": "{time} asti",
    "away.until_day": "{date} asti",
    # When nobody can answer for another reason (flows/unanswerable.py). A team's name is said
    # on its own ("Myynti: …"): Finnish would otherwise need its case ending.
    "cannot_answer": "{name} ei pääse juuri nyt vastaamaan.",
    "team.nobody": "{team}: kukaan ei pääse juuri nyt vastaamaan.",
    "team.busy": "{team}: kaikki puhuvat juuri nyt toista puhelua.",
    "oncall.nobody": "{rota}: päivystäjä ei pääse juuri nyt vastaamaan.",
    "oncall.none": "{rota}: kukaan ei päivystä juuri nyt.",
    # What the caller may do instead: 1, 2, 3 and 0.
    "offer.delegate": "Jos haluat puhua henkilön {name} kanssa, paina 1.",
    "offer.message": "Jättääksesi viestin, paina 2.",
    "offer.callback": "Soittopyyntö, paina 3.",
    "offer.operator": "Vaihteeseen pääset painamalla nollaa.",
    # The answering service (flows/answering.py).
    "message.intro": "Jätä viestisi äänimerkin jälkeen. Lopeta painamalla risuaitaa tai "
                     "sulkemalla puhelin.",
    "message.saved": "Viestisi on vastaanotettu ja se välitetään perille. Kiitos soitostasi.",
    "callback.taken": "Soittopyyntösi on vastaanotettu. Soitamme sinulle takaisin. Kiitos.",
    # Dial by name (flows/by_name.py).
    "by_name.spell": "Näppäile nimen alkukirjaimet puhelimen näppäimillä ja paina lopuksi "
                     "risuaitaa. Vaihteeseen pääset painamalla nollaa.",
    "by_name.none": "Nimellä ei löytynyt ketään.",
    "by_name.many": "Nimellä löytyi liian monta henkilöä. Näppäile useampi kirjain.",
    "by_name.choice": "{name}, paina {key}.",
    "by_name.again": "Uusi haku, paina 9.",
}
