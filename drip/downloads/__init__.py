"""Downloads: the file a sequence offers (the resume template), behind a signed per-contact link."""
