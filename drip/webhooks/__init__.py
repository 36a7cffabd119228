"""Outbound webhooks: telling other systems what happened, signed, at least once.

1. endpoints: `webhooks.yaml` beside the sequences (synced into the database at startup)
   and `drip webhooks add` write `webhook_endpoints` and the event types each one hears;
2. emit: where a change happens, one INSERT ... SELECT in the change's own transaction
   puts a row in the `webhook_events` outbox per subscribed endpoint (none when no
   endpoint hears that type), so a rollback loses or invents nothing;
3. after commit, the ids go to the `drip.deliver_webhooks` actor on its own queue, which
   hands them to a small pool of sender threads: a slow receiver never holds a send thread;
4. a sender claims the row, signs the body as Standard Webhooks says, POSTs it (connect
   3 s, read 10 s), and records the attempt: delivered, retried later with backoff and
   jitter for up to three days, or failed; a 410 disables the endpoint;
5. the scheduler's recovery job enqueues rows whose retry is due or whose message was lost.
"""
