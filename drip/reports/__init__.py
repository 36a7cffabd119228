"""Read models for people on call: a contact's timeline, the funnel, the scheduler's lag."""
