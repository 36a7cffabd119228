"""Provider events: verified, stored once each, then applied (suppress, record for the funnel)."""
