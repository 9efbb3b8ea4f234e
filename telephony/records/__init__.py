"""Call records: one durable record per call, whatever the ending, for operators and webhooks."""
