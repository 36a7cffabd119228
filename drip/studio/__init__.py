"""The marketers' studio: `drip studio`, a local page that previews every email as it is edited.

1. `workspace`: reads the sequences folder into a snapshot (sequences, samples, problems)
   without ever raising: a broken file becomes a problem with its file, line and excerpt.
2. `email`: one step for one sample contact, through the worker's rendering path
   (`drip.sequences.specimen`), with its light and dark documents, text part and checks.
3. `watcher`: `watchfiles` reloads the snapshot when a file is saved and wakes the page's
   Server-Sent Events stream, so the page re-renders without a refresh.
4. `app`: the Starlette app (page, JSON, events, test send); `server`: runs it on
   127.0.0.1 only and never in production. It reads the database (the impact of an edit)
   and never writes to it.
"""
