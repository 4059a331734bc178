"""Call routing: ordered rules from the database (conditions + action) deciding what happens to a
call: at ``/phone/incoming`` (time, caller) and on every turn of the call (words, intents, digits,
misunderstandings). ``rules`` defines and checks them, ``match`` picks the ones that fire,
``actions`` turns an action into TwiML or an SMS, ``incoming`` runs the webhook stage, ``tool`` is
the ``route_call`` tool the LLM reports intents with, ``trial`` answers the admin's "Test a rule"."""
