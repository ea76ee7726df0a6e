"""Events of the users domain.

Emitted (via the outbox, in service.py): `user.registered` {user_id, email, first_name, last_name, roles}.
Consumed: none yet.
"""
EMITTED = ("user.registered",)
