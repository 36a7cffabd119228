"""drip: email drip campaigns as code.

The flow, one package per stage:

1. signup      validate the address, upsert the contact, enroll, schedule step 1: one transaction
2. schedule    the `deliveries` table is the durable schedule; the planner computes due times
3. dispatch    the scheduler claims due rows in batches and enqueues Dramatiq messages (ids only)
4. render      sandboxed Jinja2: layout + step fragment, HTML and text parts, CSS inlined
5. send        a Dramatiq actor moves a row queued -> sending -> sent through a transport
6. events      signed SendGrid events are stored once and suppress bounced or complaining contacts
7. unsubscribe signed per-contact tokens; one click cancels everything still scheduled
"""

__version__ = "0.1.0"
